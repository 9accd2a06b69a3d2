package plugin

import (
	"testing"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func TestReleaseRoleOf(t *testing.T) {
	d := &kamalv1.Deployment{Spec: kamalv1.DeploymentSpec{PrimaryRole: "app"}}
	if r, err := releaseRoleOf(&workload{Deployment: d}); err != nil || r != "app" {
		t.Errorf("no release spec: %q, %v; want the primary role", r, err)
	}
	d.Spec.Rollout.Release = &kamalv1.ReleaseCommand{Cmd: []string{"migrate"}, Role: "jobs"}
	if r, err := releaseRoleOf(&workload{Deployment: d}); err != nil || r != "jobs" {
		t.Errorf("release of jobs: %q, %v", r, err)
	}
	if _, err := releaseRoleOf(&workload{Accessory: &kamalv1.Accessory{}}); err == nil {
		t.Error("an Accessory has no release command")
	}
}
