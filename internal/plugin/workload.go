package plugin

import (
	"context"
	"fmt"
	"sort"
	"strings"

	dockerclient "github.com/moby/moby/client"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/accessory"
	"github.com/kamal-operator/kamal-operator/internal/release"
)

// workload is the Deployment or Accessory a command names.
type workload struct {
	Deployment *kamalv1.Deployment
	Accessory  *kamalv1.Accessory
	// selected are the Servers each role (for an Accessory, role "") selects, read when the
	// status lists only some of them (a large fleet): where it runs is then more than the list.
	selected map[string][]string
}

// Kind is "Deployment" or "Accessory".
func (w *workload) Kind() string {
	if w.Deployment != nil {
		return "Deployment"
	}
	return "Accessory"
}

// Object is the workload's object.
func (w *workload) Object() client.Object {
	if w.Deployment != nil {
		return w.Deployment
	}
	return w.Accessory
}

// String is "Deployment ns/name".
func (w *workload) String() string {
	o := w.Object()
	return w.Kind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// getWorkload reads what arg names: "NAME" (a Deployment, else an Accessory; both of that name
// is ambiguous), "deployment/NAME" or "accessory/NAME" (kubectl's kind/name form; the short
// names kdeploy and kacc work too).
func getWorkload(ctx context.Context, c client.Reader, namespace, arg string) (*workload, error) {
	kind, name, typed := strings.Cut(arg, "/")
	if !typed {
		name, kind = arg, ""
	}
	var wantDeploy, wantAcc bool
	switch strings.ToLower(kind) {
	case "":
		wantDeploy, wantAcc = true, true
	case "deployment", "deployments", "deployment.kamal", "deployments.kamal", "deployments.kamal.operator.dev", "kdeploy":
		wantDeploy = true
	case "accessory", "accessories", "accessory.kamal", "accessories.kamal", "accessories.kamal.operator.dev", "kacc":
		wantAcc = true
	default:
		return nil, fmt.Errorf("%q: name a Deployment or an Accessory (NAME, deployment/NAME or accessory/NAME)", arg)
	}
	w := &workload{}
	if wantDeploy {
		d := &kamalv1.Deployment{}
		switch err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, d); {
		case err == nil:
			w.Deployment = d
		case !apierrors.IsNotFound(err):
			return nil, err
		}
	}
	if wantAcc {
		a := &kamalv1.Accessory{}
		switch err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, a); {
		case err == nil:
			w.Accessory = a
		case !apierrors.IsNotFound(err) && !(w.Deployment != nil && apierrors.IsForbidden(err)):
			return nil, err
		}
	}
	switch {
	case w.Deployment != nil && w.Accessory != nil:
		return nil, fmt.Errorf("both a Deployment and an Accessory are named %q in namespace %s: say deployment/%s or accessory/%s", name, namespace, name, name)
	case w.Deployment == nil && w.Accessory == nil && wantDeploy && wantAcc:
		return nil, fmt.Errorf("no Deployment or Accessory %q in namespace %s", name, namespace)
	case w.Deployment == nil && w.Accessory == nil && wantDeploy:
		return nil, fmt.Errorf("no Deployment %q in namespace %s", name, namespace)
	case w.Deployment == nil && w.Accessory == nil:
		return nil, fmt.Errorf("no Accessory %q in namespace %s", name, namespace)
	}
	var selections map[string]kamalv1.ServerSelector
	switch {
	case w.Deployment != nil && w.Deployment.Status.TargetsNotListed > 0:
		selections = map[string]kamalv1.ServerSelector{}
		for role, spec := range w.Deployment.Spec.Roles {
			selections[role] = spec.Servers
		}
	case w.Accessory != nil && w.Accessory.Status.ServersNotListed > 0:
		selections = map[string]kamalv1.ServerSelector{"": w.Accessory.Spec.Servers}
	}
	if selections != nil {
		w.selected = map[string][]string{}
		for role, sel := range selections {
			selected, err := selectServers(ctx, c, namespace, sel)
			if err != nil {
				return nil, err
			}
			for _, s := range selected {
				w.selected[role] = append(w.selected[role], s.Ref)
			}
		}
	}
	return w, nil
}

// placement is one role of the workload on one Server (Role is "" for an Accessory).
type placement struct {
	Server string // as the workload's status names it (serverRef)
	Role   string
}

func (p placement) String() string {
	if p.Role == "" {
		return p.Server
	}
	return p.Server + "/" + p.Role
}

// primaryRole is the Deployment's primary role ("" for an Accessory).
func (w *workload) primaryRole() string {
	if w.Deployment == nil {
		return ""
	}
	if w.Deployment.Spec.PrimaryRole != "" {
		return w.Deployment.Spec.PrimaryRole
	}
	return "web"
}

// placements are where the workload runs by its status, primary role first, then by role and
// Server, narrowed to role and server when given.
func (w *workload) placements(role, server string) ([]placement, error) {
	var all []placement
	seen := map[placement]bool{}
	add := func(p placement) {
		if !seen[p] {
			seen[p] = true
			all = append(all, p)
		}
	}
	if d := w.Deployment; d != nil {
		if role != "" {
			if _, ok := d.Spec.Roles[role]; !ok {
				return nil, fmt.Errorf("%s has no role %q (roles: %s)", w, role, strings.Join(release.SortedRoles(d.Spec.Roles, w.primaryRole()), ", "))
			}
		}
		order := map[string]int{}
		for i, r := range release.SortedRoles(d.Spec.Roles, w.primaryRole()) {
			order[r] = i
		}
		for _, t := range d.Status.Targets {
			add(placement{Server: t.Server, Role: t.Role})
		}
		for r, servers := range w.selected {
			for _, s := range servers {
				add(placement{Server: s, Role: r})
			}
		}
		sort.SliceStable(all, func(i, j int) bool {
			if order[all[i].Role] != order[all[j].Role] {
				return order[all[i].Role] < order[all[j].Role]
			}
			return all[i].Server < all[j].Server
		})
	} else {
		if role != "" {
			return nil, fmt.Errorf("%s has no roles: --role applies to Deployments", w)
		}
		for _, s := range w.Accessory.Status.Servers {
			add(placement{Server: s.Server})
		}
		for _, s := range w.selected[""] {
			add(placement{Server: s})
		}
	}
	var out []placement
	for _, p := range all {
		if (role == "" || p.Role == role) && (server == "" || p.Server == server) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		what := ""
		if role != "" {
			what += " role " + role
		}
		if server != "" {
			what += " on Server " + server
		}
		if len(all) == 0 {
			return nil, fmt.Errorf("%s runs nowhere yet (its status lists no servers)", w)
		}
		return nil, fmt.Errorf("%s has nothing%s (it runs on %s)", w, what, placementList(all))
	}
	return out, nil
}

func placementList(ps []placement) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// filters select the workload's containers of role on a host, as the controller finds them.
func (w *workload) filters(role string) dockerclient.Filters {
	o := w.Object()
	if w.Deployment != nil {
		return release.Filters(o.GetNamespace(), o.GetName(), role)
	}
	return accessory.Filters(o.GetNamespace(), o.GetName())
}
