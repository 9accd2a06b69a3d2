package oneoff

import (
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func TestExpired(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	oneOff := Labels("shop", KindExec, "Deployment", "web")
	at := func(ago time.Duration) int64 { return now.Add(-ago).Unix() }
	cs := []container.Summary{
		{ID: "exited-old", Labels: oneOff, State: container.StateExited, Created: at(10 * time.Minute)},
		{ID: "exited-new", Labels: oneOff, State: container.StateExited, Created: at(time.Minute)},
		{ID: "created-old", Labels: oneOff, State: container.StateCreated, Created: at(6 * time.Minute)},
		{ID: "running-old", Labels: oneOff, State: container.StateRunning, Created: at(25 * time.Hour)},
		{ID: "running-hours", Labels: oneOff, State: container.StateRunning, Created: at(3 * time.Hour)},
		// A deployed container of the same namespace, however old and stopped, is never one.
		{ID: "deployed", State: container.StateExited, Created: at(100 * time.Hour), Labels: map[string]string{
			kamalv1.LabelManagedBy: kamalv1.ManagerName, kamalv1.LabelNamespace: "shop", kamalv1.LabelDeployment: "web"}},
		// A release container is its Deployment's to remove, kept for its logs however old.
		{ID: "release", Labels: ReleaseLabels("shop", "web", "abc"), State: container.StateExited, Created: at(100 * time.Hour)},
		{ID: "release-running", Labels: ReleaseLabels("shop", "web", "abd"), State: container.StateRunning, Created: at(100 * time.Hour)},
		// The label alone, on a container not made by kamal-operator, is not enough.
		{ID: "foreign", State: container.StateExited, Created: at(100 * time.Hour), Labels: map[string]string{kamalv1.LabelOneOff: "exec"}},
	}
	ids, next := Expired(cs, now, DefaultExitedGrace, DefaultRunningGrace)
	if want := []string{"created-old", "exited-old", "running-old"}; !slices.Equal(ids, want) {
		t.Errorf("expired %v, want %v", ids, want)
	}
	if want := now.Add(-time.Minute).Add(DefaultExitedGrace); !next.Equal(want) {
		t.Errorf("next expiry %s, want %s (exited-new's)", next, want)
	}
	if ids, next := Expired(nil, now, DefaultExitedGrace, DefaultRunningGrace); ids != nil || !next.IsZero() {
		t.Errorf("nothing on the host: got %v, %s", ids, next)
	}
}

func TestLabelsCarryNoWorkloadLabels(t *testing.T) {
	l := Labels("shop", KindExec, "Accessory", "db")
	for _, k := range []string{kamalv1.LabelDeployment, kamalv1.LabelAccessory, kamalv1.LabelRole, kamalv1.LabelVersion, kamalv1.LabelSpecHash} {
		if _, ok := l[k]; ok {
			t.Errorf("a one-off container carries %s: the controller would take it for its workload's", k)
		}
	}
	if l[kamalv1.LabelOneOffFor] != "Accessory/db" || l[kamalv1.LabelNamespace] != "shop" {
		t.Errorf("labels %v", l)
	}
	r := ReleaseLabels("shop", "web", "abc")
	for _, k := range []string{kamalv1.LabelDeployment, kamalv1.LabelRole, kamalv1.LabelVersion, kamalv1.LabelSpecHash} {
		if _, ok := r[k]; ok {
			t.Errorf("a release container carries %s: the planner would take it for a version", k)
		}
	}
	if r[kamalv1.LabelOneOff] != KindRelease || r[LabelRevision] != "abc" || r[kamalv1.LabelOneOffFor] != "Deployment/web" {
		t.Errorf("release labels %v", r)
	}
}
