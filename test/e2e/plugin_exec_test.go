package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/hosts"
	"github.com/kamal-operator/kamal-operator/test/images"
)

const execSecretToken = "tok-8c1f0e27a9"

// oneOffContainers lists the one-off containers on h: "name labels" lines.
func oneOffContainers(t *testing.T, h *hosts.Host) []string {
	t.Helper()
	out := hostExec(t, h, "docker", "ps", "-a", "--filter", "label="+kamalv1.LabelOneOff, "--format", "{{.Names}} {{.Labels}}")
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// TestPluginExec runs commands through kubectl kamal exec and shell in a Deployment of the
// sample app with a shell (busybox sh, no bash) and in a PostgreSQL accessory, on one host.
func TestPluginExec(t *testing.T) {
	ns := newNamespace(t)
	keySecret(t, ns)
	h := env.Host(hostMain)
	srv := serverFor(ns, "web-1", h)
	createServer(t, srv)
	dbSecrets(t, ns)
	if err := k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-secrets"},
		StringData: map[string]string{"SECRET_TOKEN": execSecretToken},
	}); err != nil {
		t.Fatal(err)
	}
	d := appDeployment(ns, "shellapp", "v1")
	d.Spec.Image = env.Image(images.SampleAppShellRepo + ":" + images.SampleAppShellTag)
	d.Spec.Env = []kamalv1.EnvVar{
		{Name: "CLEAR_SETTING", Value: "plain"},
		{Name: "SECRET_TOKEN", ValueFrom: &kamalv1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app-secrets"}, Key: "SECRET_TOKEN"}}},
	}
	a := postgresAccessory(ns)
	waitReady(t, srv)
	createAccessory(t, a)
	createDeployment(t, d)
	waitDeployed(t, d)
	waitAccessory(t, a, kamalv1.ConditionReady, metav1.ConditionTrue, "", readyWithin)
	if len(d.Status.Targets) != 1 || d.Status.Targets[0].Container == "" {
		t.Fatalf("targets %+v", d.Status.Targets)
	}
	serving := containerID(t, h, d.Status.Targets[0].Container)
	generation := d.Generation
	t0 := time.Now()

	t.Run("one-off", func(t *testing.T) {
		r := kamal(t, ns, "", time.Minute, "exec", "shellapp", "--", "printenv", "SECRET_TOKEN")
		if r.Code != 0 || r.Stdout != execSecretToken+"\n" {
			t.Fatalf("printenv SECRET_TOKEN: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
		}
		if r.Stderr != "" {
			t.Errorf("stderr %q, want nothing (one placement)", r.Stderr)
		}
		r = kamal(t, ns, "", time.Minute, "exec", "deployment/shellapp", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
		if r.Code != 3 || r.Stdout != "out\n" || r.Stderr != "err\n" {
			t.Fatalf("exit 3: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
		}
		// stdin to its end: cat ends when it does
		r = kamal(t, ns, "line one\nline two\n", time.Minute, "exec", "-i", "shellapp", "--", "cat")
		if r.Code != 0 || r.Stdout != "line one\nline two\n" {
			t.Fatalf("cat: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
		}
		if left := oneOffContainers(t, h); len(left) != 0 {
			t.Fatalf("one-off containers left: %v", left)
		}
	})

	t.Run("one-off while it runs, and SIGTERM", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := kamalCmd(ctx, t, ns, "exec", "shellapp", "--", "sleep", "120")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var name string
		framework.Eventually(t, 30*time.Second, func() error {
			out := hostExec(t, h, "docker", "ps", "--filter", "label="+kamalv1.LabelOneOff, "--format", "{{.Names}}")
			if out == "" {
				return errors.New("no running one-off container yet")
			}
			name = out
			return nil
		})
		if !strings.HasPrefix(name, "shellapp-exec-") || len(name) > 63 {
			t.Errorf("name %q", name)
		}
		inspect := func(format string) string { return hostExec(t, h, "docker", "inspect", "-f", format, name) }
		label := func(k string) string { return inspect(`{{index .Config.Labels "` + k + `"}}`) }
		if label(kamalv1.LabelOneOff) != "exec" || label(kamalv1.LabelOneOffFor) != "Deployment/shellapp" ||
			label(kamalv1.LabelNamespace) != ns || label(kamalv1.LabelManagedBy) != kamalv1.ManagerName {
			t.Errorf("labels %s", inspect("{{json .Config.Labels}}"))
		}
		for _, k := range []string{kamalv1.LabelDeployment, kamalv1.LabelRole, kamalv1.LabelVersion} {
			if inspect(`{{if index .Config.Labels "`+k+`"}}set{{end}}`) != "" {
				t.Errorf("label %s on the one-off container", k)
			}
		}
		if got, want := inspect("{{.Image}}"), hostExec(t, h, "docker", "inspect", "-f", "{{.Image}}", serving); got != want {
			t.Errorf("image %s, want the serving container's %s", got, want)
		}
		nsNet := docker.NamespaceNetwork(ns)
		if got := inspect("{{.HostConfig.RestartPolicy.Name}}|{{len .HostConfig.PortBindings}}|{{.HostConfig.NetworkMode}}"); got != "|0|"+nsNet && got != "no|0|"+nsNet {
			t.Errorf("restart policy, ports, network: %q", got)
		}
		// Only the namespace's network, with no alias but the short ID the engine gives every
		// container there.
		id := inspect("{{.Id}}")
		if got := inspect(`{{range $k, $v := .NetworkSettings.Networks}}{{$k}}:{{range $v.Aliases}}{{.}},{{end}} {{end}}`); got != nsNet+":" && got != nsNet+":"+id[:12]+"," {
			t.Errorf("networks and aliases: %q", got)
		}
		if got := inspect(`{{range .Config.Env}}{{if eq . "CLEAR_SETTING=plain" "SECRET_TOKEN=` + execSecretToken + `"}}ok {{end}}{{end}}`); got != "ok ok" {
			t.Error("the one-off container lacks the app's env")
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("after SIGTERM: %v, stderr %q", err, stderr.String())
		}
		// Removed before the plugin exited.
		if left := oneOffContainers(t, h); len(left) != 0 {
			t.Fatalf("one-off containers left after SIGTERM: %v", left)
		}
	})

	t.Run("reuse", func(t *testing.T) {
		r := kamal(t, ns, "", time.Minute, "exec", "--reuse", "shellapp", "--", "hostname")
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != serving[:12] {
			t.Fatalf("hostname: exit %d, stdout %q (serving container %s), stderr %q", r.Code, r.Stdout, serving[:12], r.Stderr)
		}
		r = kamal(t, ns, "", time.Minute, "exec", "--reuse", "shellapp", "--", "sh", "-c", "exit 5")
		if r.Code != 5 {
			t.Fatalf("exit 5: exit %d, stderr %q", r.Code, r.Stderr)
		}
	})

	t.Run("shell", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := kamalCmd(ctx, t, ns, "shell", "shellapp")
		var stderr syncBuffer
		cmd.Stderr = &stderr
		tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
		if err != nil {
			t.Fatal(err)
		}
		defer tty.Close()
		var out syncBuffer
		go func() { _, _ = io.Copy(&out, tty) }()
		expect := func(what string, re *regexp.Regexp) {
			t.Helper()
			framework.Eventually(t, 30*time.Second, func() error {
				if !re.MatchString(out.String()) {
					return fmt.Errorf("no %s yet; terminal: %q, stderr: %q", what, out.String(), stderr.String())
				}
				return nil
			})
		}
		// busybox's sh may follow its prompt with control sequences (it asks where the cursor
		// is, and redraws the line when no answer comes).
		expect("prompt", regexp.MustCompile(`[#$] (\x1b\[[0-9;]*[A-Za-z])*$`))
		if _, err := tty.Write([]byte("echo hello-$((6*7))\r")); err != nil {
			t.Fatal(err)
		}
		expect("hello-42", regexp.MustCompile(`(?m)^hello-42\r?$`))
		if _, err := tty.Write([]byte("exit\r")); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil || ctx.Err() != nil {
			t.Fatalf("shell: %v (%v); terminal: %q, stderr: %q", err, ctx.Err(), out.String(), stderr.String())
		}
		if !strings.Contains(stderr.String(), "bash is not in the image: running sh instead") {
			t.Errorf("stderr %q does not say sh replaced bash", stderr.String())
		}
		if strings.Contains(out.String(), "executable file not found") {
			t.Errorf("the engine's error about bash reached the terminal: %q", out.String())
		}
	})

	t.Run("accessory", func(t *testing.T) {
		r := kamal(t, ns, "", time.Minute, "exec", "--reuse", "accessory/db", "--", "psql", "-U", "app", "-d", "app", "-At", "-c", "select 1")
		if r.Code != 0 || r.Stdout != "1\n" {
			t.Fatalf("psql: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
		}
		// The PostgreSQL image has bash: shell runs it, here with stdin that is no terminal.
		r = kamal(t, ns, "echo shell-$BASH_VERSION\nexit 7\n", time.Minute, "shell", "accessory/db")
		if r.Code != 7 || !strings.Contains(r.Stdout, "shell-5.") || strings.Contains(r.Stderr, "instead") {
			t.Fatalf("shell with bash: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
		}
	})

	// None of it made the controller act on the Deployment: the same container serves, and the
	// Deployment is Ready at the same generation.
	if got := containerID(t, h, d.Status.Targets[0].Container); got != serving {
		t.Errorf("serving container %s replaced by %s", serving, got)
	}
	waitDeployed(t, d)
	if d.Generation != generation || len(d.Status.Targets) != 1 || d.Status.Targets[0].Container == "" {
		t.Errorf("Deployment changed: generation %d→%d, targets %+v", generation, d.Generation, d.Status.Targets)
	}
	if got := containerID(t, h, d.Status.Targets[0].Container); got != serving {
		t.Errorf("the status names container %s, not the serving %s", got, serving)
	}
	t.Logf("exec and shell subtests took %s", time.Since(t0).Round(time.Millisecond))
}

// syncBuffer is a bytes.Buffer for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
