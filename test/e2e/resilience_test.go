package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

// managerBinary builds cmd/ once per run, into the repository's bin/ (a test's TempDir goes
// with that test, and the binary is shared).
var managerBinary string

func buildManager(t *testing.T) string {
	t.Helper()
	if managerBinary != "" {
		return managerBinary
	}
	out := filepath.Join(framework.RepoRoot(), "bin", "e2e", "manager")
	cmd := exec.Command("go", "build", "-o", out, "./cmd")
	cmd.Dir = framework.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the manager: %v\n%s", err, b)
	}
	managerBinary = out
	return out
}

// startManagerProcess runs the manager binary, as it runs in a cluster, against the test
// control plane.
func startManagerProcess(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(buildManager(t), "--metrics-bind-address=0", "--health-probe-bind-address=0", "--proxy-image="+env.ProxyImage())
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cp.Kubeconfig)
	logf, err := os.Create(filepath.Join(t.TempDir(), "manager.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// handOverToProcess stops the in-process controllers for the rest of the test and starts
// them again when it ends (before earlier cleanups, which need them).
func handOverToProcess(t *testing.T) {
	t.Helper()
	mgr.Stop()
	t.Cleanup(func() {
		var err error
		if mgr, err = framework.StartManager(cp, managerOptions(env.ProxyImage())); err != nil {
			t.Fatal(err)
		}
	})
}

func slowRollout(d *kamalv1.Deployment, wait time.Duration) {
	d.Spec.Rollout.MaxParallel = ptr.To(intstr.FromInt32(1))
	d.Spec.Rollout.Wait = &metav1.Duration{Duration: wait}
}

func TestControllerKilledMidRolloutResumes(t *testing.T) {
	ns := fleetNS(t)
	d := appDeployment(ns, "app", "v1")
	slowRollout(d, 3*time.Second)
	createDeployment(t, d)
	waitDeployed(t, d)

	handOverToProcess(t)
	proc := startManagerProcess(t)
	t.Cleanup(func() { _ = proc.Process.Kill(); _ = proc.Wait() })

	l := startLoad("app.test", 4, 200_000, 3*time.Minute)
	update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = env.Image("sampleapp:v2") })
	// Kill it as soon as the first host serves v2, in the middle of the rollout.
	waitFirstHostOn(t, "v2")
	if err := proc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	mid := versionsServed("app.test")
	if !contains(mid, "v1") {
		t.Fatalf("rollout already complete when the controller died (%v): the test proves nothing", mid)
	}
	t.Logf("controller SIGKILLed with hosts serving %v", mid)

	proc2 := startManagerProcess(t)
	t.Cleanup(func() { _ = proc2.Process.Kill(); _ = proc2.Wait() })
	waitDeployed(t, d)
	framework.Eventually(t, reactWithin, allServe("app.test", "v2"))
	okN, failed, firstErr := l.finish()
	t.Logf("across the crash: %d requests ok, %d failed", okN, failed)
	if failed != 0 {
		t.Errorf("%d requests failed (first: %s)", failed, firstErr)
	}
	if okN < 3000 {
		t.Errorf("only %d requests were sent; the zero-downtime claim needs several thousand", okN)
	}
	// No duplicates: one running container of the app per host.
	for _, i := range webHosts {
		running := strings.Fields(hostExec(t, env.Host(i), "docker", "ps", "--filter", "label="+kamalv1.LabelDeployment+"=app", "--format", "{{.Names}}"))
		if len(running) != 1 || running[0] != "app-web-v2" {
			t.Errorf("host %d runs %v, want [app-web-v2]", i, running)
		}
	}
}

// midRollout deploys app v1 on web-1..3 and starts a slow rollout to v2, returning once web-1,
// the first batch, serves v2.
func midRollout(t *testing.T) (string, *kamalv1.Deployment) {
	t.Helper()
	ns := fleetNS(t)
	d := appDeployment(ns, "app", "v1")
	slowRollout(d, 2*time.Second)
	createDeployment(t, d)
	waitDeployed(t, d)
	update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = env.Image("sampleapp:v2") })
	waitFirstHostOn(t, "v2")
	return ns, d
}

func TestUnreachableHostMidRolloutConvergesLater(t *testing.T) {
	_, d := midRollout(t)
	third := env.Host(hostThird)
	ctx := context.Background()
	if err := third.StopSSHD(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = third.StartSSHD(ctx)
		}
	})
	// The others finish; the status names the host it cannot reach.
	c := waitDeployment(t, d, kamalv1.ConditionReady, metav1.ConditionFalse, kamalv1.ReasonUnreachable, readyWithin)
	if !strings.Contains(c.Message, "web-3") {
		t.Errorf("message %q does not name web-3", c.Message)
	}
	framework.Eventually(t, reactWithin, func() error {
		got := versionsServed("app.test")
		if got[0] != "v2" || got[1] != "v2" {
			return fmt.Errorf("served %v, want web-1 and web-2 on v2", got)
		}
		return nil
	})
	for _, tgt := range d.Status.Targets {
		if tgt.Server == "web-3" && tgt.State != kamalv1.TargetUnreachable {
			t.Errorf("web-3 target = %+v, want Unreachable", tgt)
		}
	}

	if err := third.StartSSHD(ctx); err != nil {
		t.Fatal(err)
	}
	restarted = true
	waitDeployed(t, d)
	framework.Eventually(t, reactWithin, allServe("app.test", "v2"))
}

// waitFirstHostOn waits until web-1, the first batch, serves version.
func waitFirstHostOn(t *testing.T, version string) {
	t.Helper()
	framework.Eventually(t, readyWithin, func() error {
		if got := versionsServed("app.test"); got[0] != version {
			return fmt.Errorf("served %v", got)
		}
		return nil
	})
}
