package plugin

import (
	"reflect"
	"testing"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// A Deployment whose status lists only the targets that are not Running still runs on every
// Server its roles select.
func TestPlacementsOfACappedStatus(t *testing.T) {
	d := &kamalv1.Deployment{}
	d.Name, d.Namespace = "app", "ns"
	d.Spec.Roles = map[string]kamalv1.Role{"web": {}, "jobs": {}}
	d.Status.Targets = []kamalv1.TargetStatus{{Role: "web", Server: "web-7"}}
	d.Status.TargetsNotListed = 3
	w := &workload{Deployment: d, selected: map[string][]string{"web": {"web-1", "web-7", "web-9"}, "jobs": {"web-1"}}}
	got, err := w.placements("", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []placement{{"web-1", "web"}, {"web-7", "web"}, {"web-9", "web"}, {"web-1", "jobs"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("placements = %v, want %v", got, want)
	}
	if got, err := w.placements("", "web-9"); err != nil || len(got) != 1 || got[0].Role != "web" {
		t.Errorf("placements on web-9 = %v, %v", got, err)
	}
}

// An Accessory whose status lists only the servers where it is not Running still runs on every
// Server it selects.
func TestPlacementsOfACappedAccessory(t *testing.T) {
	a := &kamalv1.Accessory{}
	a.Name, a.Namespace = "db", "ns"
	a.Status.Servers = []kamalv1.AccessoryServerStatus{{Server: "s-7", State: kamalv1.TargetFailed}}
	a.Status.ServersNotListed = 2
	w := &workload{Accessory: a, selected: map[string][]string{"": {"s-1", "s-7", "s-9"}}}
	got, err := w.placements("", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []placement{{Server: "s-7"}, {Server: "s-1"}, {Server: "s-9"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("placements = %v, want %v", got, want)
	}
	if got, err := w.placements("", "s-9"); err != nil || len(got) != 1 {
		t.Errorf("placements on s-9 = %v, %v", got, err)
	}
}
