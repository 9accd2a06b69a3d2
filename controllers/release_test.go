package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func TestDecideRelease(t *testing.T) {
	last := func(rev string, p kamalv1.ReleasePhase, server string) *kamalv1.ReleaseStatus {
		return &kamalv1.ReleaseStatus{Revision: rev, Phase: p, Server: server}
	}
	servers := []string{"web-1", "web-2"}
	cases := []struct {
		name   string
		in     releaseInput
		action releaseAction
		server string
	}{
		{"new revision: run on the first candidate", releaseInput{Revision: "b", Pending: true, Candidates: servers, Connected: servers}, releaseStart, "web-1"},
		{"first deploy, no status yet", releaseInput{Revision: "a", Pending: true, Candidates: []string{"web-2"}, Connected: servers}, releaseStart, "web-2"},
		{"already released (a rollback)", releaseInput{Revision: "a", Pending: true, Released: []string{"b", "a"}, Candidates: servers}, releaseProceed, ""},
		{"it runs in this process", releaseInput{Revision: "b", Pending: true, Running: true, Candidates: servers}, releaseWait, ""},
		{"it succeeded", releaseInput{Revision: "b", Pending: true, Last: last("b", kamalv1.ReleaseSucceeded, "web-1")}, releaseProceed, ""},
		{"it failed: halted, not retried", releaseInput{Revision: "b", Pending: true, Last: last("b", kamalv1.ReleaseFailed, "web-1"), Candidates: servers}, releaseHalted, ""},
		{"it failed for another revision: the new one runs", releaseInput{Revision: "c", Pending: true, Last: last("b", kamalv1.ReleaseFailed, "web-1"), Candidates: servers}, releaseStart, "web-1"},
		{"started before a restart: wait for it where it was made", releaseInput{Revision: "b", Pending: true, Last: last("b", kamalv1.ReleaseRunning, "web-2"), Candidates: servers, Connected: servers}, releaseStart, "web-2"},
		{"started before a restart, its host unreachable: nothing starts elsewhere", releaseInput{Revision: "b", Pending: true, Last: last("b", kamalv1.ReleaseRunning, "web-2"), Candidates: []string{"web-1"}, Connected: []string{"web-1"}}, releaseNoServer, "web-2"},
		{"started before a restart, even when nothing is pending any more", releaseInput{Revision: "b", Last: last("b", kamalv1.ReleaseRunning, "web-1"), Connected: servers}, releaseStart, "web-1"},
		{"nothing would switch (release added to a converged spec)", releaseInput{Revision: "b", Candidates: servers}, releaseProceed, ""},
		{"no Ready server of the role", releaseInput{Revision: "b", Pending: true, Connected: servers}, releaseNoServer, ""},
		{"released, even with a failure of it recorded later", releaseInput{Revision: "b", Pending: true, Released: []string{"b"}, Last: last("b", kamalv1.ReleaseFailed, "web-1")}, releaseProceed, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, s := decideRelease(c.in)
			if a != c.action || s != c.server {
				t.Errorf("got (%d, %q), want (%d, %q)", a, s, c.action, c.server)
			}
		})
	}
}

func TestRedactSecrets(t *testing.T) {
	out := "connecting to postgres://app:s3cr3t-pw@db:5432/app\nkey=s3cr3t-pw-long and s3cr3t-pw\nmulti: line-one-value\ntoken 1\n"
	got := redactSecrets(out, []string{"s3cr3t-pw", "s3cr3t-pw-long", "", "line-one-value\nline-two-value"})
	for _, leaked := range []string{"s3cr3t", "line-one-value"} {
		if strings.Contains(got, leaked) {
			t.Errorf("%q leaks %q", got, leaked)
		}
	}
	want := "connecting to postgres://app:[redacted]@db:5432/app\nkey=[redacted] and [redacted]\nmulti: [redacted]\ntoken 1\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	if got := redactSecrets("nothing secret", nil); got != "nothing secret" {
		t.Errorf("no secrets: %q", got)
	}
}

func TestOutputTail(t *testing.T) {
	var lines []string
	for i := 1; i <= 30; i++ {
		lines = append(lines, fmt.Sprintf("line %d", i))
	}
	got := outputTail(strings.Join(lines, "\n")+"\n", 20, 2048)
	if !strings.HasPrefix(got, "line 11\n") || !strings.HasSuffix(got, "line 30") {
		t.Errorf("last 20 lines: %q", got)
	}
	long := strings.Repeat("x", 100) + "\n" + strings.Repeat("y", 3000) + "\nend"
	if got := outputTail(long, 20, 2048); len(got) > 2048 || !strings.HasSuffix(got, "y\nend") || !strings.HasPrefix(got, "…y") {
		t.Errorf("bounded to 2 KiB: %d bytes, %.20q", len(got), got)
	}
	if got := outputTail("", 20, 2048); got != "" {
		t.Errorf("empty: %q", got)
	}
}

func TestRecordReleased(t *testing.T) {
	var list []string
	for i := range 25 {
		list = recordReleased(list, fmt.Sprint(i))
	}
	if len(list) != releasedLimit || list[0] != "24" || list[releasedLimit-1] != "5" {
		t.Errorf("bounded, newest first: %v", list)
	}
	list = recordReleased(list, "10")
	if list[0] != "10" || slices.Index(list[1:], "10") >= 0 || len(list) != releasedLimit {
		t.Errorf("again: moved first, once: %v", list)
	}
}

func TestReleaseRevision(t *testing.T) {
	r := &kamalv1.ReleaseCommand{Cmd: []string{"bin/migrate"}}
	a := releaseRevision("rev1", r, "web")
	if a != releaseRevision("rev1", &kamalv1.ReleaseCommand{Cmd: []string{"bin/migrate"}, Timeout: &metav1.Duration{Duration: 10 * time.Minute}}, "web") {
		t.Error("the default timeout spelt out changes the revision")
	}
	for _, other := range []string{
		releaseRevision("rev2", r, "web"),
		releaseRevision("rev1", &kamalv1.ReleaseCommand{Cmd: []string{"bin/migrate", "--fixed"}}, "web"),
		releaseRevision("rev1", r, "jobs"),
	} {
		if other == a {
			t.Error("another revision, command or role has the same release revision")
		}
	}
}

// The revision follows spec.restartedAt (a restart runs the release again), while adding a
// release command changes neither the revision nor any container's hash: nothing restarts.
func TestReleaseRevisionInputs(t *testing.T) {
	s := runtime.NewScheme()
	if err := kamalv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	r := &DeploymentReconciler{Client: fake.NewClientBuilder().WithScheme(s).Build()}
	d := &kamalv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app", UID: "uid-1"},
		Spec: kamalv1.DeploymentSpec{
			Image: "registry.test/app:v1", PrimaryRole: "web",
			Roles: map[string]kamalv1.Role{"web": {}, "jobs": {Cmd: []string{"jobs"}}},
			Env:   []kamalv1.EnvVar{{Name: "A", Value: "1"}},
			Rollout: kamalv1.Rollout{ // the API's defaults
				DeployTimeout: &metav1.Duration{Duration: 30 * time.Second}, ReadinessDelay: &metav1.Duration{Duration: 7 * time.Second},
			},
		},
	}
	resolve := func() (map[string]string, string) {
		roles, rev, p, err := r.resolveRoles(context.Background(), d)
		if err != nil || p != nil {
			t.Fatal(err, p)
		}
		hashes := map[string]string{}
		for n, role := range roles {
			hashes[n] = role.Hash(string(d.UID))
		}
		return hashes, rev
	}
	hashes, rev := resolve()
	d.Spec.Rollout.Release = &kamalv1.ReleaseCommand{Cmd: []string{"migrate"}}
	if h, r2 := resolve(); r2 != rev || !maps.Equal(h, hashes) {
		t.Errorf("adding a release changed the revision (%s → %s) or hashes (%v → %v)", rev, r2, hashes, h)
	}
	rel := releaseRevision(rev, d.Spec.Rollout.Release, "web")
	d.Spec.RestartedAt = &metav1.Time{Time: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	_, restarted := resolve()
	if restarted == rev || releaseRevision(restarted, d.Spec.Rollout.Release, "web") == rel {
		t.Error("spec.restartedAt does not change the revision: a restart would not run the release")
	}
}
