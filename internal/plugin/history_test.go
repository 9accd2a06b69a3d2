package plugin

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

var now = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

func TestRenderHistory(t *testing.T) {
	d := &kamalv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "dokuya"},
		Spec:       kamalv1.DeploymentSpec{Image: "registry.example.com/dokuya:v1"},
		Status: kamalv1.DeploymentStatus{Image: "registry.example.com/dokuya:v1", History: []kamalv1.DeployedImage{
			{Image: "registry.example.com/dokuya:v1", Version: "v1", DeployedAt: ago(90 * time.Second)},
			{Image: "registry.example.com/dokuya:v2", Version: "v2", DeployedAt: ago(3 * time.Hour)},
			{Image: "registry.example.com/dokuya:v1", Version: "v1", DeployedAt: ago(50 * time.Hour)},
		}},
	}
	want := `   VERSION  IMAGE                           DEPLOYED AT           AGE
*  v1       registry.example.com/dokuya:v1  2026-03-02T11:58:30Z  90s
   v2       registry.example.com/dokuya:v2  2026-03-02T09:00:00Z  3h
   v1       registry.example.com/dokuya:v1  2026-02-28T10:00:00Z  2d2h
`
	if got := renderHistory(d, now); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	d.Spec.Image = "registry.example.com/dokuya:v3"
	if got := renderHistory(d, now); got != want+"\nspec.image is registry.example.com/dokuya:v3: rolling out, or halted (see kubectl kamal status dokuya)\n" {
		t.Errorf("a rollout under way:\n%s", got)
	}

	fresh := &kamalv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "new"}, Spec: kamalv1.DeploymentSpec{Image: "app:v1"}}
	if got := renderHistory(fresh, now); got != "deployment new has no completed rollout yet (rolling out app:v1)\n" {
		t.Errorf("no history: %q", got)
	}
}
