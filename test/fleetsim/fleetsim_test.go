package fleetsim

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/internal/remote"
)

// startFleet runs n hosts on free ports and returns them with a client key they accept.
func startFleet(t *testing.T, n int, d Delays) (*Fleet, ssh.Signer) {
	t.Helper()
	signer, _, err := ClientKey()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Start(Options{Hosts: n, Base: netip.MustParseAddr("127.1.200.1"), AuthorizedKey: signer.PublicKey(), Delays: d})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f, signer
}

func target(h *Host, signer ssh.Signer) *remote.Target {
	return &remote.Target{Address: h.Address.String(), Port: h.Port, User: "root", Signer: signer, HostKeys: []ssh.PublicKey{h.PublicKey()}}
}

// The controller's own clients (internal/fleet, docker, proxy) against one simulated host:
// the proxy comes up, a route is written, app containers pass their health checks after the
// health delay, events stream, and an unknown call is answered 501 and recorded.
func TestHostAnswersTheControllersClients(t *testing.T) {
	f, signer := startFleet(t, 2, Delays{Health: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fl := fleet.New(logr.Discard())
	defer fl.Close()
	got := make(chan events.Message, 16)
	fl.OnEvent(func(e fleet.Event) { got <- e.Message })

	sim := f.Host(0)
	h, err := fl.Connect(ctx, "ns/s1", target(sim, signer), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fl.Connect(ctx, "ns/s2", &remote.Target{Address: sim.Address.String(), Port: sim.Port, User: "root", Signer: signer,
		HostKeys: []ssh.PublicKey{f.Host(1).PublicKey()}}, ""); !remote.IsHostKeyMismatch(err) {
		t.Errorf("a wrong pinned key: %v, want a host key mismatch", err)
	}
	facts, err := docker.Facts(ctx, h.Docker)
	if err != nil {
		t.Fatal(err)
	}
	if facts.APIVersion != "1.41" || facts.DockerVersion != engineVersion {
		t.Errorf("facts %+v", facts)
	}
	if err := h.Proxy.Ready(ctx); err == nil {
		t.Error("the admin socket answers before the proxy runs")
	}
	if _, err := proxy.Ensure(ctx, h.Docker, proxy.SettingsFor(proxyServer(), "kamal-proxy:test")); err != nil {
		t.Fatal(err)
	}
	if err := h.Proxy.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Proxy.PutRoute(ctx, "ns/app/web", proxy.Route{Hosts: []string{"a.test"}, Upstream: "app:80"}, 0, nil); err != nil {
		t.Fatal(err)
	}
	var ce *proxy.ConflictError
	if _, err := h.Proxy.PutRoute(ctx, "r2", proxy.Route{Hosts: []string{"a.test"}, Upstream: "other:80"}, 0, nil); !errors.As(err, &ce) || ce.Conflicts[0].ID != "ns/app/web" {
		t.Errorf("a conflicting route: %v", err)
	}
	if v, err := h.Proxy.SetUpstream(ctx, "ns/app/web", "app2:80"); err != nil || v < 2 {
		t.Errorf("set upstream: %d %v", v, err)
	}
	if sim.Routes()["ns/app/web"] != "app2:80" {
		t.Errorf("routes %v", sim.Routes())
	}

	// An app container on a network the proxy is on: healthy after the delay, by address and
	// through the proxy's probe.
	if err := docker.EnsureNetwork(ctx, h.Docker, "kamal-ns"); err != nil {
		t.Fatal(err)
	}
	if _, err := proxy.Attach(ctx, h.Docker, "kamal-ns"); err != nil {
		t.Fatal(err)
	}
	if _, err := docker.EnsureImage(ctx, h.Docker, "registry.test/app:v1", ""); err != nil {
		t.Fatal(err)
	}
	opts := client.ContainerCreateOptions{Name: "app-web-1", Config: &containerConfig, HostConfig: &hostConfig}
	res, err := h.Docker.ContainerCreate(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Docker.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	in, err := h.Docker.ContainerInspect(ctx, res.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := docker.AddressOn(in.Container.NetworkSettings, "kamal-ns")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, a string) (netConn, error) { return h.Conn.DialTCP(ctx, a) }}}
	if _, err := hc.Get("http://" + addr.String() + ":80/up"); err == nil {
		t.Error("the app answers before its health delay")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, perr := h.Proxy.Probe(ctx, "app-web-1:80", "/up", time.Second)
		resp, err := hc.Get("http://" + addr.String() + ":80/up")
		if err == nil && resp.StatusCode == 200 && perr == nil && code == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy: %v / %d %v", err, code, perr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Kill: the events stream says so.
	sim.KillContainer("app-web-1")
	timeout := time.After(5 * time.Second)
	for seen := false; !seen; {
		select {
		case m := <-got:
			seen = m.Action == events.ActionDie && m.Actor.Attributes["name"] == "app-web-1"
		case <-timeout:
			t.Fatal("no die event")
		}
	}

	if len(f.Unknown()) != 0 {
		t.Fatalf("unknown calls: %v", f.Unknown())
	}
	if _, err := h.Docker.ContainerTop(ctx, res.ID, client.ContainerTopOptions{}); err == nil || !strings.Contains(err.Error(), "fleetsim does not simulate") {
		t.Errorf("an unknown call: %v", err)
	}
	if u := f.Unknown(); len(u) != 1 || !strings.Contains(u[0], "/containers/"+res.ID+"/top") {
		t.Errorf("unknown = %v", u)
	}
	calls := sim.Calls()
	for _, want := range []string{"POST /containers/{id}/start", "GET /images/{name}/json", "proxy PUT /kamal/routes/{id}/upstream", "GET /events"} {
		if calls[want] == 0 {
			t.Errorf("no call %q recorded: %v", want, calls)
		}
	}
}

// Refusing hosts refuse; the fault switched off, they answer again. Only the connection that
// was established counts, and it counts as open until it is closed.
func TestRefuseFault(t *testing.T) {
	f, signer := startFleet(t, 1, Delays{})
	sim := f.Host(0)
	sim.SetFaults(Faults{Refuse: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := remote.Dial(ctx, target(sim, signer)); err == nil {
		c.Close()
		t.Fatal("dialled a refusing host")
	}
	sim.SetFaults(Faults{})
	c, err := remote.Dial(ctx, target(sim, signer))
	if err != nil {
		t.Fatal(err)
	}
	if open, accepted := f.Conns(); open != 1 || accepted != 1 {
		t.Errorf("Conns() = %d open, %d established; want 1, 1", open, accepted)
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for open, _ := f.Conns(); open != 0; open, _ = f.Conns() {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open after the client closed its own", open)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type netConn = net.Conn

func proxyServer() kamalv1.ServerProxy { return kamalv1.ServerProxy{} }

var (
	containerConfig = container.Config{Image: "registry.test/app:v1", Labels: map[string]string{kamalv1.LabelManagedBy: kamalv1.ManagerName}}
	hostConfig      = container.HostConfig{NetworkMode: "kamal-ns"}
)

func TestEngineTemplate(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/v1.41/containers/abc/json", "GET /containers/{id}/json"},
		{"HEAD", "/_ping", "HEAD /_ping"},
		{"GET", "/v1.41/images/10.231.0.1:5000/sampleapp:v1/json", "GET /images/{name}/json"},
		{"POST", "/v1.41/containers/abc/top", ""},
	} {
		if got := EngineTemplate(c.method, c.path); got != c.want {
			t.Errorf("EngineTemplate(%s %s) = %q, want %q", c.method, c.path, got, c.want)
		}
	}
}

func TestByCountOrdersMostFirstThenByName(t *testing.T) {
	got := ByCount(map[string]int{"GET /info": 1, "GET /version": 3, "GET /containers/json": 3})
	want := []CallCount{{"GET /containers/json", 3}, {"GET /version", 3}, {"GET /info", 1}}
	if !slices.Equal(got, want) {
		t.Errorf("ByCount = %v, want %v", got, want)
	}
}
