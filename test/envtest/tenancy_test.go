package envtest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/tenancy"
)

// update reads obj, applies mut and writes it back, again on a conflict.
func update[T client.Object](t *testing.T, obj T, mut func(T)) {
	t.Helper()
	eventually(t, waitFor, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mut(obj)
		return k8s.Update(context.Background(), obj)
	})
}

func labelNamespace(t *testing.T, ns, key, value string) {
	t.Helper()
	update(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, func(n *corev1.Namespace) {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[key] = value
	})
}

func wantMessage(t *testing.T, c *metav1.Condition, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(c.Message, p) {
			t.Errorf("message %q does not contain %q", c.Message, p)
		}
	}
}

// A platform namespace's Server admits the namespaces its allowedNamespaces selector matches:
// a Deployment of another namespace is refused until its Namespace gets the label, or the Server
// allows every namespace; the guest policy (everything off, as the suite runs the controller)
// refuses a guest's privileged container and host folders.
func TestPlacementOnAnotherNamespacesServer(t *testing.T) {
	ctx := context.Background()
	platform, teamA, teamC := newNamespace(t), newNamespace(t), newNamespace(t)
	if err := k8s.Create(ctx, sshKeySecret(t, platform, "deploy-key")); err != nil {
		t.Fatal(err)
	}
	srv := validServer(platform)
	srv.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromSelector,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant-of": platform}}}
	if err := k8s.Create(ctx, srv); err != nil {
		t.Fatal(err)
	}
	guest := func(ns string) *kamalv1.Deployment {
		d := validDeployment(ns)
		d.Spec.Roles["web"] = kamalv1.Role{Servers: kamalv1.ServerSelector{Namespace: platform, Names: []string{"web-1"}}}
		// A guest names its hosts: a catch-all route needs the Server's consent.
		d.Spec.Proxy = &kamalv1.Proxy{Hosts: []string{ns + ".example.com"}}
		return d
	}
	a, c := guest(teamA), guest(teamC)
	for _, d := range []*kamalv1.Deployment{a, c} {
		if err := k8s.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	condsA := func() []metav1.Condition { return a.Status.Conditions }
	condsC := func() []metav1.Condition { return c.Status.Conditions }

	// Neither namespace carries the label yet.
	for _, d := range []*kamalv1.Deployment{a, c} {
		got := waitReady(t, d, func() []metav1.Condition { return d.Status.Conditions }, kamalv1.ReasonNamespaceNotAllowed)
		wantMessage(t, got, "role web: Server "+platform+"/web-1 does not allow namespace "+d.Namespace,
			"from Selector tenant-of="+platform, "nothing is placed")
		if s := meta.FindStatusCondition(d.Status.Conditions, kamalv1.ConditionStalled); s == nil || s.Reason != kamalv1.ReasonNamespaceNotAllowed {
			t.Errorf("Stalled = %+v", s)
		}
		if len(d.Status.Targets) != 0 {
			t.Errorf("targets %+v of a refused placement", d.Status.Targets)
		}
	}

	// Labelling team A's Namespace admits it: the Deployment goes on to the Server, which
	// cannot be reached (loopback port 1), and names it by namespace/name.
	labelNamespace(t, teamA, "tenant-of", platform)
	waitReady(t, a, condsA, kamalv1.ReasonUnreachable)
	if len(a.Status.Targets) != 1 || a.Status.Targets[0].Server != platform+"/web-1" {
		t.Errorf("targets = %+v, want one on %s/web-1", a.Status.Targets, platform)
	}
	if got := waitReady(t, c, condsC, kamalv1.ReasonNamespaceNotAllowed); got == nil {
		t.Fatal("team C admitted")
	}

	// The Server allows every namespace: team C is admitted too.
	update(t, srv, func(s *kamalv1.Server) {
		s.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromAll}
	})
	waitReady(t, c, condsC, kamalv1.ReasonUnreachable)

	// A guest asks for what the guest policy refuses: a privileged container and a host folder.
	acc := validAccessory(teamA)
	acc.Spec.Servers = kamalv1.ServerSelector{Namespace: platform, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}}
	acc.Spec.Options = &kamalv1.ContainerOptions{Privileged: true}
	acc.Spec.Directories = []string{"data:/var/lib/postgresql/data", "/etc:/host-etc"}
	if err := k8s.Create(ctx, acc); err != nil {
		t.Fatal(err)
	}
	got := waitReady(t, acc, func() []metav1.Condition { return acc.Status.Conditions }, kamalv1.ReasonGuestPolicy)
	wantMessage(t, got, platform+"/web-1", "spec.options.privileged", "--guest-allow-privileged",
		"spec.directories[1]: host path /etc", "--guest-host-path-prefixes")
	if strings.Contains(got.Message, "spec.directories[0]") {
		t.Errorf("a directory in the accessory's own folder is refused: %q", got.Message)
	}

	// The same Deployment placed on a Server of its own namespace is not a guest: not checked.
	own := validDeployment(platform)
	own.Name = "own"
	own.Spec.Options = &kamalv1.ContainerOptions{Privileged: true}
	own.Spec.Volumes = []string{"/etc:/host-etc"}
	if err := k8s.Create(ctx, own); err != nil {
		t.Fatal(err)
	}
	waitReady(t, own, func() []metav1.Condition { return own.Status.Conditions }, kamalv1.ReasonUnreachable)
}

// Two Server objects for one address and port are one host: the younger is Stalled
// DuplicateServer naming the older, a Deployment placed on it is held, and when the older goes
// the younger takes over.
func TestDuplicateServerWaitsForTheOwner(t *testing.T) {
	ctx := context.Background()
	nsA, nsB := newNamespace(t), newNamespace(t)
	var servers []*kamalv1.Server
	for _, ns := range []string{nsA, nsB} {
		if err := k8s.Create(ctx, sshKeySecret(t, ns, "deploy-key")); err != nil {
			t.Fatal(err)
		}
		s := validServer(ns)
		s.Spec.Address = loopbackFor(nsA)
		if err := k8s.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		servers = append(servers, s)
	}
	// The older by creationTimestamp, then UID (the two may share a second).
	owner, dup := servers[0], servers[1]
	if tenancy.Older(dup, owner) {
		owner, dup = dup, owner
	}
	d := validDeployment(dup.Namespace)
	if err := k8s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}

	got := waitReady(t, dup, func() []metav1.Condition { return dup.Status.Conditions }, kamalv1.ReasonDuplicateServer)
	wantMessage(t, got, "Server "+owner.Namespace+"/web-1, the older one, manages this host",
		"the same address and port "+loopbackFor(nsA)+":1", "never touches it")
	if r := meta.FindStatusCondition(dup.Status.Conditions, kamalv1.ConditionReachable); r == nil || r.Status != metav1.ConditionFalse || r.Reason != kamalv1.ReasonDuplicateServer {
		t.Errorf("Reachable = %+v", r)
	}
	waitReady(t, owner, func() []metav1.Condition { return owner.Status.Conditions }, kamalv1.ReasonUnreachable)
	held := waitReady(t, d, func() []metav1.Condition { return d.Status.Conditions }, kamalv1.ReasonDuplicateServer)
	wantMessage(t, held, "role web: Server "+dup.Namespace+"/web-1 is a duplicate: "+owner.Namespace+"/web-1, the older one, manages its host")

	// The owner goes: the duplicate takes over, and the Deployment goes on.
	if err := k8s.Delete(ctx, owner); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitFor, func() error {
		err := k8s.Get(ctx, types.NamespacedName{Namespace: owner.Namespace, Name: owner.Name}, &kamalv1.Server{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("owner still present (%v)", err)
	})
	waitReady(t, dup, func() []metav1.Condition { return dup.Status.Conditions }, kamalv1.ReasonUnreachable)
	waitReady(t, d, func() []metav1.Condition { return d.Status.Conditions }, kamalv1.ReasonUnreachable)
}
