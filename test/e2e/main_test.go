// Package e2e runs the controllers against real hosts: network namespaces with their own sshd
// and dockerd (test/hosts), a real registry, the real Caddy proxy image, and a real
// kube-apiserver and etcd. It runs with KAMAL_E2E=1, as root (`make e2e`).
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kamal-operator/kamal-operator/controllers"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/hosts"
)

var (
	k8s   client.Client
	cp    *framework.ControlPlane
	mgr   *framework.Manager
	env   *hosts.Env
	start = map[string]time.Duration{}
)

// The hosts of the suite: 1, 2 and 3 on the bridge, 4 reachable only through 1, 5 with sshd
// refusing stream-local forwarding.
const (
	hostMain     = 1
	hostOther    = 2
	hostThird    = 3
	hostBehind   = 4
	hostNoStream = 5
)

// oneOffGrace is how long exited one-off containers of kubectl kamal stay on the test hosts:
// short, so the controller's collection of those a killed plugin left is seen within a test.
const oneOffGrace = 10 * time.Second

// managerOptions are the controller's options in this suite, with proxyImage as the default proxy.
// Once a test started Pebble (startPebble), the manager orders certificates from it.
func managerOptions(proxyImage string) controllers.Options {
	o := controllers.Options{DefaultProxyImage: proxyImage, OneOffExitedGrace: oneOffGrace}
	if pebble != nil {
		o.ACME = controllers.ACMEOptions{DirectoryURL: pebble.DirectoryURL, CABundle: pebble.CABundle}
	}
	return o
}

func TestMain(m *testing.M) {
	if os.Getenv("KAMAL_E2E") == "" {
		fmt.Println("e2e: set KAMAL_E2E=1 (as root) to run the end-to-end suite; `make e2e` does")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	// The control plane and the hosts start in parallel.
	cpDone := make(chan error, 1)
	go func() {
		t0 := time.Now()
		var err error
		cp, err = framework.StartControlPlane()
		start["control plane"] = time.Since(t0)
		cpDone <- err
	}()
	t0 := time.Now()
	var err error
	env, err = hosts.Start(ctx, hosts.Options{
		Hosts: []hosts.HostOptions{{}, {}, {}, {Behind: hostMain}, {NoStreamLocalForwarding: true}},
		Logf:  func(f string, a ...any) { fmt.Printf("hosts: "+f+"\n", a...) },
	})
	start["hosts"] = time.Since(t0)
	cpErr := <-cpDone
	if err != nil || cpErr != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err, cpErr)
		if env != nil {
			_ = env.Close()
		}
		if cp != nil {
			cp.Stop()
		}
		return 1
	}
	defer func() { _ = env.Close() }()
	defer cp.Stop()
	k8s = cp.Client
	fmt.Printf("e2e: control plane up in %s; %d hosts, registry and images in %s\n",
		start["control plane"].Round(time.Millisecond), len(env.Hosts), start["hosts"].Round(time.Millisecond))

	mgr, err = framework.StartManager(cp, managerOptions(env.ProxyImage()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// A test may replace mgr; stop whichever runs at the end.
	defer func() { mgr.Stop() }()
	defer closePebble()
	return m.Run()
}
