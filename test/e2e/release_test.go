package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/oneoff"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

const releaseSecretToken = "tok-release-5d2e91b7"

// TestReleaseCommand runs spec.rollout.release (the sample app's release mode, which writes a
// row into a PostgreSQL accessory) across one Deployment's versions: before the switch, once
// per revision, halting on failure with its redacted output, not again on a rollback, exactly
// once across a controller killed mid-release; its output through logs --release; its stopped
// container left alone by the one-off collector and removed with the Deployment.
func TestReleaseCommand(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	keySecret(t, ns)
	h := env.Host(hostMain)
	srv := serverFor(ns, "web-1", h)
	createServer(t, srv)
	dbSecrets(t, ns)
	if err := k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-secrets"},
		StringData: map[string]string{"SECRET_TOKEN": releaseSecretToken},
	}); err != nil {
		t.Fatal(err)
	}
	a := postgresAccessory(ns)
	d := dbApp(ns)
	d.Name = "rel"
	d.Spec.Proxy.Hosts = []string{"rel.test"}
	d.Spec.Env = append(d.Spec.Env,
		kamalv1.EnvVar{Name: "SECRET_TOKEN", ValueFrom: &kamalv1.EnvVarSource{SecretKeyRef: fromSecret("SECRET_TOKEN")}},
		kamalv1.EnvVar{Name: "RELEASE_ECHO", Value: "SECRET_TOKEN"},
	)
	d.Spec.Rollout.Release = &kamalv1.ReleaseCommand{Cmd: []string{"release"}, Timeout: &metav1.Duration{Duration: time.Minute}}
	waitReady(t, srv)
	createAccessory(t, a)
	t0 := time.Now()
	createDeployment(t, d)
	waitDeployed(t, d)
	t.Logf("first deploy with its release: %s", time.Since(t0).Round(100*time.Millisecond))

	db := strings.TrimSpace(hostExec(t, h, "docker", "ps", "--filter", "label="+kamalv1.LabelNamespace+"="+ns,
		"--filter", "label="+kamalv1.LabelAccessory+"=db", "--format", "{{.Names}}"))
	sql := func(query string) string {
		return hostExec(t, h, "docker", "exec", db, "psql", "-U", "app", "-d", "app", "-At", "-c", query)
	}
	releaseRows := func(version string) int {
		n, err := strconv.Atoi(strings.TrimSpace(sql("SELECT count(*) FROM kamal_rows WHERE value = 'release " + version + "'")))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	allRows := func() int {
		n, err := strconv.Atoi(strings.TrimSpace(sql("SELECT count(*) FROM kamal_rows")))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	releaseContainers := func(all bool) []string {
		args := []string{"docker", "ps", "--filter", "label=" + kamalv1.LabelOneOff + "=" + oneoff.KindRelease,
			"--filter", "label=" + kamalv1.LabelNamespace + "=" + ns, "--format", "{{.Names}} {{.State}}"}
		if all {
			args = append(args, "-a")
		}
		return strings.Fields(strings.ReplaceAll(hostExec(t, h, args...), "\n", " "))
	}
	get := func() {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
			t.Fatal(err)
		}
	}
	if n := releaseRows("v1"); n != 1 {
		t.Fatalf("first deploy: %d release rows of v1, want 1", n)
	}

	t.Run("before the switch", func(t *testing.T) {
		update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = env.Image("sampleapp:v2") })
		waitDeployed(t, d)
		framework.Eventually(t, reactWithin, answers(h, "rel.test", "/version", 200, "v2"))
		get()
		r := d.Status.Release
		if r == nil || r.Phase != kamalv1.ReleaseSucceeded || r.ExitCode == nil || *r.ExitCode != 0 || r.Server != "web-1" ||
			r.Revision == "" || r.Image != d.Spec.Image || r.StartedAt == nil || r.FinishedAt == nil {
			t.Fatalf("status.release %+v", r)
		}
		if len(d.Status.ReleasedRevisions) != 2 || d.Status.ReleasedRevisions[0] != r.Revision {
			t.Errorf("releasedRevisions %v, want 2 with %s first", d.Status.ReleasedRevisions, r.Revision)
		}
		if n := releaseRows("v2"); n != 1 {
			t.Fatalf("%d release rows of v2, want 1", n)
		}
		created, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(sql(
			"SELECT to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM kamal_rows WHERE value = 'release v2'")))
		if err != nil {
			t.Fatal(err)
		}
		started, err := time.Parse(time.RFC3339Nano, hostExec(t, h, "docker", "inspect", "-f", "{{.State.StartedAt}}", "rel-web-v2"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("release row written at %s, rel-web-v2 started %s later", created.Format(time.StampMicro), started.Sub(created).Round(time.Millisecond))
		if !created.Before(started) {
			t.Errorf("the release row (%s) is not older than the new container's start (%s)", created, started)
		}
	})

	t.Run("logs --release", func(t *testing.T) {
		r := kamal(t, ns, "", time.Minute, "logs", "rel", "--release")
		if r.Code != 0 || !strings.Contains(r.Stdout, "release v2: inserted row") || !strings.Contains(r.Stdout, "release v2: done") {
			t.Fatalf("exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
		}
	})

	t.Run("a failing release halts before the switch", func(t *testing.T) {
		update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = env.Image("sampleapp:broken") })
		c := waitDeployment(t, d, kamalv1.ConditionStalled, metav1.ConditionTrue, kamalv1.ReasonReleaseFailed, reactWithin)
		t.Logf("Stalled: %s", c.Message)
		for _, want := range []string{"exited with code 1", "release broken: failed", "SECRET_TOKEN is [redacted]"} {
			if !strings.Contains(c.Message, want) {
				t.Errorf("condition message lacks %q", want)
			}
		}
		if strings.Contains(c.Message, releaseSecretToken) || strings.Contains(c.Message, dbPassword) {
			t.Errorf("condition message shows a Secret value: %q", c.Message)
		}
		waitEvent(t, ns, "rel", kamalv1.ReasonReleaseFailed)
		if e := eventOf(t, ns, "rel", kamalv1.ReasonReleaseFailed); e == nil || strings.Contains(e.Note, releaseSecretToken) || !strings.Contains(e.Note, "[redacted]") {
			t.Errorf("event %+v", e)
		}
		if err := answers(h, "rel.test", "/version", 200, "v2")(); err != nil {
			t.Error(err)
		}
		if names := containerNames(t, h); contains(names, "rel-web-broken") {
			t.Errorf("a container of the failed revision was made: %v", names)
		}
		get()
		if r := d.Status.Release; r == nil || r.Phase != kamalv1.ReleaseFailed || r.ExitCode == nil || *r.ExitCode != 1 {
			t.Errorf("status.release %+v", r)
		}
		if n := releaseRows("broken"); n != 0 {
			t.Errorf("%d rows of the broken release", n)
		}
		if got := releaseContainers(true); len(got) != 2 || !strings.HasPrefix(got[0], "rel-release-broken-") || got[1] != "exited" {
			t.Errorf("release containers %v, want the broken one's alone, exited (the earlier one removed)", got)
		}
	})

	t.Run("the one-off collector leaves the release container alone", func(t *testing.T) {
		kept := releaseContainers(true)
		get()
		failed := *d.Status.Release
		// An exec one-off made after the release container exits, and wakes the collector; once
		// it is collected (past its grace period), the older release container was past its
		// grace too, and the collector has passed over it.
		name := ns + "-exec-left"
		hostExec(t, h, "docker", "run", "--name", name, "--network", "none", "--entrypoint", "/usr/bin/caddy",
			"--label", kamalv1.LabelManagedBy+"="+kamalv1.ManagerName, "--label", kamalv1.LabelNamespace+"="+ns,
			"--label", kamalv1.LabelOneOff+"=exec", "--label", kamalv1.LabelOneOffFor+"=Deployment/rel", env.ProxyImage(), "version")
		t.Cleanup(func() { _, _ = h.Exec(context.Background(), "docker", "rm", "-f", name) })
		framework.Eventually(t, oneOffGrace+45*time.Second, func() error {
			if contains(containerNames(t, h), name) {
				return fmt.Errorf("%s not collected yet", name)
			}
			return nil
		})
		if got := releaseContainers(true); strings.Join(got, " ") != strings.Join(kept, " ") {
			t.Errorf("release containers %v after the collection, want %v", got, kept)
		}
		// Meanwhile the failed revision was not run again.
		get()
		if r := d.Status.Release; r == nil || r.Phase != kamalv1.ReleaseFailed || r.Container != failed.Container || !r.StartedAt.Equal(failed.StartedAt) {
			t.Errorf("status.release %+v, was %+v", r, failed)
		}
	})

	t.Run("a fixed image proceeds", func(t *testing.T) {
		update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = env.Image("sampleapp:v3") })
		waitDeployed(t, d)
		framework.Eventually(t, reactWithin, answers(h, "rel.test", "/version", 200, "v3"))
		if n := releaseRows("v3"); n != 1 {
			t.Errorf("%d release rows of v3, want 1", n)
		}
		if c := meta.FindStatusCondition(d.Status.Conditions, kamalv1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
			t.Errorf("still Stalled: %+v", c)
		}
	})

	t.Run("a rollback runs no release", func(t *testing.T) {
		before := allRows()
		get()
		last := d.Status.Release.Revision
		update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = env.Image("sampleapp:v2") })
		framework.Eventually(t, reactWithin, answers(h, "rel.test", "/version", 200, "v2"))
		waitDeployed(t, d)
		if n := allRows(); n != before {
			t.Errorf("%d rows after the rollback, %d before: a release ran", n, before)
		}
		if d.Status.Release.Revision != last {
			t.Errorf("status.release is now for %s, was %s", d.Status.Release.Revision, last)
		}
	})

	t.Run("controller killed mid-release", func(t *testing.T) {
		handOverToProcess(t)
		proc := startManagerProcess(t)
		t.Cleanup(func() { _ = proc.Process.Kill(); _ = proc.Wait() })
		update(t, d, func(d *kamalv1.Deployment) {
			d.Spec.Image = env.Image("sampleapp:v1")
			d.Spec.Env = append(d.Spec.Env, kamalv1.EnvVar{Name: "RELEASE_SLEEP", Value: "10s"})
		})
		framework.Eventually(t, reactWithin, func() error {
			if n := releaseRows("v1"); n != 2 {
				return fmt.Errorf("%d release rows of v1, want 2 (the new release's insert)", n)
			}
			return nil
		})
		running := releaseContainers(false)
		if err := proc.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = proc.Wait()
		if len(running) != 2 || running[1] != "running" {
			t.Fatalf("release containers running when the controller died: %v", running)
		}
		t.Logf("controller SIGKILLed while %s runs", running[0])
		if err := answers(h, "rel.test", "/version", 200, "v2")(); err != nil {
			t.Errorf("the old version must serve while the release runs: %v", err)
		}
		proc2 := startManagerProcess(t)
		t.Cleanup(func() { _ = proc2.Process.Kill(); _ = proc2.Wait() })
		waitDeployed(t, d)
		framework.Eventually(t, reactWithin, answers(h, "rel.test", "/version", 200, "v1"))
		if n := releaseRows("v1"); n != 2 {
			t.Errorf("%d release rows of v1, want 2: the release ran again", n)
		}
		if got := releaseContainers(true); len(got) != 2 || got[0] != running[0] {
			t.Errorf("release containers %v, want %s alone", got, running[0])
		}
		get()
		if r := d.Status.Release; r == nil || r.Phase != kamalv1.ReleaseSucceeded || r.Container != running[0] {
			t.Errorf("status.release %+v", r)
		}

		// Deleted with the Deployment.
		if err := k8s.Delete(ctx, d); err != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, reactWithin, func() error {
			if got := releaseContainers(true); len(got) > 0 {
				return fmt.Errorf("release containers left: %v", got)
			}
			return nil
		})
	})
}
