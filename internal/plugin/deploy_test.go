package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func TestRolloutDone(t *testing.T) {
	const img = "reg/app:new"
	d := func(observed int64, image string, conds ...metav1.Condition) *kamalv1.Deployment {
		x := &kamalv1.Deployment{}
		x.Status.ObservedGeneration, x.Status.Image, x.Status.Conditions = observed, image, conds
		return x
	}
	cond := func(t string, s metav1.ConditionStatus, gen int64) metav1.Condition {
		return metav1.Condition{Type: t, Status: s, ObservedGeneration: gen, Message: t + " message"}
	}
	ready := cond(kamalv1.ConditionReady, metav1.ConditionTrue, 3)
	for _, c := range []struct {
		name    string
		d       *kamalv1.Deployment
		done    bool
		errWant string
	}{
		{"not observed yet", d(2, "reg/app:old", cond(kamalv1.ConditionReady, metav1.ConditionTrue, 2)), false, ""},
		{"rolling", d(3, "reg/app:old", cond(kamalv1.ConditionReady, metav1.ConditionFalse, 3)), false, ""},
		{"ready with the old image", d(3, "reg/app:old", ready), false, ""},
		{"ready condition of an older generation", d(3, img, cond(kamalv1.ConditionReady, metav1.ConditionTrue, 2)), false, ""},
		{"done", d(3, img, ready), true, ""},
		{"stalled", d(3, "reg/app:old", cond(kamalv1.ConditionStalled, metav1.ConditionTrue, 3)), false, "Stalled message"},
		{"stalled before", d(3, "reg/app:old", cond(kamalv1.ConditionStalled, metav1.ConditionTrue, 2)), false, ""},
	} {
		done, err := rolloutDone(c.d, 3, img)
		if done != c.done || (err == nil) != (c.errWant == "") || (err != nil && !strings.Contains(err.Error(), c.errWant)) {
			t.Errorf("%s: done=%v err=%v", c.name, done, err)
		}
	}
}

func TestDockerfileIn(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	t.Cleanup(func() { _ = os.Chdir(wd) })
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	ctxDir := filepath.Join(dir, "app")
	for flag, want := range map[string]string{"": "Dockerfile", "app/Dockerfile.prod": "Dockerfile.prod", filepath.Join(ctxDir, "d/Dockerfile"): "d/Dockerfile"} {
		if got, err := dockerfileIn(ctxDir, flag); err != nil || got != want {
			t.Errorf("dockerfileIn(%q) = %q, %v; want %q", flag, got, err, want)
		}
	}
	for _, bad := range []string{"Dockerfile", "../x/Dockerfile", "app/../Dockerfile"} {
		if _, err := dockerfileIn(ctxDir, bad); err == nil {
			t.Errorf("dockerfileIn(%q) accepted a Dockerfile outside the context", bad)
		}
	}
}
