package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

// A one-off container of kubectl kamal that a killed plugin left behind is removed by the
// controller once its grace period (oneOffGrace in this suite) is up; one still running, and
// any container that is not a one-off, are left alone.
func TestControllerCollectsLeftOneOffContainers(t *testing.T) {
	h := env.Host(hostMain)
	ns := newNamespace(t)
	keySecret(t, ns)
	srv := serverFor(ns, "web-1", h)
	createServer(t, srv)
	waitReady(t, srv)

	labels := func(extra ...string) []string {
		args := []string{"--label", kamalv1.LabelManagedBy + "=" + kamalv1.ManagerName, "--label", kamalv1.LabelNamespace + "=" + ns}
		for _, l := range extra {
			args = append(args, "--label", l)
		}
		return args
	}
	run := func(name string, detach bool, l []string, cmd ...string) {
		args := []string{"docker", "run", "--name", name, "--network", "none", "--entrypoint", "/usr/bin/caddy"}
		if detach {
			args = append(args, "-d")
		}
		args = append(append(args, l...), env.ProxyImage())
		hostExec(t, h, append(args, cmd...)...)
		t.Cleanup(func() { _, _ = h.Exec(context.Background(), "docker", "rm", "-f", name) })
	}
	oneOff := labels(kamalv1.LabelOneOff+"=exec", kamalv1.LabelOneOffFor+"=Deployment/web")
	left, running, deployed := ns+"-exec-left", ns+"-exec-running", ns+"-web-old"
	run(running, true, oneOff, "run")
	run(deployed, false, labels(kamalv1.LabelDeployment+"=web", kamalv1.LabelRole+"=web", kamalv1.LabelVersion+"=v0"), "version")
	t0 := time.Now()
	run(left, false, oneOff, "version") // exits at once: its "die" event wakes the Server

	framework.Eventually(t, oneOffGrace+45*time.Second, func() error {
		if names := containerNames(t, h); contains(names, left) {
			return fmt.Errorf("%s is still on %s", left, h.Name())
		}
		return nil
	})
	took := time.Since(t0)
	t.Logf("exited one-off removed %s after it ran (grace %s)", took.Round(100*time.Millisecond), oneOffGrace)
	if took < oneOffGrace-time.Second {
		t.Errorf("removed after %s, before its grace period of %s", took, oneOffGrace)
	}
	names := containerNames(t, h)
	for _, kept := range []string{running, deployed} {
		if !contains(names, kept) {
			t.Errorf("%s was removed; only exited one-off containers past their grace are", kept)
		}
	}
}
