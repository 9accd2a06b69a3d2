package controllers

import (
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/tenancy"
)

func TestServerRefRoundTrip(t *testing.T) {
	own := &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web-1"}}
	foreign := &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: "platform", Name: "web-1"}}
	if got := serverRef("team-a", own); got != "web-1" {
		t.Errorf("own ref = %q", got)
	}
	if got := serverRef("team-a", foreign); got != "platform/web-1" {
		t.Errorf("foreign ref = %q", got)
	}
	for _, s := range []*kamalv1.Server{own, foreign} {
		if got, want := serverKeyOf("team-a", serverRef("team-a", s)), (types.NamespacedName{Namespace: s.Namespace, Name: s.Name}); got != want {
			t.Errorf("serverKeyOf = %v, want %v", got, want)
		}
	}
}

func TestGuestOfValues(t *testing.T) {
	got := guestOfValues("team-a",
		kamalv1.ServerSelector{Names: []string{"mine"}},
		kamalv1.ServerSelector{Namespace: "team-a", Names: []string{"mine-too"}},
		kamalv1.ServerSelector{Namespace: "platform", Names: []string{"web-1", "web-2"}},
		kamalv1.ServerSelector{Namespace: "platform", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}},
	)
	want := []string{"*", "platform/*", "platform/web-1", "platform/web-2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("values = %v, want %v", got, want)
	}
	if got := guestOfValues("team-a", kamalv1.ServerSelector{Names: []string{"mine"}}); len(got) != 0 {
		t.Errorf("an object placing only in its own namespace is indexed as %v", got)
	}
}

func TestGuestProblem(t *testing.T) {
	refuseAll := func(sels []string) []tenancy.Violation {
		return []tenancy.Violation{{Field: "spec.options.privileged", Why: "no (" + strings.Join(sels, ",") + ")"}}
	}
	if p := guestProblem(map[string][]string{"web": {"web-1"}}, refuseAll); p != nil {
		t.Errorf("own-namespace placement checked: %+v", p)
	}
	p := guestProblem(map[string][]string{"web": {"platform/web-1", "platform/web-2"}, "jobs": {"jobs-1"}}, refuseAll)
	if p == nil || p.Reason != kamalv1.ReasonGuestPolicy ||
		p.Message != "placed on Servers of another namespace (platform/web-1), where the controller's guest policy refuses: spec.options.privileged: no (web); nothing is placed" {
		t.Errorf("problem = %+v", p)
	}
	if p := guestProblem(map[string][]string{"web": {"platform/web-1"}}, func([]string) []tenancy.Violation { return nil }); p != nil {
		t.Errorf("allowed by the policy, got %+v", p)
	}
}
