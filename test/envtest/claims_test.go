package envtest

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// Two Deployments claim one host name on one Server: the earlier keeps it, the later is held
// with HostConflict naming the owner, and takes over once the owner is gone.
func TestSecondClaimOfAHostNameIsHeld(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	if err := k8s.Create(ctx, validServer(ns)); err != nil {
		t.Fatal(err)
	}
	first := validDeployment(ns)
	first.Name = "shop"
	first.Spec.Proxy = &kamalv1.Proxy{Hosts: []string{"shop.example.com"}}
	if err := k8s.Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	// Unreachable: it got past the claim check to the hosts.
	waitReady(t, first, func() []metav1.Condition { return first.Status.Conditions }, kamalv1.ReasonUnreachable)

	// Creation times have whole seconds; the second claimant is created a second later so the
	// order is by time (within one second it is by UID, which the test does not choose).
	time.Sleep(time.Until(first.CreationTimestamp.Add(time.Second)))

	second := validDeployment(ns)
	second.Name = "shop-copy"
	second.Spec.Proxy = &kamalv1.Proxy{Hosts: []string{"shop.example.com", "other.example.com"}}
	if err := k8s.Create(ctx, second); err != nil {
		t.Fatal(err)
	}
	c := waitReady(t, second, func() []metav1.Condition { return second.Status.Conditions }, kamalv1.ReasonHostConflict)
	if !strings.Contains(c.Message, "shop.example.com is routed by Deployment "+ns+"/shop") || strings.Contains(c.Message, "other.example.com") {
		t.Errorf("message %q does not name the claim and its owner alone", c.Message)
	}
	// A path of its own on the same host is a claim of its own.
	updateSpec(t, second, func(d *kamalv1.Deployment) {
		d.Spec.Proxy = &kamalv1.Proxy{Hosts: []string{"shop.example.com"}, PathPrefixes: []string{"/api"}}
	})
	waitReady(t, second, func() []metav1.Condition { return second.Status.Conditions }, kamalv1.ReasonUnreachable)
	updateSpec(t, second, func(d *kamalv1.Deployment) {
		d.Spec.Proxy = &kamalv1.Proxy{Hosts: []string{"shop.example.com"}}
	})
	waitReady(t, second, func() []metav1.Condition { return second.Status.Conditions }, kamalv1.ReasonHostConflict)

	if err := k8s.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	waitReady(t, second, func() []metav1.Condition { return second.Status.Conditions }, kamalv1.ReasonUnreachable)
}

func updateSpec(t *testing.T, d *kamalv1.Deployment, mut func(*kamalv1.Deployment)) {
	t.Helper()
	eventually(t, waitFor, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		mut(d)
		return k8s.Update(context.Background(), d)
	})
}

// A guest routed without host names would answer every host name nobody names on the
// Server's proxy: only where the Server allows it.
func TestGuestCatchAllNeedsTheServersConsent(t *testing.T) {
	platform, guest := newNamespace(t), newNamespace(t)
	ctx := context.Background()
	srv := validServer(platform)
	srv.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromAll}
	if err := k8s.Create(ctx, srv); err != nil {
		t.Fatal(err)
	}
	d := validDeployment(guest)
	d.Spec.Roles = map[string]kamalv1.Role{"web": {Servers: kamalv1.ServerSelector{Namespace: platform, Names: []string{"web-1"}}}}
	if err := k8s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	c := waitReady(t, d, func() []metav1.Condition { return d.Status.Conditions }, kamalv1.ReasonCatchAllNotAllowed)
	if !strings.Contains(c.Message, "spec.proxy.catchAllFrom") || !strings.Contains(c.Message, platform+"/web-1") {
		t.Errorf("message %q does not say which Server and setting", c.Message)
	}
	// With host names it places.
	updateSpec(t, d, func(d *kamalv1.Deployment) { d.Spec.Proxy = &kamalv1.Proxy{Hosts: []string{"guest.example.com"}} })
	waitReady(t, d, func() []metav1.Condition { return d.Status.Conditions }, kamalv1.ReasonUnreachable)
	// Or once the Server takes catch-all routes from every namespace.
	updateSpec(t, d, func(d *kamalv1.Deployment) { d.Spec.Proxy = nil })
	waitReady(t, d, func() []metav1.Condition { return d.Status.Conditions }, kamalv1.ReasonCatchAllNotAllowed)
	eventually(t, waitFor, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(srv), srv); err != nil {
			return err
		}
		srv.Spec.Proxy.CatchAllFrom = "All"
		return k8s.Update(ctx, srv)
	})
	waitReady(t, d, func() []metav1.Condition { return d.Status.Conditions }, kamalv1.ReasonUnreachable)
}
