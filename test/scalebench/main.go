// Command scalebench measures the controller against simulated fleets (test/fleetsim) of
// growing size: for each host count it starts a kube-apiserver and etcd (the envtest binaries),
// the simulator and the manager, each in its own process; creates one Server per host and
// waits until all are Ready; deploys one Deployment on all of them (maxParallel 25%) and
// changes its image, timing each; measures the controller's memory, CPU, API requests and
// idle load on the hosts; and runs the same rollout directly against the hosts (the floor) to
// report the controller's time over it. `make bench-scale` runs it; see docs/scale.md.
//
// Settings come from the environment:
//
//	SCALE_HOSTS="100 1000 5000"   host counts, run in order
//	SCALE_IDLE=60s                how long idle load is measured after convergence
//	SCALE_PHASE_TIMEOUT=10m       deadline of each phase
//	SCALE_PULL_DELAY=1s SCALE_START_DELAY=1s SCALE_HEALTH_DELAY=1s   the simulator's delays
//	SCALE_SERVER_PHASE_DELAYS=0s  the simulator's delays while the Servers come up (default: the
//	                              same as for the rollouts); the proxy's pull and start then
//	                              cost nothing, for fleets too large to wait for them one by one
//	SCALE_APPEND=1                keep the results of other host counts already in
//	                              SCALE_OUT/results.json (a large count run on its own later)
//	SCALE_PLOT=docs/images/bench-scale.svg   also draw the results there
//	SCALE_OUT=bin/bench-scale     results.md, results.json and each run's logs
//	SCALE_MANAGER_ARGS="..."      more manager flags
//	SCALE_SERVER_WORKERS=16 SCALE_DEPLOYMENT_WORKERS=4 SCALE_MAX_DIALS=64   passed when the
//	                              manager has --server-workers, --deployment-workers,
//	                              --max-concurrent-dials
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kamal-operator/kamal-operator/test/framework"
)

type config struct {
	hosts                []int
	idle, phaseTimeout   time.Duration
	pull, start, health  time.Duration
	out, plot            string
	manager, fleetsim    string
	managerArgs          []string
	workerFlags          map[string]string // flag → value, passed when the manager has it
	dials                int               // the floor's parallel dials
	serverPhaseDelays    *time.Duration    // the simulator's delays while the Servers come up
	root                 string
	managerFlagsDetected []string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scalebench:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := configFromEnv()
	if err != nil {
		return err
	}
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		os.Setenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT", "3m")
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	if err := cfg.detectManagerFlags(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var results []*result
	if os.Getenv("SCALE_APPEND") != "" {
		if results, err = previousResults(cfg); err != nil {
			return err
		}
	}
	var failed []string
	for _, n := range cfg.hosts {
		logf("=== %d hosts (load average %s)", n, loadAvg())
		r := runScale(ctx, cfg, n)
		results = slices.DeleteFunc(results, func(p *result) bool { return p.Hosts == n })
		results = append(results, r)
		slices.SortFunc(results, func(a, b *result) int { return a.Hosts - b.Hosts })
		if r.Error != "" {
			failed = append(failed, fmt.Sprintf("%d hosts: %s", n, r.Error))
			logf("%d hosts FAILED: %s", n, r.Error)
		}
		if err := writeResults(cfg, results); err != nil {
			return err
		}
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Print(markdown(cfg, results))
	logf("results in %s", filepath.Join(cfg.out, "results.md"))
	if cfg.plot != "" {
		if err := writePlot(cfg.plot, results); err != nil {
			return err
		}
		logf("plot in %s", cfg.plot)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d runs failed:\n  %s", len(failed), len(results), strings.Join(failed, "\n  "))
	}
	return nil
}

func configFromEnv() (*config, error) {
	root := framework.RepoRoot()
	cfg := &config{
		idle: 60 * time.Second, phaseTimeout: 10 * time.Minute,
		pull: time.Second, start: time.Second, health: time.Second,
		out:      filepath.Join(root, "bin", "bench-scale"),
		manager:  filepath.Join(root, "bin", "manager"),
		fleetsim: filepath.Join(root, "bin", "fleetsim"),
		plot:     os.Getenv("SCALE_PLOT"),
		dials:    64,
		root:     root,
		workerFlags: map[string]string{
			"server-workers": "16", "deployment-workers": "4", "max-concurrent-dials": "64",
		},
	}
	hosts := os.Getenv("SCALE_HOSTS")
	if hosts == "" {
		hosts = "100 1000 5000"
	}
	for _, f := range strings.Fields(strings.ReplaceAll(hosts, ",", " ")) {
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n < 1 || n > 60000 {
			return nil, fmt.Errorf("SCALE_HOSTS: %q is not a host count", f)
		}
		cfg.hosts = append(cfg.hosts, n)
	}
	for env, d := range map[string]*time.Duration{
		"SCALE_IDLE": &cfg.idle, "SCALE_PHASE_TIMEOUT": &cfg.phaseTimeout,
		"SCALE_PULL_DELAY": &cfg.pull, "SCALE_START_DELAY": &cfg.start, "SCALE_HEALTH_DELAY": &cfg.health,
	} {
		if s := os.Getenv(env); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", env, err)
			}
			*d = v
		}
	}
	for env, flag := range map[string]string{
		"SCALE_SERVER_WORKERS": "server-workers", "SCALE_DEPLOYMENT_WORKERS": "deployment-workers", "SCALE_MAX_DIALS": "max-concurrent-dials",
	} {
		if s := os.Getenv(env); s != "" {
			cfg.workerFlags[flag] = s
		}
	}
	if s := os.Getenv("SCALE_SERVER_PHASE_DELAYS"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("SCALE_SERVER_PHASE_DELAYS: %w", err)
		}
		cfg.serverPhaseDelays = &v
	}
	if s := os.Getenv("SCALE_OUT"); s != "" {
		cfg.out = s
	}
	if s := os.Getenv("SCALE_MANAGER"); s != "" {
		cfg.manager = s
	}
	if s := os.Getenv("SCALE_FLEETSIM"); s != "" {
		cfg.fleetsim = s
	}
	cfg.managerArgs = strings.Fields(os.Getenv("SCALE_MANAGER_ARGS"))
	return cfg, nil
}

// detectManagerFlags asks the manager binary which of the worker and dial flags it has, so
// the harness runs the manager of any commit.
func (cfg *config) detectManagerFlags() error {
	if _, err := os.Stat(cfg.manager); err != nil {
		return fmt.Errorf("no manager binary (go build -o bin/manager ./cmd): %w", err)
	}
	if _, err := os.Stat(cfg.fleetsim); err != nil {
		return fmt.Errorf("no simulator binary (go build -o bin/fleetsim ./test/fleetsim/cmd/fleetsim): %w", err)
	}
	out, _ := exec.Command(cfg.manager, "--help").CombinedOutput()
	for _, f := range []string{"server-workers", "deployment-workers", "max-concurrent-dials"} {
		if strings.Contains(string(out), "-"+f+" ") || strings.Contains(string(out), "-"+f+"\n") {
			cfg.managerFlagsDetected = append(cfg.managerFlagsDetected, "--"+f+"="+cfg.workerFlags[f])
		}
	}
	return nil
}

// previousResults reads SCALE_OUT/results.json when there is one.
func previousResults(cfg *config) ([]*result, error) {
	b, err := os.ReadFile(filepath.Join(cfg.out, "results.json"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rs []*result
	return rs, json.Unmarshal(b, &rs)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
