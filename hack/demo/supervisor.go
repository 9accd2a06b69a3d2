package main

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/kamal-operator/kamal-operator/test/framework"
)

// The supervisor runs detached (its own session, output in bin/demo/supervisor.log): it starts
// the control plane (kube-apiserver and etcd, with the CRDs installed), writes bin/demo/kubeconfig
// and runs the controller (bin/manager) as its child, restarting it when it exits. It reports in
// bin/demo/supervisor.json. Signals:
//
//	SIGUSR1          (re)start the controller from bin/manager (sent by `up` once it is built)
//	SIGTERM, SIGINT  stop the controller, then the control plane, and exit
type supOpts struct {
	proxyImage string
}

// Phases of the supervisor.
const (
	phaseStarting = "starting"
	phaseReady    = "control-plane-ready"
	phaseStopping = "stopping"
	phaseStopped  = "stopped"
	phaseFailed   = "failed"
)

type managerState struct {
	Proc       procID    `json:"proc"`
	Binary     string    `json:"binary"`
	SHA256     string    `json:"sha256"`
	HealthAddr string    `json:"healthAddr"` // /readyz of the controller
	StartedAt  time.Time `json:"startedAt"`
	Restarts   int       `json:"restarts"` // after exiting on its own
	LastExit   string    `json:"lastExit,omitempty"`
}

type supState struct {
	Self         procID        `json:"self"`
	DemoSHA256   string        `json:"demoSHA256"` // of the program, to tell a changed one
	StartedAt    time.Time     `json:"startedAt"`
	Phase        string        `json:"phase"`
	Error        string        `json:"error,omitempty"`
	APIServer    string        `json:"apiServer,omitempty"`
	ControlPlane []procID      `json:"controlPlane,omitempty"` // etcd and kube-apiserver
	Manager      *managerState `json:"manager,omitempty"`
}

// isSupervisor tells whether st.Self is a live supervisor process.
func (st *supState) isSupervisor() bool {
	if !st.Self.alive() {
		return false
	}
	args := cmdline(st.Self.PID)
	return len(args) >= 2 && args[1] == "supervise"
}

type runningManager struct {
	id      procID
	done    chan struct{}
	exitErr string // set before done is closed
}

func supervise(p paths, o supOpts) error {
	log.SetFlags(log.Ldate | log.Ltime | log.Lmicroseconds)
	log.SetPrefix("supervisor ")
	signal.Ignore(syscall.SIGHUP)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)

	self, err := idOf("supervisor", os.Getpid())
	if err != nil {
		return err
	}
	st := &supState{Self: self, StartedAt: time.Now(), Phase: phaseStarting}
	if exe, err := os.Executable(); err == nil {
		st.DemoSHA256, _ = fileSHA256(exe)
	}
	save := func() {
		if err := writeJSON(p.supState, st); err != nil {
			log.Printf("writing %s: %v", p.supState, err)
		}
	}
	save()
	log.Printf("pid %d: starting the control plane (kube-apiserver and etcd from %s)", self.PID, os.Getenv("KUBEBUILDER_ASSETS"))
	t0 := time.Now()
	cp, err := framework.StartControlPlane()
	if err != nil {
		st.Phase, st.Error = phaseFailed, err.Error()
		save()
		return err
	}
	kc, err := os.ReadFile(cp.Kubeconfig)
	if err == nil {
		err = os.WriteFile(p.kubeconfig, kc, 0o600)
	}
	if err != nil {
		cp.Stop()
		st.Phase, st.Error = phaseFailed, err.Error()
		save()
		return err
	}
	st.APIServer = cp.Config.Host
	st.ControlPlane = childrenOf(os.Getpid())
	st.Phase = phaseReady
	save()
	log.Printf("control plane up in %s at %s (%v); kubeconfig %s", time.Since(t0).Round(time.Millisecond), st.APIServer, st.ControlPlane, p.kubeconfig)

	var mgr *runningManager
	var exited <-chan struct{} // of mgr; nil while none runs
	var retry <-chan time.Time
	backoff := time.Second
	start := func() {
		retry = nil
		m, err := startManager(p, o, st)
		if err != nil {
			log.Printf("starting the controller: %v (retrying in %s)", err, backoff)
			retry = time.After(backoff)
			backoff = min(2*backoff, 30*time.Second)
			save()
			return
		}
		mgr, exited = m, m.done
		save()
		log.Printf("controller started: pid %d, %s (sha256 %.12s), health %s", m.id.PID, st.Manager.Binary, st.Manager.SHA256, st.Manager.HealthAddr)
	}
	stop := func() {
		if mgr == nil {
			return
		}
		log.Printf("stopping the controller (pid %d)", mgr.id.PID)
		mgr.id.signal(syscall.SIGTERM)
		select {
		case <-mgr.done:
		case <-time.After(20 * time.Second):
			log.Printf("controller still running after 20s: SIGKILL")
			mgr.id.signal(syscall.SIGKILL)
			<-mgr.done
		}
		mgr, exited = nil, nil
	}
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGUSR1 {
				log.Printf("SIGUSR1: (re)starting the controller")
				stop()
				backoff = time.Second
				start()
				continue
			}
			log.Printf("%s: stopping", s)
			st.Phase = phaseStopping
			save()
			stop()
			cp.Stop()
			_ = os.Remove(p.kubeconfig)
			st.Phase = phaseStopped
			save()
			log.Printf("stopped")
			return nil
		case <-exited:
			st.Manager.LastExit = mgr.exitErr
			ran := time.Since(st.Manager.StartedAt)
			log.Printf("controller (pid %d) exited on its own after %s: %s; restarting in %s (log %s)",
				mgr.id.PID, ran.Round(time.Millisecond), st.Manager.LastExit, backoff, p.managerLog)
			mgr, exited = nil, nil
			st.Manager.Restarts++
			save()
			if ran > time.Minute {
				backoff = time.Second
			}
			retry = time.After(backoff)
			backoff = min(2*backoff, 30*time.Second)
		case <-retry:
			start()
		}
	}
}

// startManager runs bin/manager against the control plane, with its output appended to
// bin/demo/manager.log and its health probe on a free loopback port.
func startManager(p paths, o supOpts, st *supState) (*runningManager, error) {
	sum, err := fileSHA256(p.manager)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	health := "127.0.0.1:" + strconv.Itoa(port)
	f, err := os.OpenFile(p.managerLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	args := []string{
		"--health-probe-bind-address=" + health,
		"--metrics-bind-address=0",
		"--zap-encoder=console",
		"--zap-time-encoding=iso8601",
	}
	if o.proxyImage != "" {
		args = append(args, "--proxy-image="+o.proxyImage)
	}
	fmt.Fprintf(f, "\n=== %s: %s %v\n", time.Now().Format(time.RFC3339), p.manager, args)
	cmd := exec.Command(p.manager, args...)
	cmd.Dir = p.root
	cmd.Env = append(os.Environ(), "KUBECONFIG="+p.kubeconfig)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	id, err := idOf("manager", cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	restarts := 0
	if st.Manager != nil {
		restarts = st.Manager.Restarts
	}
	ms := &managerState{Proc: id, Binary: p.manager, SHA256: sum, HealthAddr: health, StartedAt: time.Now(), Restarts: restarts}
	st.Manager = ms
	m := &runningManager{id: id, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		if err == nil {
			err = errors.New("exit status 0")
		}
		m.exitErr = err.Error()
		close(m.done)
	}()
	return m, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
