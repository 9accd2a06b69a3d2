package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

// One Deployment on one host, v1 then v2: history lists both, rollback returns to v1, status
// shows it, and restart replaces the container with another of v1 while status -w follows.
func TestPluginHistoryRollbackStatusRestart(t *testing.T) {
	ns := newNamespace(t)
	keySecret(t, ns)
	h := env.Host(hostMain)
	srv := serverFor(ns, "web-1", h)
	createServer(t, srv)
	waitReady(t, srv)

	const name, hostName = "rollme", "rollme.test"
	v1, v2 := env.Image("sampleapp:v1"), env.Image("sampleapp:v2")
	d := appDeployment(ns, name, "v1")
	createDeployment(t, d)
	waitDeployed(t, d)
	update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = v2 })
	waitDeployed(t, d)
	framework.Eventually(t, reactWithin, answers(h, hostName, "/version", 200, "v2"))

	hist := kamal(t, ns, "", 30*time.Second, "history", name)
	if hist.Code != 0 || !strings.Contains(hist.Stdout, v1) || !strings.Contains(hist.Stdout, v2) {
		t.Fatalf("history: exit %d\n%s%s", hist.Code, hist.Stdout, hist.Stderr)
	}
	if first := strings.Split(hist.Stdout, "\n")[1]; !strings.HasPrefix(first, "*") || !strings.Contains(first, v2) {
		t.Errorf("history does not mark v2 as current first:\n%s", hist.Stdout)
	}

	unknown := kamal(t, ns, "", 30*time.Second, "rollback", name, "v9")
	if unknown.Code == 0 || !strings.Contains(unknown.Stderr, "known: v2") {
		t.Errorf("rollback to an unknown version: exit %d, stderr %q", unknown.Code, unknown.Stderr)
	}
	rb := kamal(t, ns, "", 30*time.Second, "rollback", name)
	if want := fmt.Sprintf("deployment %s: image %s → %s", name, v2, v1); rb.Code != 0 || !strings.Contains(rb.Stdout, want) {
		t.Fatalf("rollback: exit %d, stdout %q (want %q), stderr %q", rb.Code, rb.Stdout, want, rb.Stderr)
	}
	if rb.Stderr != "" {
		t.Errorf("rollback of an object no GitOps tool applies warned: %q", rb.Stderr)
	}
	framework.Eventually(t, reactWithin, answers(h, hostName, "/version", 200, "v1"))
	waitDeployed(t, d)
	if d.Spec.Image != v1 || d.Status.Version != "v1" {
		t.Errorf("after rollback: spec.image %s, status.version %s", d.Spec.Image, d.Status.Version)
	}

	st := kamal(t, ns, "", 30*time.Second, "status", name)
	t.Logf("status:\n%s", st.Stdout)
	for _, want := range []string{"✔ Healthy", "# web", "□ web-1", "✔ Running", "v1", "Ready  True"} {
		if !strings.Contains(st.Stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, st.Stdout)
		}
	}
	if st.Code != 0 {
		t.Errorf("status: exit %d, stderr %q", st.Code, st.Stderr)
	}

	// Restart, followed by status -w and under load: the container is replaced by another
	// of v1 and no request fails.
	running := func() sets.Set[string] {
		out := hostExec(t, h, "docker", "ps", "-q", "--no-trunc",
			"--filter", "label="+kamalv1.LabelNamespace+"="+ns, "--filter", "label="+kamalv1.LabelDeployment+"="+name)
		return sets.New(strings.Fields(out)...)
	}
	before := running()
	if before.Len() != 1 {
		t.Fatalf("running containers before the restart: %v", sets.List(before))
	}
	watchCtx, stopWatch := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stopWatch()
	watcher := kamalCmd(watchCtx, t, ns, "status", name, "-w")
	var watched syncBuffer
	var watchErr bytes.Buffer
	watcher.Stdout, watcher.Stderr = &watched, &watchErr
	if err := watcher.Start(); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, func() error {
		if !strings.Contains(watched.String(), "Events:") {
			return fmt.Errorf("status -w drew nothing yet")
		}
		return nil
	})
	l := runLoad(loadSpec{hosts: []int{hostMain}, hostName: hostName, want: "v1"}, 2, 100_000, time.Minute)

	rs := kamal(t, ns, "", 30*time.Second, "restart", name)
	if rs.Code != 0 || !strings.Contains(rs.Stdout, "deployment "+name+": restartedAt ") {
		t.Fatalf("restart: exit %d, stdout %q, stderr %q", rs.Code, rs.Stdout, rs.Stderr)
	}
	waitDeployed(t, d)
	if d.Spec.RestartedAt == nil {
		t.Error("restart left spec.restartedAt unset")
	}
	framework.Eventually(t, reactWithin, func() error {
		if now := running(); now.Len() != 1 || now.Equal(before) {
			return fmt.Errorf("running containers %v, want one other than %v", sets.List(now), sets.List(before))
		}
		return nil
	})
	framework.Eventually(t, reactWithin, answers(h, hostName, "/version", 200, "v1"))
	okN, failed, firstErr := l.finish()
	t.Logf("during the restart: %d requests ok, %d failed", okN, failed)
	if failed != 0 || okN == 0 {
		t.Errorf("%d of %d requests failed during the restart (first: %s)", failed, okN+failed, firstErr)
	}
	if d.Status.Version != "v1" || d.Spec.Image != v1 {
		t.Errorf("after restart: spec.image %s, status.version %s", d.Spec.Image, d.Status.Version)
	}

	// status -w drew the restart's progress, then the healthy result, and ends on Ctrl-C
	// with exit 0.
	framework.Eventually(t, 30*time.Second, func() error {
		out := watched.String()
		drawings := strings.Split(out, "\n\nName:")
		if len(drawings) < 3 || !strings.Contains(drawings[len(drawings)-1], "✔ Healthy") {
			return fmt.Errorf("status -w drew %d times; the last:\n%s", len(drawings), drawings[len(drawings)-1])
		}
		return nil
	})
	if !strings.Contains(watched.String(), "◌ Progressing") {
		t.Errorf("status -w never drew the restart in progress:\n%s", watched.String())
	}
	if err := watcher.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := watcher.Wait(); err != nil {
		t.Errorf("status -w after Ctrl-C: %v; stderr %q", err, watchErr.String())
	}
}
