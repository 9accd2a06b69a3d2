package controllers

import (
	"context"
	"fmt"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/release"
)

// indexProxyHosts indexes Deployments by the host names their proxied roles claim
// (catchAllKey for a role without hosts), so a Deployment finds the others that may claim
// what it claims, and a change of one wakes the others.
const (
	indexProxyHosts = "kamal.operator.dev/proxy-hosts"
	catchAllKey     = "*any-host*"
)

func proxyHostKeys(d *kamalv1.Deployment) []string {
	seen := map[string]bool{}
	var out []string
	for name := range d.Spec.Roles {
		p := release.EffectiveProxy(&d.Spec, name)
		if p == nil {
			continue
		}
		for _, c := range p.Claims() {
			k := c.Host
			if k == "" {
				k = catchAllKey
			}
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}

// setupClaimIndex registers indexProxyHosts.
func setupClaimIndex(ctx context.Context, mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &kamalv1.Deployment{}, indexProxyHosts, func(o client.Object) []string {
		return proxyHostKeys(o.(*kamalv1.Deployment))
	})
}

// rivals are the other Deployments that claim one of d's host names, each once.
func rivals(ctx context.Context, c client.Reader, d *kamalv1.Deployment) ([]*kamalv1.Deployment, error) {
	seen := map[client.ObjectKey]bool{client.ObjectKeyFromObject(d): true}
	var out []*kamalv1.Deployment
	for _, k := range proxyHostKeys(d) {
		var l kamalv1.DeploymentList
		if err := c.List(ctx, &l, client.MatchingFields{indexProxyHosts: k}); err != nil {
			return nil, err
		}
		for i := range l.Items {
			if key := client.ObjectKeyFromObject(&l.Items[i]); !seen[key] {
				seen[key] = true
				out = append(out, &l.Items[i])
			}
		}
	}
	return out, nil
}

// claimRivals maps a changed Deployment to the other Deployments claiming one of its host
// names: when the owner of a claim lets go (a new spec, or deletion), the next in line routes.
func claimRivals(c client.Client) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
		d, ok := obj.(*kamalv1.Deployment)
		if !ok {
			return nil
		}
		others, err := rivals(ctx, c, d)
		if err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing Deployments claiming a host")
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(others))
		for _, o := range others {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
		}
		return reqs
	})
}

// claimantOf is d's claims on the proxies of the Servers its roles are placed on (placed:
// role → Server references, see serverRef). A Server stands for its host: there is one
// Server object per host (a second one is a DuplicateServer and places nothing).
func claimantOf(d *kamalv1.Deployment, roles map[string]*release.Proxy, placed map[string][]string) release.Claimant {
	c := release.Claimant{Key: d.Namespace + "/" + d.Name, Created: d.CreationTimestamp.Time, UID: string(d.UID)}
	hosts := map[string]bool{}
	for name, p := range roles {
		if p == nil {
			continue
		}
		c.Claims = append(c.Claims, p.Claims()...)
		for _, s := range placed[name] {
			hosts[serverKeyOf(d.Namespace, s).String()] = true
		}
	}
	c.Hosts = sortedKeys(hosts)
	return c
}

// rivalClaimants are the claimants of the other Deployments that claim one of self's host
// names, placed as their specs say. A rival whose placement cannot be resolved claims
// nothing: it routes nowhere either.
func (r *DeploymentReconciler) rivalClaimants(ctx context.Context, d *kamalv1.Deployment) ([]release.Claimant, error) {
	others, err := rivals(ctx, r.Client, d)
	if err != nil {
		return nil, err
	}
	var out []release.Claimant
	for _, o := range others {
		if !o.DeletionTimestamp.IsZero() {
			continue
		}
		selectors := map[string]kamalv1.ServerSelector{}
		proxies := map[string]*release.Proxy{}
		for name, role := range o.Spec.Roles {
			selectors[name] = role.Servers
			proxies[name] = release.EffectiveProxy(&o.Spec, name)
		}
		placed, problem, err := placeAll(ctx, r.Client, o.Namespace, selectors)
		if err != nil {
			return nil, err
		}
		if problem != nil {
			continue
		}
		out = append(out, claimantOf(o, proxies, placed))
	}
	return out, nil
}

// checkClaims holds a Deployment whose host names (and paths) an earlier Deployment on a
// shared proxy already claims: nothing of it is routed, and the owner keeps serving on every
// host, whatever order the hosts saw the two in.
func (r *DeploymentReconciler) checkClaims(ctx context.Context, s *deploymentScope) (*ctrl.Result, error) {
	proxies := map[string]*release.Proxy{}
	for name, role := range s.roles {
		proxies[name] = role.Proxy
	}
	if problem, err := r.checkCatchAll(ctx, s.d, proxies, s.placed); err != nil || problem != nil {
		if problem != nil {
			return s.stall(problem)
		}
		return nil, err
	}
	self := claimantOf(s.d, proxies, s.placed)
	if len(self.Claims) == 0 {
		return nil, nil
	}
	rivals, err := r.rivalClaimants(ctx, s.d)
	if err != nil {
		return nil, err
	}
	conflicts := release.Conflicts(self, rivals)
	if len(conflicts) == 0 {
		return nil, nil
	}
	parts := make([]string, 0, len(conflicts))
	for _, c := range conflicts {
		parts = append(parts, fmt.Sprintf("%s is routed by Deployment %s", c.Claim, c.Owner))
	}
	return s.stall(&refProblem{Reason: kamalv1.ReasonHostConflict, Message: strings.Join(parts, "; ") +
		" (the earlier claimant owns a host name); nothing of this Deployment is routed until the claim is given up"})
}

// catchAllAdmits says whether a Server's proxy serves a route without host names of a
// Deployment in namespace ns (Server.spec.proxy.catchAllFrom).
func catchAllAdmits(srv *kamalv1.Server, ns string) bool {
	switch srv.Spec.Proxy.CatchAllFrom {
	case "All":
		return true
	case "None":
		return false
	default:
		return srv.Namespace == ns
	}
}

// checkCatchAll refuses a role routed without host names on a Server whose proxy does not
// take catch-all routes from the Deployment's namespace: such a route answers every host
// name nobody names, which is the Server owner's call.
func (r *DeploymentReconciler) checkCatchAll(ctx context.Context, d *kamalv1.Deployment, proxies map[string]*release.Proxy, placed map[string][]string) (*refProblem, error) {
	for _, role := range sortedKeys(proxies) {
		if p := proxies[role]; p == nil || !p.CatchAll() {
			continue
		}
		for _, ref := range placed[role] {
			var srv kamalv1.Server
			if err := r.Get(ctx, serverKeyOf(d.Namespace, ref), &srv); err != nil {
				return nil, client.IgnoreNotFound(err)
			}
			if !catchAllAdmits(&srv, d.Namespace) {
				return &refProblem{Reason: kamalv1.ReasonCatchAllNotAllowed, Message: fmt.Sprintf(
					"role %s is routed without host names, which Server %s does not allow for namespace %s (spec.proxy.catchAllFrom); give the role proxy.hosts",
					role, ref, d.Namespace)}, nil
			}
		}
	}
	return nil, nil
}
