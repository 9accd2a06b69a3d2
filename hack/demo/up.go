package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/kamal-operator/kamal-operator/test/hosts"
	"github.com/kamal-operator/kamal-operator/test/images"
)

type upOpts struct {
	skipAccessory bool
	hostName      string
	timeout       time.Duration
	readyTimeout  time.Duration
	restart       bool
}

// demoState is what `up` records about the demo it started (bin/demo/demo.json).
type demoState struct {
	StartedAt     time.Time  `json:"startedAt"`
	Hosts         []demoHost `json:"hosts"`
	SkipAccessory bool       `json:"skipAccessory"`
	HostName      string     `json:"hostName"`
}

const numHosts = 2

func proxyImage() string {
	return hosts.RegistryAddress + "/" + images.ProxyRepo + ":" + images.ProxyTag
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// kubeAssets finds the kube-apiserver, etcd and kubectl built by `make kube-binaries`.
func kubeAssets(p paths) (string, error) {
	ok := func(dir string) bool {
		for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" && ok(d) {
		return d, nil
	}
	dirs, _ := filepath.Glob(filepath.Join(p.root, "bin", "k8s", "*-"+runtime.GOOS+"-"+runtime.GOARCH))
	for i := len(dirs) - 1; i >= 0; i-- {
		if ok(dirs[i]) {
			return dirs[i], nil
		}
	}
	return "", errors.New("no kube-apiserver, etcd and kubectl under bin/k8s: run `make kube-binaries` (make demo does)")
}

func up(p paths, o upOpts) error {
	if os.Geteuid() != 0 {
		return errors.New("run it as root: the test hosts are network namespaces with their own dockerd and sshd")
	}
	u := newUI()
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	u.printf("kamal-operator demo: config/samples on 2 local test hosts, a local control plane and the controller\n")
	lock, err := flock(ctx, p.lock, u.info)
	if err != nil {
		return err
	}
	defer lock.Close()
	assets, err := kubeAssets(p)
	if err != nil {
		return err
	}
	kubectl := filepath.Join(assets, "kubectl")

	var ds *demoState
	reuse, why, leftovers := checkRunning(ctx, p, o)
	if reuse && o.restart {
		reuse, why = false, "-restart"
	}
	if reuse {
		t := u.step("Reuse the running demo")
		// Hold the hosts' lock while we use them, so that no test run replaces them meanwhile;
		// then make sure they are still ours.
		hl, err := flock(ctx, hosts.LockPath, func(f string, a ...any) { u.info("hosts: "+f, a...) })
		if err != nil {
			return err
		}
		defer hl.Close()
		if ds, why = ourHosts(p); ds == nil {
			hl.Close()
			reuse = false
		} else {
			if err := refreshManager(ctx, p, u); err != nil {
				return err
			}
			u.done(t, "control plane, controller and hosts %s are healthy", hostList(ds.Hosts))
		}
	}
	if !reuse {
		if leftovers {
			t := u.step("Stop the previous demo (%s)", why)
			if err := down(ctx, p, u); err != nil {
				return err
			}
			u.done(t, "stopped")
		}
		if ds, err = freshStart(ctx, p, o, u, assets); err != nil {
			u.printf("\nThe demo did not come up. Logs: %s, %s, /tmp/kamalop-hosts/*/; remove what runs with: make demo-down\n", p.supLog, p.managerLog)
			if errors.Is(ctx.Err(), context.Canceled) {
				return errors.New("interrupted")
			}
			return err
		}
	}

	objs, err := apply(ctx, p, u, kubectl, reuse)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, p, u, objs, o.readyTimeout); err != nil {
		u.printf("\nSee: KUBECONFIG=%s %s describe kamal\n     %s (controller log)\n", p.kubeconfig, kubectl, p.managerLog)
		return err
	}

	u.step("kubectl get kamal")
	out, _ := exec.CommandContext(ctx, kubectl, "--kubeconfig", p.kubeconfig, "get", "kamal").CombinedOutput()
	u.block(string(out))

	askApp(ctx, u, objs, ds)
	printUsage(u, p, assets, objs, ds)
	return nil
}

func hostList(hs []demoHost) string {
	var s []string
	for _, h := range hs {
		s = append(s, h.Name+" "+h.Address)
	}
	return strings.Join(s, ", ")
}

// checkRunning tells whether a healthy demo with the same options runs (reuse), and otherwise
// why not and whether anything of an earlier demo is left to stop.
func checkRunning(ctx context.Context, p paths, o upOpts) (reuse bool, why string, leftovers bool) {
	var st supState
	supErr := readJSON(p.supState, &st)
	var ds demoState
	dsErr := readJSON(p.demoState, &ds)
	leftovers = supErr == nil || dsErr == nil
	switch {
	case supErr != nil:
		return false, "no demo running", leftovers
	case !st.isSupervisor():
		return false, "its supervisor is gone", leftovers
	case st.Phase != phaseReady || st.Manager == nil || !st.Manager.Proc.alive():
		return false, "its control plane or controller is not running", leftovers
	case dsErr != nil:
		return false, "it has no hosts recorded", leftovers
	case ds.SkipAccessory != o.skipAccessory || ds.HostName != o.hostName:
		return false, "other options", leftovers
	}
	if exe, err := os.Executable(); err == nil {
		if sum, _ := fileSHA256(exe); sum != st.DemoSHA256 {
			return false, "the demo program changed", leftovers
		}
	}
	if err := apiReachable(ctx, p); err != nil {
		return false, "its control plane does not answer: " + err.Error(), leftovers
	}
	if d, why := ourHosts(p); d == nil {
		return false, why, leftovers
	}
	return true, "", leftovers
}

// ourHosts returns the recorded demo when the test hosts that run are the ones it started, all
// processes alive.
func ourHosts(p paths) (*demoState, string) {
	var ds demoState
	if err := readJSON(p.demoState, &ds); err != nil {
		return nil, "it has no hosts recorded"
	}
	st, err := hosts.Status("")
	if err != nil {
		return nil, "test hosts: " + err.Error()
	}
	if !hostsMatch(&ds, st) {
		return nil, "its test hosts were replaced or removed, by a test run perhaps"
	}
	if st.RegistryPID == 0 {
		return nil, "the registry is not running"
	}
	for _, h := range st.Hosts {
		if len(h.Dead) > 0 {
			return nil, fmt.Sprintf("host %s has %v down", h.Name, h.Dead)
		}
	}
	return &ds, ""
}

// hostsMatch: the hosts in the test hosts' state are exactly the demo's (same host keys).
func hostsMatch(ds *demoState, st *hosts.EnvStatus) bool {
	if len(ds.Hosts) == 0 || len(st.Hosts) != len(ds.Hosts) {
		return false
	}
	for i, h := range ds.Hosts {
		if st.Hosts[i].Name != h.Name || st.Hosts[i].HostPublicKey != h.HostKey {
			return false
		}
	}
	return true
}

// buildManager builds bin/manager. The go command skips the link when the binary is up to date,
// and otherwise replaces the file (a running controller keeps its own). A build that takes more
// than a few seconds (an empty Go cache) says so, and every images.ProgressEvery how long it takes.
func buildManager(ctx context.Context, p paths, u *ui) error {
	pr := images.StartProgress(u.info, "building the controller (go build -o bin/manager ./cmd)", 5*time.Second)
	defer pr.Stop()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", p.manager, "./cmd")
	cmd.Dir = p.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -o bin/manager ./cmd: %w\n%s", err, out)
	}
	return nil
}

// refreshManager rebuilds bin/manager and restarts the running controller when it changed.
func refreshManager(ctx context.Context, p paths, u *ui) error {
	t := time.Now()
	if err := buildManager(ctx, p, u); err != nil {
		return err
	}
	var st supState
	if err := readJSON(p.supState, &st); err != nil {
		return err
	}
	sum, err := fileSHA256(p.manager)
	if err != nil {
		return err
	}
	if st.Manager != nil && sum == st.Manager.SHA256 && st.Manager.Proc.alive() {
		u.done(t, "controller unchanged: pid %d (log %s)", st.Manager.Proc.PID, rel(p, p.managerLog))
		return nil
	}
	old := 0
	if st.Manager != nil {
		old = st.Manager.Proc.PID
	}
	ms, err := startOrRestartManager(ctx, p, old)
	if err != nil {
		return err
	}
	u.done(t, "controller rebuilt and restarted: pid %d (log %s)", ms.Proc.PID, rel(p, p.managerLog))
	return nil
}

func rel(p paths, path string) string {
	if r, err := filepath.Rel(p.root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// startOrRestartManager asks the supervisor to (re)start the controller and waits until a
// controller other than pid old answers its readiness probe.
func startOrRestartManager(ctx context.Context, p paths, old int) (*managerState, error) {
	var st supState
	if err := readJSON(p.supState, &st); err != nil {
		return nil, err
	}
	if !st.isSupervisor() || !st.Self.signal(syscall.SIGUSR1) {
		return nil, fmt.Errorf("the supervisor is not running; see %s", p.supLog)
	}
	deadline := time.Now().Add(90 * time.Second)
	c := &http.Client{Timeout: time.Second}
	for {
		if err := readJSON(p.supState, &st); err == nil && st.Manager != nil && st.Manager.Proc.PID != old && st.Manager.Proc.alive() {
			resp, err := c.Get("http://" + st.Manager.HealthAddr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return st.Manager, nil
				}
			}
		}
		if !st.isSupervisor() {
			return nil, fmt.Errorf("the supervisor exited:\n%s", tail(p.supLog, 20))
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the controller did not become ready within 90s:\n%s", tail(p.managerLog, 20))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// spawnSupervisor starts `kamal-demo supervise` detached: its own session, stdin from /dev/null,
// output appended to bin/demo/supervisor.log. It is reaped here while this process lives.
func spawnSupervisor(p paths, assets string) (procID, <-chan error, error) {
	exe, err := os.Executable()
	if err != nil {
		return procID{}, nil, err
	}
	_ = os.Remove(p.supState)
	f, err := os.OpenFile(p.supLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return procID{}, nil, err
	}
	defer f.Close()
	fmt.Fprintf(f, "\n=== %s: %s supervise\n", time.Now().Format(time.RFC3339), exe)
	cmd := exec.Command(exe, "supervise", "-proxy-image", proxyImage())
	cmd.Dir = p.root
	cmd.Env = append(os.Environ(), "KUBEBUILDER_ASSETS="+assets)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return procID{}, nil, err
	}
	id, err := idOf("supervisor", cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return id, exited, err
}

// freshStart brings everything up: the test hosts (with the registry and the fixture images),
// the control plane and the controller, in parallel where it can.
func freshStart(ctx context.Context, p paths, o upOpts, u *ui, assets string) (*demoState, error) {
	for _, f := range []string{p.supLog, p.managerLog} {
		_ = os.Remove(f)
	}
	t0 := u.step("Start %d test hosts with the registry and fixture images, the control plane, the controller", numHosts)
	u.info("(in parallel; a first run installs Debian packages and builds Caddy: a few minutes)")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	sup, supExited, err := spawnSupervisor(p, assets)
	if err != nil {
		return nil, err
	}
	u.info("supervisor: pid %d, log %s", sup.PID, rel(p, p.supLog))

	type result struct {
		env *hosts.Env
		err error
	}
	hostsDone := make(chan result, 1)
	go func() {
		env, err := hosts.Start(ctx, hosts.Options{N: numHosts, Logf: func(f string, a ...any) { u.info("hosts: "+f, a...) }})
		if err == nil {
			var hs []string
			for _, h := range env.Hosts {
				hs = append(hs, h.Name()+" "+h.Address())
			}
			pushed := 0
			for _, r := range env.Images() {
				if r.Pushed {
					pushed++
				}
			}
			u.done(t0, "test hosts %s; registry %s (%d images, %d pushed)", strings.Join(hs, ", "), env.RegistryAddress(), len(env.Images()), pushed)
		}
		hostsDone <- result{env, err}
	}()
	buildDone := make(chan error, 1)
	go func() {
		err := buildManager(ctx, p, u)
		if err == nil {
			u.done(t0, "controller built: %s", rel(p, p.manager))
		}
		buildDone <- err
	}()
	cpDone := make(chan error, 1)
	go func() {
		cpDone <- func() error {
			for {
				var st supState
				if err := readJSON(p.supState, &st); err == nil {
					switch st.Phase {
					case phaseReady:
						u.done(t0, "control plane: kube-apiserver %s, etcd (kubeconfig %s)", st.APIServer, rel(p, p.kubeconfig))
						return nil
					case phaseFailed:
						return fmt.Errorf("control plane: %s\n%s", st.Error, tail(p.supLog, 20))
					}
				}
				select {
				case err := <-supExited:
					return fmt.Errorf("the supervisor exited (%v):\n%s", err, tail(p.supLog, 20))
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}()

	// The controller starts once it is built and the control plane answers; the hosts may take
	// longer (the Servers are applied only once they are up).
	var errs []error
	if err := <-buildDone; err != nil {
		errs = append(errs, err)
	}
	if err := <-cpDone; err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		ms, err := startOrRestartManager(ctx, p, 0)
		if err != nil {
			errs = append(errs, err)
		} else {
			u.done(t0, "controller running: pid %d, log %s", ms.Proc.PID, rel(p, p.managerLog))
		}
	}
	if len(errs) > 0 {
		cancel() // hosts.Start tears down what it started
	}
	r := <-hostsDone
	if r.err != nil {
		errs = append(errs, fmt.Errorf("test hosts: %w", r.err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	ds := &demoState{StartedAt: time.Now(), SkipAccessory: o.skipAccessory, HostName: o.hostName}
	for i, h := range r.env.Hosts {
		ds.Hosts = append(ds.Hosts, demoHost{Server: fmt.Sprintf("web-%d", i+1), Name: h.Name(), Address: h.Address(),
			HostKey: h.HostPublicKey(), DockerHost: h.DockerHost()})
	}
	if err := writeJSON(p.demoState, ds); err != nil {
		return nil, err
	}
	if err := writeOverlay(p, ds.Hosts, r.env.ClientPrivateKeyPEM(), o); err != nil {
		return nil, err
	}
	if !o.skipAccessory {
		reg := images.Registry{Addr: hosts.RegistryAddress}
		if tags, _ := reg.Tags(ctx, "postgres"); !contains(tags, "15") {
			u.info("note: the registry has no postgres:15; the Accessory cannot start (try: make demo DEMO_FLAGS=-skip-accessory)")
		}
	}
	return ds, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// apply renders the overlay and applies it with the built kubectl.
func apply(ctx context.Context, p paths, u *ui, kubectl string, again bool) ([]object, error) {
	t := u.step("kubectl apply -k %s   (config/samples + the test hosts' addresses, keys and images)", rel(p, p.overlay))
	render := exec.CommandContext(ctx, kubectl, "kustomize", p.overlay)
	var stderr bytes.Buffer
	render.Stderr = &stderr
	rendered, err := render.Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %w\n%s", p.overlay, err, stderr.String())
	}
	manifests, docs, err := normalize(rendered)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", p.kubeconfig, "apply", "-f", "-")
	cmd.Stdin = bytes.NewReader(manifests)
	out, err := cmd.CombinedOutput()
	u.block(string(out))
	if err != nil {
		return nil, fmt.Errorf("kubectl apply: %w", err)
	}
	if again && strings.Contains(string(out), " configured") {
		u.info("(what was changed since the last make demo is back to the samples' spec)")
	}
	u.done(t, "applied %d objects", len(docs))
	return kamalObjects(docs), nil
}
