package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func TestDelayedWakesGatherIntoOne(t *testing.T) {
	woken := make(chan string, 10)
	w := newDelayedWakes(20*time.Millisecond, func(ns, name string) { woken <- ns + "/" + name })
	for range 5 {
		w.add("ns", "app")
	}
	w.add("ns", "other")
	got := map[string]int{}
	for range 2 {
		select {
		case k := <-woken:
			got[k]++
		case <-time.After(5 * time.Second):
			t.Fatalf("woken: %v", got)
		}
	}
	select {
	case k := <-woken:
		t.Fatalf("a second wake of %s", k)
	case <-time.After(100 * time.Millisecond):
	}
	if got["ns/app"] != 1 || got["ns/other"] != 1 {
		t.Errorf("woken %v", got)
	}
	w.add("ns", "app") // after the wake, a new add wakes again
	select {
	case k := <-woken:
		if k != "ns/app" {
			t.Errorf("woken %s", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no wake after the first")
	}
}

// A Deployment's own status write does not wake it; what a user changes does.
func TestDeploymentChangedIgnoresStatusWrites(t *testing.T) {
	old := &kamalv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "app", Generation: 3, Finalizers: []string{DeploymentFinalizer}}}
	change := func(f func(d *kamalv1.Deployment)) bool {
		d := old.DeepCopy()
		f(d)
		return deploymentChanged.Update(event.UpdateEvent{ObjectOld: old, ObjectNew: d})
	}
	if change(func(d *kamalv1.Deployment) { d.Status.ReadyTargets = 7; d.ResourceVersion = "9" }) {
		t.Error("a status write wakes the Deployment")
	}
	for what, f := range map[string]func(d *kamalv1.Deployment){
		"spec": func(d *kamalv1.Deployment) { d.Generation = 4 },
		"annotation": func(d *kamalv1.Deployment) {
			d.Annotations = map[string]string{"kamal.operator.dev/restartedAt": "now"}
		},
		"label":      func(d *kamalv1.Deployment) { d.Labels = map[string]string{"team": "a"} },
		"deletion":   func(d *kamalv1.Deployment) { now := metav1.Now(); d.DeletionTimestamp = &now },
		"finalizers": func(d *kamalv1.Deployment) { d.Finalizers = nil },
	} {
		if !change(f) {
			t.Errorf("a change of its %s does not wake it", what)
		}
	}
}
