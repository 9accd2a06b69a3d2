package controllers

import (
	"context"
	"fmt"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func deploymentOn(ns, name string, sels ...kamalv1.ServerSelector) *kamalv1.Deployment {
	d := &kamalv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: kamalv1.DeploymentSpec{Roles: map[string]kamalv1.Role{}}}
	for i, sel := range sels {
		d.Spec.Roles[fmt.Sprintf("r%d", i)] = kamalv1.Role{Servers: sel}
	}
	return d
}

func byLabel(ns string, kv ...string) kamalv1.ServerSelector {
	return kamalv1.ServerSelector{Namespace: ns, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{kv[0]: kv[1]}}}
}

// A Server's change wakes the Deployments that select it, by name or labels, in its namespace
// or another, and no other Deployment of its namespace.
func TestServerChangeWakesOnlyTheDeploymentsThatSelectIt(t *testing.T) {
	s := runtime.NewScheme()
	if err := kamalv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).
		WithIndex(&kamalv1.Deployment{}, indexSelects, func(o client.Object) []string {
			return selectsValues(o.GetNamespace(), selectorsOf(o)...)
		}).
		WithObjects(
			deploymentOn("shop", "web", byLabel("", "tier", "web")),
			deploymentOn("shop", "named", kamalv1.ServerSelector{Names: []string{"db-1"}}),
			deploymentOn("shop", "db", byLabel("", "tier", "db"), kamalv1.ServerSelector{Names: []string{"db-9"}}),
			deploymentOn("shop", "elsewhere", kamalv1.ServerSelector{Namespace: "platform", Names: []string{"web-1"}}, byLabel("platform", "tier", "web")),
			deploymentOn("team", "guest", byLabel("shop", "tier", "web")),
			deploymentOn("team", "guest-named", kamalv1.ServerSelector{Namespace: "shop", Names: []string{"web-1"}}),
		).Build()
	mapped := selectingObjects(c, &kamalv1.DeploymentList{})
	woken := func(srv *kamalv1.Server) []string {
		var out []string
		for _, r := range mapped(context.Background(), srv) {
			out = append(out, r.String())
		}
		slices.Sort(out)
		return out
	}
	web1 := &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", Labels: map[string]string{"tier": "web"}}}
	db1 := &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-1", Labels: map[string]string{"tier": "db"}}}
	other := &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cache-1", Labels: map[string]string{"tier": "cache"}}}
	for _, tc := range []struct {
		srv  *kamalv1.Server
		want []string
	}{
		{web1, []string{"shop/web", "team/guest", "team/guest-named"}},
		{db1, []string{"shop/db", "shop/named"}},
		{other, nil},
	} {
		if got := woken(tc.srv); !slices.Equal(got, tc.want) {
			t.Errorf("%s wakes %v, want %v", tc.srv.Name, got, tc.want)
		}
	}
	// Relabelled: the old labels wake the Deployment it leaves, the new ones those it joins
	// (the handler maps both sides of an update).
	moved := web1.DeepCopy()
	moved.Labels = map[string]string{"tier": "db"}
	got := append(woken(web1), woken(moved)...)
	slices.Sort(got)
	if got = slices.Compact(got); !slices.Equal(got, []string{"shop/db", "shop/web", "team/guest", "team/guest-named"}) {
		t.Errorf("a relabelled Server wakes %v", got)
	}
	// Being deleted, it waits for everything of its namespace to leave its host.
	deleting := other.DeepCopy()
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	deleting.Finalizers = []string{ServerFinalizer}
	if got := woken(deleting); !slices.Equal(got, []string{"shop/db", "shop/elsewhere", "shop/named", "shop/web"}) {
		t.Errorf("a Server being deleted wakes %v", got)
	}
}

func TestServerChangedIgnoresStatusChatter(t *testing.T) {
	base := &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", Generation: 2, Labels: map[string]string{"tier": "web"}}}
	base.Status.Conditions = []metav1.Condition{
		{Type: kamalv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Reconciled", Message: "connected", ObservedGeneration: 2},
		{Type: kamalv1.ConditionReachable, Status: metav1.ConditionTrue, Reason: "Connected", Message: "connected", ObservedGeneration: 2},
	}
	for _, tc := range []struct {
		name   string
		change func(*kamalv1.Server)
		want   bool
	}{
		{"nothing", func(*kamalv1.Server) {}, false},
		{"a message", func(s *kamalv1.Server) { s.Status.Conditions[0].Message = "connected; 2 one-off containers" }, false},
		{"the proxy hash", func(s *kamalv1.Server) { s.Status.ProxyHash = "abc" }, false},
		{"condition order", func(s *kamalv1.Server) { slices.Reverse(s.Status.Conditions) }, false},
		{"Ready", func(s *kamalv1.Server) { s.Status.Conditions[0].Status = metav1.ConditionFalse }, true},
		{"Reachable's reason", func(s *kamalv1.Server) { s.Status.Conditions[1].Reason = "Unreachable" }, true},
		{"a condition's generation", func(s *kamalv1.Server) { s.Status.Conditions[1].ObservedGeneration = 3 }, true},
		{"the spec", func(s *kamalv1.Server) { s.Generation = 3 }, true},
		{"labels", func(s *kamalv1.Server) { s.Labels = map[string]string{"tier": "db"} }, true},
		{"deletion", func(s *kamalv1.Server) { now := metav1.Now(); s.DeletionTimestamp = &now }, true},
		{"facts", func(s *kamalv1.Server) { s.Status.Facts = &kamalv1.ServerFacts{Architecture: "arm64"} }, true},
		{"host key", func(s *kamalv1.Server) { s.Status.HostKeyFingerprint = "SHA256:x" }, true},
	} {
		n := base.DeepCopy()
		tc.change(n)
		if got := serverChanged.Update(event.UpdateEvent{ObjectOld: base, ObjectNew: n}); got != tc.want {
			t.Errorf("%s: passes %v, want %v", tc.name, got, tc.want)
		}
	}
	if !serverChanged.Create(event.CreateEvent{Object: base}) || !serverChanged.Delete(event.DeleteEvent{Object: base}) {
		t.Error("creation and deletion must pass")
	}
}
