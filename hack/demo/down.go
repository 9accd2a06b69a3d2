package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/kamal-operator/kamal-operator/test/hosts"
)

func downCmd(p paths) error {
	u := newUI()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lock, err := flock(ctx, p.lock, u.info)
	if err != nil {
		return err
	}
	defer lock.Close()
	t := u.step("Stop the demo")
	if err := down(ctx, p, u); err != nil {
		return err
	}
	u.done(t, "demo stopped (logs kept in %s)", rel(p, p.dir))
	return nil
}

// down stops the supervisor (which stops the controller and the control plane), whatever it left
// running, and the test hosts if they are still the demo's. It signals only processes this demo
// started, by PID and start time.
func down(ctx context.Context, p paths, u *ui) error {
	if os.Geteuid() != 0 {
		return errors.New("run it as root")
	}
	var errs []error
	var st supState
	if err := readJSON(p.supState, &st); err == nil {
		t := time.Now()
		if st.isSupervisor() {
			st.Self.signal(syscall.SIGTERM)
			if !st.Self.waitGone(60 * time.Second) {
				u.info("supervisor (pid %d) still running after 60s: SIGKILL", st.Self.PID)
				st.Self.signal(syscall.SIGKILL)
				st.Self.waitGone(5 * time.Second)
			}
		}
		// What an interrupted supervisor left (re-read: it records the controller it ran last).
		_ = readJSON(p.supState, &st)
		left := append([]procID(nil), st.ControlPlane...)
		if st.Manager != nil {
			left = append(left, st.Manager.Proc)
		}
		for _, c := range left {
			if c.alive() {
				u.info("stopping leftover %s (pid %d)", c.Name, c.PID)
				c.stop(10 * time.Second)
			}
		}
		u.done(t, "controller and control plane stopped")
	}

	var ds demoState
	if err := readJSON(p.demoState, &ds); err == nil {
		t := time.Now()
		hs, err := hosts.Status("")
		switch {
		case err != nil:
			errs = append(errs, err)
		case hostsMatch(&ds, hs):
			if err := hosts.Teardown(ctx, "", func(f string, a ...any) { u.info("hosts: "+f, a...) }); err != nil {
				errs = append(errs, fmt.Errorf("removing the test hosts: %w", err))
			} else {
				u.done(t, "test hosts %s and the registry removed", hostList(ds.Hosts))
			}
		case len(hs.Hosts) > 0:
			u.info("the test hosts now belong to another run (a test, perhaps): left alone")
		default:
			u.info("the demo's test hosts are gone already")
		}
	}
	for _, f := range []string{p.supState, p.demoState, p.kubeconfig} {
		_ = os.Remove(f)
	}
	_ = os.RemoveAll(p.overlay)
	return errors.Join(errs...)
}

func statusCmd(p paths) error {
	var st supState
	if err := readJSON(p.supState, &st); err != nil {
		fmt.Println("no demo running (make demo starts one)")
	} else if !st.isSupervisor() {
		fmt.Printf("supervisor gone (was pid %d, phase %s); make demo-down cleans up\n", st.Self.PID, st.Phase)
	} else {
		fmt.Printf("supervisor   pid %d, up %s, %s (log %s)\n", st.Self.PID, dur(time.Since(st.StartedAt)), st.Phase, p.supLog)
		var cps []string
		for _, c := range st.ControlPlane {
			state := "running"
			if !c.alive() {
				state = "gone"
			}
			cps = append(cps, fmt.Sprintf("%s pid %d %s", c.Name, c.PID, state))
		}
		fmt.Printf("control plane %s: %s\n", st.APIServer, strings.Join(cps, ", "))
		if m := st.Manager; m != nil {
			state := "running"
			if !m.Proc.alive() {
				state = "not running (last exit: " + m.LastExit + ")"
			}
			fmt.Printf("controller   pid %d %s, since %s, %d restarts (log %s)\n", m.Proc.PID, state, m.StartedAt.Format(time.TimeOnly), m.Restarts, p.managerLog)
		}
	}
	var ds demoState
	if err := readJSON(p.demoState, &ds); err == nil {
		hs, err := hosts.Status("")
		if err != nil {
			return err
		}
		owner := "the demo's"
		if !hostsMatch(&ds, hs) {
			owner = "NOT the demo's (replaced by another run)"
		}
		fmt.Printf("test hosts   %s; registry pid %d\n", owner, hs.RegistryPID)
		for _, h := range hs.Hosts {
			fmt.Printf("  %s %s %s  DOCKER_HOST=unix://%s\n", h.Name, h.Address, h.Processes(), h.DockerSocket)
		}
	}
	if st.isSupervisor() {
		if assets, err := kubeAssets(p); err == nil {
			fmt.Println()
			cmd := exec.Command(assets+"/kubectl", "--kubeconfig", p.kubeconfig, "get", "kamal")
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			_ = cmd.Run()
			fmt.Printf("\nexport KUBECONFIG=%s PATH=%s:$PATH\n", p.kubeconfig, assets)
		}
	}
	return nil
}
