package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/images"

	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/release"
	"github.com/kamal-operator/kamal-operator/internal/remote"
)

// benchTarget is how to reach the main test host directly, as the controller does.
func benchTarget(b testing.TB) *remote.Target {
	h := env.Host(hostMain)
	signer, err := ssh.ParsePrivateKey(env.ClientPrivateKeyPEM())
	if err != nil {
		b.Fatal(err)
	}
	keys, err := remote.ParseKnownHosts([]string{h.HostPublicKey()})
	if err != nil {
		b.Fatal(err)
	}
	return &remote.Target{Address: h.Address(), Port: 22, User: "root", Signer: signer, HostKeys: keys}
}

// BenchmarkConnect is one connection setup: TCP, SSH handshake with host key verification,
// public key authentication, and the first Engine API call (a ping) through it.
func BenchmarkConnect(b *testing.B) {
	t := benchTarget(b)
	ctx := context.Background()
	for b.Loop() {
		conn, err := remote.Dial(ctx, t)
		if err != nil {
			b.Fatal(err)
		}
		cli, err := docker.NewClient(docker.NewDialer(conn, ""), nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
			b.Fatal(err)
		}
		_ = cli.Close()
		_ = conn.Close()
	}
}

// BenchmarkEngineCallOverSharedConnection is one Engine API call (container list) over an
// open connection, as the controllers make them.
func BenchmarkEngineCallOverSharedConnection(b *testing.B) {
	t := benchTarget(b)
	ctx := context.Background()
	conn, err := remote.Dial(ctx, t)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	cli, err := docker.NewClient(docker.NewDialer(conn, ""), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	for b.Loop() {
		if _, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSteadyStateMinute keeps a Ready Server under the controller for a minute and
// reports how many SSH connections it opened and holds.
func BenchmarkSteadyStateMinute(b *testing.B) {
	h := env.Host(hostMain)
	t := b
	ns := newNamespace(t)
	keySecret(t, ns)
	srv := serverFor(ns, "web-1", h)
	if err := k8s.Create(context.Background(), srv); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = k8s.Delete(context.Background(), srv) }()
	for b.Loop() {
		waitReady(t, srv)
		before := mgr.Fleet.Pool.Dials()
		time.Sleep(time.Minute) // the measured window: the controller alone, nothing else
		b.ReportMetric(float64(mgr.Fleet.Pool.Dials()-before), "dials/min")
		b.ReportMetric(float64(sshConnections(t, h)), "open-ssh-connections")
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// BenchmarkDeployment rolls a new container out to 3 hosts at once (a restart, so no pull on
// either side) through the controller, then does the same Engine API and proxy operations
// directly on the same hosts in parallel (the floor); then measures drift repair and the
// controller's idle load on a host. One iteration is one full measurement.
func BenchmarkDeployment(b *testing.B) {
	ns := fleetNS(b)
	d := appDeployment(ns, "bench", "v1")
	d.Spec.Rollout.MaxParallel = ptr.To(intstr.FromString("100%"))
	createDeployment(b, d)
	waitDeployed(b, d)
	ctx := context.Background()
	hostsOf := func() []*fleet.Host {
		var hs []*fleet.Host
		for i := range webHosts {
			h := mgr.Fleet.Cached(fmt.Sprintf("%s/web-%d", ns, i+1))
			if h == nil {
				b.Fatal("no connection to web host")
			}
			hs = append(hs, h)
		}
		return hs
	}
	for b.Loop() {
		var viaController, floor, repair []time.Duration
		for i := 0; i < 3; i++ {
			before := map[string]string{}
			for _, tg := range d.Status.Targets {
				before[tg.Server] = tg.Container
			}
			t0 := time.Now()
			update(b, d, func(d *kamalv1.Deployment) {
				if d.Annotations == nil {
					d.Annotations = map[string]string{}
				}
				d.Annotations[kamalv1.AnnotationRestartedAt] = fmt.Sprint(time.Now().UnixNano())
			})
			framework.Eventually(b, readyWithin, func() error {
				if err := k8s.Get(ctx, ctrlclient.ObjectKeyFromObject(d), d); err != nil {
					return err
				}
				if !conditionsReady(d) {
					return fmt.Errorf("not ready")
				}
				// A restart changes no generation: done when every target runs a new container.
				for _, tg := range d.Status.Targets {
					if tg.Container == before[tg.Server] || tg.State != kamalv1.TargetRunning {
						return fmt.Errorf("%s still on %s", tg.Server, tg.Container)
					}
				}
				return nil
			})
			viaController = append(viaController, time.Since(t0))
			floor = append(floor, floorRollout(b, hostsOf(), i))
		}
		// Drift repair: the serving container on web-2 removed by hand, until web-2's proxy
		// serves again.
		h2 := env.Host(hostOther)
		for i := 0; i < 5; i++ {
			waitDeployed(b, d)
			var serving string
			for _, tg := range d.Status.Targets {
				if tg.Server == "web-2" {
					serving = tg.Container
				}
			}
			t0 := time.Now()
			hostExec(b, h2, "docker", "rm", "-f", serving)
			framework.Eventually(b, reactWithin, func() error {
				code, _, err := httpGet(h2, "bench.test", "/version")
				if err != nil || code != 200 {
					return fmt.Errorf("%d %v", code, err)
				}
				return nil
			})
			repair = append(repair, time.Since(t0))
		}
		// Idle: a minute of nothing but the controller.
		waitDeployed(b, d)
		hs := hostsOf()
		before := make([]int64, len(hs))
		for i, h := range hs {
			before[i] = h.Requests.Load()
		}
		time.Sleep(time.Minute)
		var idle int64
		for i, h := range hs {
			idle += h.Requests.Load() - before[i]
		}
		c, f := median(viaController), median(floor)
		b.ReportMetric(float64(c.Milliseconds()), "deploy-ms")
		b.ReportMetric(float64(f.Milliseconds()), "floor-ms")
		b.ReportMetric(float64(c)/float64(f), "deploy/floor")
		b.ReportMetric(float64(median(repair).Milliseconds()), "repair-median-ms")
		b.ReportMetric(float64(idle)/float64(len(hs)), "idle-requests/host/min")
		b.Logf("deploy via controller %v, floor %v, drift repair %v", viaController, floor, repair)
	}
}

func conditionsReady(d *kamalv1.Deployment) bool {
	c := meta.FindStatusCondition(d.Status.Conditions, kamalv1.ConditionReady)
	return c != nil && c.Status == "True" && c.ObservedGeneration == d.Generation && d.Status.ReadyTargets == d.Status.TotalTargets
}

// floorRollout does a rollout's Engine API and proxy work by hand on every host in parallel:
// create and start a container, poll its health check through SSH at the same interval,
// switch a route to it, check in-flight requests, stop the previous one.
func floorRollout(b *testing.B, hs []*fleet.Host, round int) time.Duration {
	ctx := context.Background()
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(hs))
	for i, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = floorOnHost(ctx, h, round)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(t0)
}

func floorOnHost(ctx context.Context, h *fleet.Host, round int) error {
	name := fmt.Sprintf("floor-%d", round)
	res, err := h.Docker.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       name,
		Config:     &container.Config{Image: env.Image("sampleapp:v1")},
		HostConfig: &container.HostConfig{NetworkMode: "kamal"},
	})
	if err != nil {
		return err
	}
	if _, err := h.Docker.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return err
	}
	in, err := h.Docker.ContainerInspect(ctx, res.ID, client.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	ip := in.Container.NetworkSettings.Networks["kamal"].IPAddress.String()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return h.Conn.DialTCP(ctx, addr) }}, Timeout: 5 * time.Second}
	for {
		resp, err := hc.Get("http://" + ip + ":80/up")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	p := &release.Proxy{Hosts: []string{"floor.test"}, AppPort: 80, ResponseTimeout: 30 * time.Second}
	if _, err := h.Proxy.PutRoute(ctx, "bench-floor", p.Route(p.Upstream(name), "bench"), 0, nil); err != nil {
		return err
	}
	if _, err := h.Proxy.InFlight(ctx); err != nil {
		return err
	}
	if round > 0 {
		prev := fmt.Sprintf("floor-%d", round-1)
		timeout := 10
		if _, err := h.Docker.ContainerStop(ctx, prev, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
			return err
		}
		_, _ = h.Docker.ContainerRemove(ctx, prev, client.ContainerRemoveOptions{Force: true})
	}
	if round == 2 {
		_, _ = h.Docker.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true})
		_, _ = h.Proxy.DeleteRoute(ctx, "bench-floor", 0)
	}
	return nil
}

// BenchmarkPluginBuild is a rebuild after one changed file, through kubectl kamal build (the
// context sent as a tar over SSH to the builder's engine, then pushed), next to docker build
// and docker push run on the builder host itself on a copy of the same context. Both reuse
// the cached layers of what did not change. Each op is 3 rebuilds of each; the medians are
// reported, and their ratio.
func BenchmarkPluginBuild(b *testing.B) {
	ctx := context.Background()
	ns := newNamespace(b)
	keySecret(b, ns)
	h := env.Host(hostThird)
	srv := serverFor(ns, "bench-builder", h)
	createServer(b, srv)
	waitReady(b, srv)

	// The plugin as users run it: without the race detector.
	bin := filepath.Join(b.TempDir(), "kubectl-kamal")
	gb := exec.Command("go", "build", "-o", bin, "./cmd/kubectl-kamal")
	gb.Dir = images.RepoRoot()
	if out, err := gb.CombinedOutput(); err != nil {
		b.Fatalf("building kubectl-kamal: %v\n%s", err, out)
	}
	app, err := images.BuildSampleApp(ctx, "bench", false)
	if err != nil {
		b.Fatal(err)
	}
	appData, err := os.ReadFile(app)
	if err != nil {
		b.Fatal(err)
	}
	// The same context here and on the host (whose /root is a folder of this machine).
	local := b.TempDir()
	onHost := "/root/bench-build-" + ns
	remote := filepath.Join(h.StateDir(), "root", strings.TrimPrefix(onHost, "/root/"))
	files := map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY sampleapp /sampleapp\nCOPY data/ /data/\nCOPY changing.txt /changing.txt\nENTRYPOINT [\"/sampleapp\"]\n"),
		"sampleapp":  appData,
	}
	for i := 0; i < 200; i++ {
		files[fmt.Sprintf("data/%03d.txt", i)] = bytes.Repeat([]byte(fmt.Sprintf("file %d\n", i)), 512)
	}
	write := func(name string, data []byte) {
		for _, root := range []string{local, remote} {
			p := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o755); err != nil {
				b.Fatal(err)
			}
		}
	}
	for name, data := range files {
		write(name, data)
	}
	b.Cleanup(func() { _ = os.RemoveAll(remote) })

	repo := env.RegistryAddress() + "/benchbuild-" + ns
	viaPlugin := func(tag string) (time.Duration, string) {
		cmd := exec.Command(bin, "--kubeconfig", cp.Kubeconfig, "-n", ns, "build", "--builder", srv.Name, "--image", repo, "--tag", tag, local)
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(t0)
		if err != nil {
			b.Fatalf("kubectl kamal build: %v\n%s", err, out)
		}
		return d, string(out)
	}
	direct := func(tag string) (build, total time.Duration, out string) {
		t0 := time.Now()
		o, err := h.Exec(ctx, "env", "DOCKER_BUILDKIT=0", "docker", "build", "-t", repo+":"+tag, onHost)
		build = time.Since(t0)
		if err != nil {
			b.Fatalf("docker build: %v\n%s", err, o)
		}
		if p, err := h.Exec(ctx, "docker", "push", repo+":"+tag); err != nil {
			b.Fatalf("docker push: %v\n%s", err, p)
		}
		return build, time.Since(t0), string(o)
	}
	// First builds fill the cache and the registry.
	write("changing.txt", []byte("first\n"))
	viaPlugin("first")
	direct("first-direct")

	median := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	n := 0
	for b.Loop() {
		var plugin, dBuild, dTotal []time.Duration
		for i := 0; i < 3; i++ {
			n++
			write("changing.txt", []byte(fmt.Sprintf("plugin %d\n", n)))
			d, out := viaPlugin(fmt.Sprintf("p%d", n))
			if strings.Count(out, "Using cache") < 2 {
				b.Fatalf("the plugin's rebuild did not reuse the cached layers:\n%s", out)
			}
			plugin = append(plugin, d)
			write("changing.txt", []byte(fmt.Sprintf("direct %d\n", n)))
			bd, td, out := direct(fmt.Sprintf("d%d", n))
			if strings.Count(out, "Using cache") < 2 {
				b.Fatalf("docker build did not reuse the cached layers:\n%s", out)
			}
			dBuild, dTotal = append(dBuild, bd), append(dTotal, td)
		}
		p, db, dt := median(plugin), median(dBuild), median(dTotal)
		b.Logf("rebuild + push: kubectl kamal build %v (each %v); on the host: docker build %v + push = %v (each %v)", p, plugin, db, dt, dTotal)
		b.ReportMetric(p.Seconds(), "plugin-build-push-s")
		b.ReportMetric(db.Seconds(), "docker-build-s")
		b.ReportMetric(dt.Seconds(), "docker-build-push-s")
		b.ReportMetric(p.Seconds()/dt.Seconds(), "plugin/docker-ratio")
	}
}
