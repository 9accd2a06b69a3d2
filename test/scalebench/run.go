package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/controllers"
	"github.com/kamal-operator/kamal-operator/internal/release"
	"github.com/kamal-operator/kamal-operator/test/fleetsim"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

// result is one host count's measurements (seconds, bytes, counts).
type result struct {
	Hosts        int      `json:"hosts"`
	LoadBefore   string   `json:"loadAverageBefore"`
	LoadAfter    string   `json:"loadAverageAfter"`
	ManagerFlags []string `json:"managerFlags"`
	Delays       string   `json:"delays"`
	ServerDelays string   `json:"serverPhaseDelays"`

	ServersReady     float64 `json:"serversReadySeconds"`
	FirstDeploy      float64 `json:"firstDeploySeconds"`
	ImageChange      float64 `json:"imageChangeSeconds"`
	FloorConnect     float64 `json:"floorConnectSeconds"`
	FloorFirstDeploy float64 `json:"floorFirstDeploySeconds"`
	FloorImageChange float64 `json:"floorImageChangeSeconds"`
	RatioFirstDeploy float64 `json:"ratioFirstDeploy"`
	RatioImageChange float64 `json:"ratioImageChange"`

	PeakRSS     int64              `json:"controllerPeakRSSBytes"`
	CPU         float64            `json:"controllerCPUSeconds"`
	CPUByPhase  map[string]float64 `json:"controllerCPUSecondsByPhase"`
	APIRequests map[string]int64   `json:"apiserverRequestsByPhase"`

	SSHOpen          int      `json:"sshConnectionsOpen"`
	SSHAccepted      int      `json:"sshConnectionsEstablished"`
	IdlePerHostMin   float64  `json:"idleCallsPerHostPerMinute"`
	IdleAPIPerMin    float64  `json:"idleApiserverRequestsPerMinute"`
	BaseAPIPerMin    float64  `json:"apiserverRequestsPerMinuteWithoutManager"`
	IdleCPUPerMin    float64  `json:"idleControllerCPUSecondsPerMinute"`
	StatusBytes      int      `json:"deploymentStatusBytes"`
	ServerStatusMax  int      `json:"serverStatusBytesMax"`
	Unknown          []string `json:"unknownCalls"`
	TooLarge         int      `json:"objectTooLargeLines"`
	ErrorLines       int      `json:"controllerErrorLines"`
	VerifyMismatches int      `json:"hostsNotAsReported"`

	Calls map[string]map[string]int `json:"callsByPhase"`
	Error string                    `json:"error,omitempty"`
}

const benchNamespace = "fleet"

// runScale measures one host count; everything it starts is stopped before it returns.
func runScale(ctx context.Context, cfg *config, n int) (r *result) {
	r = &result{Hosts: n, LoadBefore: loadAvg(), ManagerFlags: cfg.managerFlagsDetected,
		Delays:       fmt.Sprintf("pull %s, start %s, health %s", cfg.pull, cfg.start, cfg.health),
		ServerDelays: fmt.Sprintf("pull %s, start %s, health %s", cfg.pull, cfg.start, cfg.health),
		CPUByPhase:   map[string]float64{}, APIRequests: map[string]int64{}, Calls: map[string]map[string]int{}}
	defer func() { r.LoadAfter = loadAvg() }()
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	if err := measure(ctx, cfg, n, r, &cleanups); err != nil {
		r.Error = err.Error()
	}
	return r
}

func measure(ctx context.Context, cfg *config, n int, r *result, cleanups *[]func()) error {
	dir := filepath.Join(cfg.out, fmt.Sprint(n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer0 := func(f func()) { *cleanups = append(*cleanups, f) }

	// The control plane.
	t0 := time.Now()
	cp, err := framework.StartControlPlane()
	if err != nil {
		return err
	}
	defer0(cp.Stop)
	logf("control plane up in %s", since(t0))
	var own atomic.Int64 // the harness's own requests, taken off the apiserver's counts
	hcfg := rest.CopyConfig(cp.Config)
	hcfg.QPS, hcfg.Burst = 500, 1000
	hcfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) { own.Add(1); return rt.RoundTrip(req) })
	}
	k8s, err := client.New(hcfg, client.Options{Scheme: framework.Scheme})
	if err != nil {
		return err
	}

	// The simulator.
	signer, keyPEM, err := fleetsim.ClientKey()
	if err != nil {
		return err
	}
	pub := filepath.Join(dir, "client-key.pub")
	if err := os.WriteFile(pub, ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		return err
	}
	stateFile := filepath.Join(dir, "fleet.json")
	_ = os.Remove(stateFile)
	sim, err := startProc("fleetsim", filepath.Join(dir, "fleetsim.log"), nil, cfg.fleetsim,
		"-hosts", fmt.Sprint(n), "-base", "127.90.0.1", "-port", "0", "-authorized-key", pub,
		"-pull-delay", cfg.pull.String(), "-start-delay", cfg.start.String(), "-health-delay", cfg.health.String(),
		"-state-file", stateFile)
	if err != nil {
		return err
	}
	var ctl control
	defer0(func() {
		if ctl != "" {
			if u, err := ctl.unknown(context.Background()); err == nil {
				r.Unknown = u
			}
		}
		if err := sim.stop(30 * time.Second); err != nil {
			logf("fleetsim: %v (see %s)", err, filepath.Join(dir, "fleetsim.log"))
		}
	})
	var st fleetsim.State
	err = waitFor(ctx, "the simulator's state file "+stateFile, cfg.phaseTimeout, 100*time.Millisecond, func() (bool, string, error) {
		if done, err := sim.exited(); done {
			return false, "", fmt.Errorf("fleetsim exited: %v (see %s)", err, sim.log.Name())
		}
		b, err := os.ReadFile(stateFile)
		if err != nil {
			return false, err.Error(), nil
		}
		return true, "", json.Unmarshal(b, &st)
	})
	if err != nil {
		return err
	}
	ctl = control(st.Control)
	logf("fleetsim (pid %d): %d hosts, control %s", sim.pid(), len(st.Hosts), st.Control)

	// The manager.
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace}}); err != nil {
		return err
	}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: controllers.DefaultNamespace}}); err != nil {
		return err
	}
	// The apiserver's own requests (its loopback clients count in apiserver_request_total too),
	// before the manager runs: the baseline of the idle rate.
	base0, err := apiRequests(ctx, cp.Config)
	if err != nil {
		return err
	}
	own0 := own.Load()
	if err := sleep(ctx, 15*time.Second); err != nil {
		return err
	}
	base1, err := apiRequests(ctx, cp.Config)
	if err != nil {
		return err
	}
	r.BaseAPIPerMin = round(float64(base1-base0-(own.Load()-own0))/0.25, 1)
	args := append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0"}, cfg.managerFlagsDetected...)
	args = append(args, cfg.managerArgs...)
	managerLog := filepath.Join(dir, "manager.log")
	mgr, err := startProc("manager", managerLog, []string{"KUBECONFIG=" + cp.Kubeconfig}, cfg.manager, args...)
	if err != nil {
		return err
	}
	use := sampleUsage(mgr.pid())
	defer0(func() {
		use.close()
		if err := mgr.stop(30 * time.Second); err != nil && !isSignalExit(err) {
			logf("manager: %v", err)
		}
	})
	logf("manager (pid %d) %s", mgr.pid(), strings.Join(args, " "))
	// A manager that dies fails the phase at once, not at its deadline.
	alive := func() error {
		if done, err := mgr.exited(); done {
			return fmt.Errorf("the manager exited: %v (see %s)", err, managerLog)
		}
		return nil
	}

	// phase brackets one measured step: the apiserver's requests (less the harness's own), the
	// controller's CPU time and the simulator's calls during it.
	phase := func(name string, body func() error) error {
		reqs0, err := apiRequests(ctx, cp.Config)
		if err != nil {
			return err
		}
		own0 := own.Load()
		cpu0, _ := cpuSeconds(mgr.pid())
		if err := ctl.resetCalls(ctx); err != nil {
			return err
		}
		if err := body(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		calls, err := ctl.calls(ctx)
		if err != nil {
			return err
		}
		r.Calls[name] = calls
		cpu1, _ := cpuSeconds(mgr.pid())
		r.CPUByPhase[name] = round(cpu1-cpu0, 2)
		reqs1, err := apiRequests(ctx, cp.Config)
		if err != nil {
			return err
		}
		r.APIRequests[name] = reqs1 - reqs0 - (own.Load() - own0)
		r.PeakRSS = use.peak()
		r.CPU, _ = cpuSeconds(mgr.pid())
		return nil
	}
	poll := time.Second
	if n >= 2000 {
		poll = 2 * time.Second
	}

	// Servers.
	err = phase("servers", func() error {
		key := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: "sim-key"},
			Type:       corev1.SecretTypeSSHAuth,
			Data:       map[string][]byte{corev1.SSHAuthPrivateKey: keyPEM},
		}
		if err := k8s.Create(ctx, key); err != nil {
			return err
		}
		if d := cfg.serverPhaseDelays; d != nil {
			if err := ctl.setDelays(ctx, *d, *d, *d); err != nil {
				return err
			}
			r.ServerDelays = fmt.Sprintf("pull %s, start %s, health %s", *d, *d, *d)
		}
		t0 := time.Now()
		err := parallel(ctx, n, 32, func(ctx context.Context, i int) error {
			h := st.Hosts[i]
			return k8s.Create(ctx, fleetsim.ServerObject(benchNamespace, h.Name, h.Address, h.Port, h.HostKey, key.Name))
		})
		if err != nil {
			return err
		}
		logf("%d Servers created in %s", n, since(t0))
		err = waitFor(ctx, fmt.Sprintf("%d Servers Ready", n), cfg.phaseTimeout, poll, func() (bool, string, error) {
			if err := alive(); err != nil {
				return false, "", err
			}
			var list kamalv1.ServerList
			if err := k8s.List(ctx, &list, client.InNamespace(benchNamespace)); err != nil {
				return false, err.Error(), nil
			}
			ready, sample := 0, ""
			for _, s := range list.Items {
				if c := meta.FindStatusCondition(s.Status.Conditions, kamalv1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
					ready++
				} else if sample == "" {
					sample = fmt.Sprintf("; %s: %+v", s.Name, c)
				}
				if b, err := json.Marshal(s.Status); err == nil {
					r.ServerStatusMax = max(r.ServerStatusMax, len(b))
				}
			}
			return ready == n, fmt.Sprintf("%d of %d Ready%s", ready, n, sample), nil
		})
		r.ServersReady = seconds(time.Since(t0))
		return err
	})
	if err != nil {
		return err
	}
	logf("%d Servers Ready in %.1fs", n, r.ServersReady)
	if err := ctl.setDelays(ctx, cfg.pull, cfg.start, cfg.health); err != nil {
		return err
	}

	// The Deployment: first deploy, then an image change.
	d := fleetsim.AppDeployment(benchNamespace, "25%")
	err = phase("first deploy", func() error {
		t0 := time.Now()
		if err := k8s.Create(ctx, d); err != nil {
			return err
		}
		err := waitDeployed(ctx, cfg, k8s, d, n, "v1", poll, alive)
		r.FirstDeploy = seconds(time.Since(t0))
		return err
	})
	if err != nil {
		return err
	}
	logf("first deploy on %d hosts Ready in %.1fs", n, r.FirstDeploy)
	err = phase("image change", func() error {
		t0 := time.Now()
		err := waitFor(ctx, "the image change written", cfg.phaseTimeout, poll, func() (bool, string, error) {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
				return false, err.Error(), nil
			}
			d.Spec.Image = fleetsim.AppImage("v2")
			if err := k8s.Update(ctx, d); err != nil {
				return false, err.Error(), nil
			}
			return true, "", nil
		})
		if err != nil {
			return err
		}
		err = waitDeployed(ctx, cfg, k8s, d, n, "v2", poll, alive)
		r.ImageChange = seconds(time.Since(t0))
		return err
	})
	if err != nil {
		return err
	}
	logf("image change on %d hosts Ready in %.1fs", n, r.ImageChange)
	if b, err := json.Marshal(d.Status); err == nil {
		r.StatusBytes = len(b)
	}
	if r.SSHOpen, r.SSHAccepted, err = ctl.conns(ctx); err != nil {
		return err
	}

	// Idle: what a converged fleet costs.
	err = phase("idle", func() error {
		logf("idle for %s", cfg.idle)
		return sleep(ctx, cfg.idle)
	})
	if err != nil {
		return err
	}
	minutes := cfg.idle.Minutes()
	r.IdlePerHostMin = round(float64(sum(r.Calls["idle"]))/float64(n)/minutes, 3)
	r.IdleAPIPerMin = round(float64(r.APIRequests["idle"])/minutes, 1)
	r.IdleCPUPerMin = round(r.CPUByPhase["idle"]/minutes, 2)

	// The floor, with the controller idle beside it.
	t0 = time.Now()
	ff, err := dialFloor(ctx, st, signer, benchNamespace, cfg.dials)
	if err != nil {
		return fmt.Errorf("floor: connecting: %w", err)
	}
	defer0(ff.close)
	r.FloorConnect = round(time.Since(t0).Seconds(), 2)
	ff.stopTimeout = 30 // the Deployment's stopTimeout (30 s by default)
	if st := d.Spec.Rollout.StopTimeout; st != nil {
		ff.stopTimeout = int(st.Duration.Seconds())
	}
	bad, named := ff.verify(ctx, d.Name, "v2")
	r.VerifyMismatches = bad
	if bad > 0 {
		return fmt.Errorf("%d hosts are not as the Deployment's status says: %v", bad, named)
	}
	batch := release.BatchSize(n, 0, 25)
	fctx, cancel := context.WithTimeout(ctx, cfg.phaseTimeout)
	defer cancel()
	t0 = time.Now()
	if err := ff.rollout(fctx, "v1", "", batch); err != nil {
		return fmt.Errorf("floor: first deploy: %w", err)
	}
	r.FloorFirstDeploy = seconds(time.Since(t0))
	t0 = time.Now()
	if err := ff.rollout(fctx, "v2", "v1", batch); err != nil {
		return fmt.Errorf("floor: image change: %w", err)
	}
	r.FloorImageChange = seconds(time.Since(t0))
	r.RatioFirstDeploy = round(r.FirstDeploy/r.FloorFirstDeploy, 2)
	r.RatioImageChange = round(r.ImageChange/r.FloorImageChange, 2)
	logf("floor: connect %.1fs, first deploy %.1fs, image change %.1fs", r.FloorConnect, r.FloorFirstDeploy, r.FloorImageChange)

	r.PeakRSS = use.peak()
	r.CPU, _ = cpuSeconds(mgr.pid())
	r.ErrorLines, r.TooLarge = logCounts(managerLog)
	if u, err := ctl.unknown(ctx); err == nil && len(u) > 0 {
		return fmt.Errorf("the simulator could not answer %d calls: %v", len(u), u[:min(len(u), 3)])
	}
	return nil
}

// waitDeployed waits until d is Ready for its generation on all n hosts at version.
func waitDeployed(ctx context.Context, cfg *config, k8s client.Client, d *kamalv1.Deployment, n int, version string, poll time.Duration, alive func() error) error {
	return waitFor(ctx, fmt.Sprintf("Deployment %s Ready at %s on %d hosts", d.Name, version, n), cfg.phaseTimeout, poll, func() (bool, string, error) {
		if err := alive(); err != nil {
			return false, "", err
		}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
			return false, err.Error(), nil
		}
		c := meta.FindStatusCondition(d.Status.Conditions, kamalv1.ConditionReady)
		progress := fmt.Sprintf("servers ready %s, version %q, Ready %+v", d.Status.ServersReady, d.Status.Version, c)
		ok := c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == d.Generation &&
			d.Status.ObservedGeneration == d.Generation &&
			d.Status.ServersReady == fmt.Sprintf("%d/%d", n, n) && d.Status.Version == version
		return ok, progress, nil
	})
}

// waitFor polls cond every interval until it is done, fails, or timeout passes; the error
// then says what it waited for and the last progress seen.
func waitFor(ctx context.Context, what string, timeout, interval time.Duration, cond func() (bool, string, error)) error {
	deadline := time.Now().Add(timeout)
	last, lastLog := "", time.Now()
	for {
		done, progress, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if done {
			return nil
		}
		last = progress
		if time.Since(lastLog) > 30*time.Second {
			logf("waiting for %s: %s", what, last)
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: not done within %s; last: %s", what, timeout, last)
		}
		if err := sleep(ctx, interval); err != nil {
			return fmt.Errorf("waiting for %s: %w; last: %s", what, err, last)
		}
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// isSignalExit says whether err is the exit of a process ended by the SIGTERM it was sent.
func isSignalExit(err error) bool {
	var ee interface{ ExitCode() int }
	return errors.As(err, &ee) && (ee.ExitCode() == -1 || ee.ExitCode() == 143)
}

// topCalls lists a phase's k most frequent calls.
func topCalls(calls map[string]int, k int) []string {
	all := fleetsim.ByCount(calls)
	var out []string
	for _, c := range all[:min(k, len(all))] {
		out = append(out, fmt.Sprintf("%s %d", c.Call, c.N))
	}
	return out
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

func seconds(d time.Duration) float64 { return round(d.Seconds(), 1) }

func round(v float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}
