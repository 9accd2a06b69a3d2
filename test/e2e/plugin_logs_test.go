package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/hosts"
)

// TestPluginLogs runs `kubectl kamal logs` against one Deployment on two hosts: the lines the
// app printed on each host, prefixed; the filters; following across a redeploy on one SSH
// connection per host; and a user who may not read the SSH key Secret.
func TestPluginLogs(t *testing.T) {
	ns := newNamespace(t)
	keySecret(t, ns)
	logHosts := map[string]*hosts.Host{"web-1": env.Host(hostMain), "web-2": env.Host(hostOther)}
	var servers []*kamalv1.Server
	for _, name := range []string{"web-1", "web-2"} {
		s := serverFor(ns, name, logHosts[name])
		createServer(t, s)
		servers = append(servers, s)
	}
	for _, s := range servers {
		waitReady(t, s)
	}
	d := appDeployment(ns, "logapp", "v1")
	createDeployment(t, d)
	waitDeployed(t, d)
	hostName := d.Name + ".test"

	// say makes the app on server print line (on stdout, or stderr), through the host's proxy.
	say := func(server, line, stream string) {
		t.Helper()
		path := "/log?line=" + url.QueryEscape(line) + "&stream=" + stream
		if err := answers(logHosts[server], hostName, path, 200, "ok")(); err != nil {
			t.Fatal(err)
		}
	}
	logs := func(args ...string) pluginRun {
		t.Helper()
		run := kamal(t, ns, "", time.Minute, append([]string{"logs", d.Name}, args...)...)
		if run.Code != 0 {
			t.Fatalf("logs %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, run.Code, run.Stdout, run.Stderr)
		}
		return run
	}
	mustShow := func(run pluginRun, want ...string) {
		t.Helper()
		for _, w := range want {
			if !hasLine(run.Stdout, w) {
				t.Errorf("no line %q in:\n%s", w, run.Stdout)
			}
		}
	}
	mustNotShow := func(run pluginRun, unwanted ...string) {
		t.Helper()
		for _, u := range unwanted {
			if strings.Contains(run.Stdout, u) {
				t.Errorf("%q shown in:\n%s", u, run.Stdout)
			}
		}
	}

	// Two lines per host, on both streams; a time between them for --since, taken once the
	// first ones are in the logs.
	for _, s := range []string{"web-1", "web-2"} {
		say(s, "first on "+s, "stdout")
	}
	framework.Eventually(t, reactWithin, func() error {
		run := kamal(t, ns, "", time.Minute, "logs", d.Name)
		for _, w := range []string{"web-1 web | first on web-1", "web-2 web | first on web-2"} {
			if !hasLine(run.Stdout, w) {
				return fmt.Errorf("no line %q yet in:\n%s\n%s", w, run.Stdout, run.Stderr)
			}
		}
		return nil
	})
	between := time.Now()
	for _, s := range []string{"web-1", "web-2"} {
		say(s, "second on "+s, "stderr")
	}

	t.Run("all", func(t *testing.T) {
		framework.Eventually(t, reactWithin, func() error {
			run := kamal(t, ns, "", time.Minute, "logs", d.Name)
			if !hasLine(run.Stdout, "web-1 web | second on web-1") || !hasLine(run.Stdout, "web-2 web | second on web-2") {
				return fmt.Errorf("second lines not shown yet:\n%s", run.Stdout)
			}
			return nil
		})
		run := logs()
		// The app's own start line (on stderr) and both requested lines, per host, in order.
		for _, s := range []string{"web-1", "web-2"} {
			mustShow(run, s+" web | first on "+s, s+" web | second on "+s)
			start := lineIndex(run.Stdout, s+" web | sampleapp ", "version v1 listening")
			if first := lineIndex(run.Stdout, s+" web | first on "+s); start < 0 || start > first {
				t.Errorf("%s: no start line before the first request's line:\n%s", s, run.Stdout)
			}
		}
		if strings.Contains(run.Stdout, "\x1b[") {
			t.Errorf("coloured output with NO_COLOR and no terminal:\n%q", run.Stdout)
		}
	})

	t.Run("tail", func(t *testing.T) {
		run := logs("--tail", "1")
		mustShow(run, "web-1 web | second on web-1", "web-2 web | second on web-2")
		if n := strings.Count(run.Stdout, "\n"); n != 2 {
			t.Errorf("%d lines, want 1 per host:\n%s", n, run.Stdout)
		}
	})

	t.Run("since", func(t *testing.T) {
		run := logs("--since", between.UTC().Format(time.RFC3339Nano))
		mustShow(run, "web-1 web | second on web-1", "web-2 web | second on web-2")
		mustNotShow(run, "first on", "listening")
		run = logs("--since", "10m", "--timestamps", "--server", "web-2")
		mustNotShow(run, "web-1")
		for _, l := range strings.Split(strings.TrimSpace(run.Stdout), "\n") {
			ts, _, _ := strings.Cut(strings.TrimPrefix(l, "web-2 web | "), " ")
			if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
				t.Errorf("line %q has no timestamp: %v", l, err)
			}
		}
		if !strings.Contains(run.Stdout, "first on web-2") || !strings.Contains(run.Stdout, "second on web-2") {
			t.Errorf("--since 10m misses lines:\n%s", run.Stdout)
		}
	})

	t.Run("grep", func(t *testing.T) {
		run := logs("--grep", "^first on web-[0-9]$")
		mustShow(run, "web-1 web | first on web-1", "web-2 web | first on web-2")
		mustNotShow(run, "second on", "listening")
		if n := strings.Count(run.Stdout, "\n"); n != 2 {
			t.Errorf("%d lines, want 2:\n%s", n, run.Stdout)
		}
	})

	t.Run("follow across a deploy", func(t *testing.T) {
		sshdLogs := map[string]string{}
		before := map[string]int{}
		for s, h := range logHosts {
			sshdLogs[s] = filepath.Join(h.StateDir(), "sshd.log")
			before[s] = countIn(t, sshdLogs[s], "Accepted publickey")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := kamalCmd(ctx, t, ns, "logs", d.Name, "-f", "--tail", "1")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var out strings.Builder
		read := make(chan struct{})
		go func() {
			defer close(read)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				mu.Lock()
				out.WriteString(sc.Text() + "\n")
				mu.Unlock()
			}
		}()
		shown := func(want ...string) func() error {
			return func() error {
				mu.Lock()
				got := out.String()
				mu.Unlock()
				for _, w := range want {
					if !hasLine(got, w) {
						return fmt.Errorf("no line %q yet in:\n%s", w, got)
					}
				}
				return nil
			}
		}
		framework.Eventually(t, reactWithin, shown("web-1 web | second on web-1", "web-2 web | second on web-2"))
		for _, s := range []string{"web-1", "web-2"} {
			say(s, "v1 following on "+s, "stdout")
		}
		framework.Eventually(t, reactWithin, shown("web-1 web | v1 following on web-1", "web-2 web | v1 following on web-2"))

		update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = env.Image("sampleapp:v2") })
		framework.Eventually(t, readyWithin, allServeOn(hostName, "v2", logHosts))
		for _, s := range []string{"web-1", "web-2"} {
			say(s, "v2 following on "+s, "stdout")
		}
		framework.Eventually(t, reactWithin, shown("web-1 web | v2 following on web-1", "web-2 web | v2 following on web-2"))
		mu.Lock()
		got := out.String()
		mu.Unlock()
		t.Logf("logs -f:\n%s", got)
		for _, s := range []string{"web-1", "web-2"} {
			v1 := lineIndex(got, s+" web | v1 following on "+s)
			start := lineIndex(got, s+" web | sampleapp ", "version v2 listening")
			v2 := lineIndex(got, s+" web | v2 following on "+s)
			if !(v1 < start && start < v2) {
				t.Errorf("%s: want v1's line, v2's start, v2's line in order (at %d, %d, %d):\n%s", s, v1, start, v2, got)
			}
		}
		// The plugin logged in once per host, for everything it did there.
		for s := range logHosts {
			if n := countIn(t, sshdLogs[s], "Accepted publickey") - before[s]; n != 1 {
				t.Errorf("%s: sshd accepted %d logins during logs -f, want 1", s, n)
			}
		}

		// Interrupted, it ends cleanly.
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		<-read
		if err := cmd.Wait(); err != nil {
			t.Errorf("logs -f interrupted: %v; stderr:\n%s", err, stderr.String())
		}
		if strings.TrimSpace(stderr.String()) != "" {
			t.Errorf("stderr:\n%s", stderr.String())
		}
	})

	t.Run("without access to the key Secret", func(t *testing.T) {
		ctx := context.Background()
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "logs-reader"},
			Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{kamalv1.GroupVersion.Group},
				Resources: []string{"deployments", "accessories", "servers"},
				Verbs:     []string{"get", "list"},
			}},
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "logs-reader"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "dev"}},
		}
		if err := k8s.Create(ctx, role); err != nil {
			t.Fatal(err)
		}
		if err := k8s.Create(ctx, binding); err != nil {
			t.Fatal(err)
		}
		kubeconfig, err := cp.KubeconfigFor("dev")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(kubeconfig)
		// The later --kubeconfig wins.
		run := kamal(t, ns, "", time.Minute, "--kubeconfig", kubeconfig, "logs", d.Name)
		t.Logf("stderr: %s", run.Stderr)
		if run.Code != 1 {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", run.Code, run.Stdout, run.Stderr)
		}
		for _, want := range []string{"Secret " + ns + "/deploy-key", `"get"`} {
			if !strings.Contains(run.Stderr, want) {
				t.Errorf("stderr does not say %q:\n%s", want, run.Stderr)
			}
		}
		for _, bad := range []string{"panic", "goroutine "} {
			if strings.Contains(run.Stderr, bad) {
				t.Errorf("stderr has %q:\n%s", bad, run.Stderr)
			}
		}
		if run.Stdout != "" {
			t.Errorf("stdout:\n%s", run.Stdout)
		}
	})
}

// allServeOn is allServe for the given hosts only.
func allServeOn(hostName, version string, hs map[string]*hosts.Host) func() error {
	return func() error {
		for s, h := range hs {
			if err := answers(h, hostName, "/version", 200, version)(); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
}

// hasLine says whether out has the line want.
func hasLine(out, want string) bool { return lineIndex(out, want) >= 0 }

// lineIndex is the number of the first line of out that starts with prefix and contains all
// of parts (the whole line is prefix when there are none), or -1.
func lineIndex(out, prefix string, parts ...string) int {
	for i, l := range strings.Split(out, "\n") {
		if len(parts) == 0 && l != prefix || !strings.HasPrefix(l, prefix) {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return i
		}
	}
	return -1
}
