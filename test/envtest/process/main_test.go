// Package process runs the manager binary, as a process of its own as it runs in a cluster,
// against a real kube-apiserver and etcd: to measure its memory, and to run it with the
// rights of a namespaced install.
package process

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kamal-operator/kamal-operator/test/framework"
)

var cp *framework.ControlPlane

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if cp, err = framework.StartControlPlane(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cp.Stop()
	return m.Run()
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// buildManager builds cmd/ once (or takes $KAMAL_MANAGER_BINARY, to measure another build).
func buildManager(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("KAMAL_MANAGER_BINARY"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kamal-manager-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "manager")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd")
		cmd.Dir = framework.RepoRoot()
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building the manager: %v\n%s", err, b)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// manager is a manager process started by startManager.
type manager struct {
	pid  int
	log  string
	stop func()
}

// startManager runs the manager binary against the control plane as the user of kubeconfig,
// with args besides the defaults; stop ends it (and the test's end, when not called before).
func startManager(t *testing.T, kubeconfig string, args ...string) *manager {
	t.Helper()
	m := &manager{log: filepath.Join(t.TempDir(), "manager.log")}
	logf, err := os.Create(m.log)
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0", "--namespace=" + framework.ControllerNamespace}, args...)
	cmd := exec.Command(buildManager(t), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.pid = cmd.Process.Pid
	var once sync.Once
	m.stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			logf.Close()
		})
	}
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			b, _ := os.ReadFile(m.log)
			t.Logf("manager log:\n%s", b)
		}
	})
	return m
}

// waitSynced waits until the manager's three controllers have started their workers, which
// they do once the caches are synced.
func (m *manager) waitSynced(t *testing.T) {
	t.Helper()
	framework.Eventually(t, time.Minute, func() error {
		b, err := os.ReadFile(m.log)
		if err != nil {
			return err
		}
		if n := strings.Count(string(b), `"msg":"Starting workers"`); n < 3 {
			return fmt.Errorf("%d of 3 controllers started", n)
		}
		return nil
	})
}
