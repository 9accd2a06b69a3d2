package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kamal-operator/kamal-operator/test/images"
)

// The kubectl plugin, built once per run from cmd/kubectl-kamal and run as a user runs it.
var (
	pluginOnce sync.Once
	pluginPath string
	pluginErr  error
)

func pluginBinary(t *testing.T) string {
	t.Helper()
	pluginOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kubectl-kamal-")
		if err != nil {
			pluginErr = err
			return
		}
		pluginPath = filepath.Join(dir, "kubectl-kamal")
		cmd := exec.Command("go", "build", "-race", "-o", pluginPath, "./cmd/kubectl-kamal")
		cmd.Dir = images.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			pluginErr = errors.New(string(out))
		}
	})
	if pluginErr != nil {
		t.Fatalf("building kubectl-kamal: %v", pluginErr)
	}
	return pluginPath
}

// pluginRun is one finished run of the plugin.
type pluginRun struct {
	Stdout, Stderr string
	Code           int
}

// kamalCmd is the plugin's command line with the admin kubeconfig, in namespace ns.
func kamalCmd(ctx context.Context, t *testing.T, ns string, args ...string) *exec.Cmd {
	t.Helper()
	full := append([]string{"--kubeconfig", cp.Kubeconfig, "-n", ns}, args...)
	cmd := exec.CommandContext(ctx, pluginBinary(t), full...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	return cmd
}

// kamal runs the plugin to its end (at most timeout) with stdin, and returns its output and
// exit code.
func kamal(t *testing.T, ns string, stdin string, timeout time.Duration, args ...string) pluginRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := kamalCmd(ctx, t, ns, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	run := pluginRun{Stdout: out.String(), Stderr: errOut.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		run.Code = exit.ExitCode()
	default:
		t.Fatalf("kubectl kamal %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("kubectl kamal %s did not end within %s; stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, run.Stdout, run.Stderr)
	}
	t.Logf("kubectl kamal %s → exit %d", strings.Join(args, " "), run.Code)
	return run
}
