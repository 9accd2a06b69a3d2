package envtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/release"
	"github.com/kamal-operator/kamal-operator/test/fleetsim"
)

// simHosts is the size of the simulated fleet of TestSimulatedFleet: more than a status lists
// in full (100 targets), so the bounded status is what it checks.
const simHosts = 120

// TestSimulatedFleet runs the controllers against 120 simulated hosts (test/fleetsim): every
// Server Ready, a Deployment on all of them Ready, then an image change rolled out in batches
// of 25% converges, with a bounded status that counts every target; the simulator must have
// answered every call.
func TestSimulatedFleet(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	signer, keyPEM, err := fleetsim.ClientKey()
	if err != nil {
		t.Fatal(err)
	}
	sim, err := fleetsim.Start(fleetsim.Options{
		Hosts: simHosts, Base: netip.MustParseAddr("127.1.0.1"), AuthorizedKey: signer.PublicKey(),
		Delays: fleetsim.Delays{Pull: 20 * time.Millisecond, Start: 10 * time.Millisecond, Health: 300 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	t.Cleanup(func() {
		if u := sim.Unknown(); len(u) > 0 {
			t.Errorf("calls the simulator could not answer (add them to test/fleetsim):\n  %s", strings.Join(u, "\n  "))
		}
	})
	key := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sim-key"},
		Type:       corev1.SecretTypeSSHAuth,
		Data:       map[string][]byte{corev1.SSHAuthPrivateKey: keyPEM},
	}
	if err := k8s.Create(ctx, key); err != nil {
		t.Fatal(err)
	}
	// The manager outlives this test: its objects go (and their finalizers run on the hosts)
	// before the hosts do.
	t.Cleanup(func() { deleteSimObjects(t, ns) })

	t0 := time.Now()
	for _, h := range sim.Hosts() {
		if err := k8s.Create(ctx, fleetsim.ServerObject(ns, h.Name, h.Address.String(), h.Port, h.HostKey(), key.Name)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 60*time.Second, func() error {
		var list kamalv1.ServerList
		if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		var notReady []string
		for _, s := range list.Items {
			if c := meta.FindStatusCondition(s.Status.Conditions, kamalv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
				notReady = append(notReady, fmt.Sprintf("%s: %+v", s.Name, c))
			}
		}
		if len(list.Items) != simHosts || len(notReady) > 0 {
			return fmt.Errorf("%d servers, not Ready: %v", len(list.Items), firstOf(notReady, 3))
		}
		return nil
	})
	t.Logf("%d Servers Ready in %s", simHosts, time.Since(t0).Round(time.Millisecond))

	// The simulator's short delays allow short health checks and timeouts.
	d := fleetsim.AppDeployment(ns, "25%")
	d.Spec.Proxy.Healthcheck = &kamalv1.ProxyHealthcheck{Interval: &metav1.Duration{Duration: 100 * time.Millisecond}}
	d.Spec.Rollout.DeployTimeout = &metav1.Duration{Duration: 15 * time.Second}
	d.Spec.Rollout.DrainTimeout = &metav1.Duration{Duration: 5 * time.Second}
	d.Spec.Rollout.StopTimeout = &metav1.Duration{Duration: 5 * time.Second}
	if err := k8s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	waitSimDeployed(t, d, sim, "v1")
	t.Logf("first deploy on %d hosts Ready in %s", simHosts, time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	eventually(t, 10*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		d.Spec.Image = fleetsim.AppImage("v2")
		return k8s.Update(ctx, d)
	})
	waitSimDeployed(t, d, sim, "v2")
	t.Logf("image change on %d hosts (maxParallel 25%%) Ready in %s", simHosts, time.Since(t0).Round(time.Millisecond))

	// Each host holds the proxy, the running v2 and the stopped v1 container: a target deployed
	// twice would leave a suffixed copy.
	for _, h := range sim.Hosts() {
		if cs := h.Containers(); len(cs) != 3 {
			t.Errorf("%s holds %d containers, want the proxy, v1 and v2: %v", h.Name, len(cs), cs)
		}
	}
	b, _ := json.Marshal(d.Status)
	if len(b) > 4<<10 {
		t.Errorf("the Deployment's status is %d bytes on %d hosts, want it bounded (< 4 KiB)", len(b), simHosts)
	}
	t.Logf("Deployment status: %d bytes, %d targets listed; calls: %s", len(b), len(d.Status.Targets), callSummary(sim.Calls()))
}

// deleteSimObjects deletes the Deployments and Servers of ns and waits until they are gone.
func deleteSimObjects(t *testing.T, ns string) {
	ctx := context.Background()
	_ = k8s.DeleteAllOf(ctx, &kamalv1.Deployment{}, client.InNamespace(ns))
	eventually(t, 30*time.Second, func() error {
		var list kamalv1.DeploymentList
		if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil || len(list.Items) > 0 {
			return fmt.Errorf("%d deployments left (%v)", len(list.Items), err)
		}
		return nil
	})
	_ = k8s.DeleteAllOf(ctx, &kamalv1.Server{}, client.InNamespace(ns))
	eventually(t, 30*time.Second, func() error {
		var list kamalv1.ServerList
		if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil || len(list.Items) > 0 {
			return fmt.Errorf("%d servers left (%v)", len(list.Items), err)
		}
		return nil
	})
}

// waitSimDeployed waits until d is Ready for its generation with every target at version, and
// every simulated host's proxy routes to a running container of that version.
func waitSimDeployed(t *testing.T, d *kamalv1.Deployment, sim *fleetsim.Fleet, version string) {
	t.Helper()
	routeID := release.RouteID(d.Namespace, d.Name, "web")
	eventually(t, 60*time.Second, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		c := meta.FindStatusCondition(d.Status.Conditions, kamalv1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != d.Generation || d.Status.ObservedGeneration != d.Generation {
			return fmt.Errorf("Ready = %+v, servers %s", c, d.Status.ServersReady)
		}
		if d.Status.ServersReady != fmt.Sprintf("%d/%d", simHosts, simHosts) || d.Status.Version != version {
			return fmt.Errorf("servers ready %s, version %q", d.Status.ServersReady, d.Status.Version)
		}
		// Bounded: no Running target listed, all of them counted.
		want := []kamalv1.TargetCount{{Role: "web", Version: version, State: kamalv1.TargetRunning, Count: simHosts}}
		if len(d.Status.Targets) != 0 || d.Status.TargetsNotListed != simHosts || !slices.Equal(d.Status.Summary, want) {
			return fmt.Errorf("status lists %d targets, %d not listed, summary %+v", len(d.Status.Targets), d.Status.TargetsNotListed, d.Status.Summary)
		}
		for _, h := range sim.Hosts() {
			up := h.Routes()[routeID]
			name, _, _ := strings.Cut(up, ":")
			if !h.Running(name) || !hasVersion(h, name, version) {
				return fmt.Errorf("%s routes %q, not a running container of %s (containers %v)", h.Name, up, version, h.Containers())
			}
		}
		return nil
	})
}

// hasVersion says whether container name on h runs the image tagged version.
func hasVersion(h *fleetsim.Host, name, version string) bool {
	img, ok := h.ContainerImage(name)
	return ok && strings.HasSuffix(img, ":"+version)
}

func firstOf(list []string, n int) []string {
	if len(list) > n {
		return append(list[:n:n], fmt.Sprintf("… %d more", len(list)-n))
	}
	return list
}

// callSummary lists the calls by count, most first.
func callSummary(calls map[string]int) string {
	total, parts := 0, []string{}
	for _, c := range fleetsim.ByCount(calls) {
		total += c.N
		parts = append(parts, fmt.Sprintf("%s=%d", c.Call, c.N))
	}
	return fmt.Sprintf("%d in all: %s", total, strings.Join(parts, ", "))
}
