package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/internal/release"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/hosts"
	"github.com/kamal-operator/kamal-operator/test/images"
)

// legacyProxyConfig is the Caddy config a proxy of the release before the route table ran
// with (its InitialConfig) plus one app route as that release wrote it: hosts matched by Caddy,
// the upstream looked up by kamal_route in the {id: upstream} table.
func legacyProxyConfig(routeID, host string) []byte {
	return []byte(`{"admin":{"listen":"unix/` + proxy.AdminSocket + `","config":{"persist":true}},"apps":{"http":{"servers":{"kamal":{"listen":[":80"],"routes":[` +
		`{"@id":"` + routeID + `","match":[{"host":["` + host + `"]}],"handle":[{"handler":"kamal_route","route":"` + routeID + `"},` +
		`{"handler":"reverse_proxy","upstreams":[{"dial":"{http.vars.kamal_upstream}"}],"transport":{"protocol":"http","response_header_timeout":"30s"},"trusted_proxies":["0.0.0.0/0","::/0"]}],"terminal":true},` +
		`{"@id":"kamal-fallback","handle":[{"handler":"static_response","status_code":404,"body":"no app is routed for this host\n"}]}]}}}}}`)
}

func tarOf(files map[string][]byte) *bytes.Buffer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, b := range files {
		if i := strings.LastIndex(name, "/"); i > 0 {
			_ = tw.WriteHeader(&tar.Header{Name: name[:i] + "/", Typeflag: tar.TypeDir, Mode: 0o755})
		}
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b))})
		_, _ = tw.Write(b)
	}
	_ = tw.Close()
	return &buf
}

// runLegacyProxy puts a proxy of the release before the route table on h, as that release ran
// it (`caddy run --resume`, the config above, the upstream in its table), in place of the one
// there and its volumes.
func runLegacyProxy(t *testing.T, h *hosts.Host, routeID, host, upstream string) string {
	t.Helper()
	ctx := context.Background()
	image := env.Image(images.ProxyRepo + ":" + images.LegacyProxyTag)
	hostExec(t, h, "docker", "pull", "-q", image)
	hostExec(t, h, "docker", "rm", "-f", proxy.ContainerName)
	hostExec(t, h, "docker", "volume", "rm", "kamal-proxy-config", "kamal-proxy-data")
	cli, err := client.New(client.WithHost(h.DockerHost()), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	opts, err := proxy.SettingsFor(kamalv1.ServerProxy{}, image).CreateOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts.Config.Cmd = []string{"run", "--resume", "--config", "/etc/kamal-proxy/caddy.json"}
	opts.Config.Labels[kamalv1.LabelSpecHash] = "legacy"
	created, err := cli.ContainerCreate(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for dest, files := range map[string]map[string][]byte{
		"/":     {"etc/kamal-proxy/caddy.json": legacyProxyConfig(routeID, host)},
		"/data": {"caddy/kamal-routes.json": []byte(fmt.Sprintf(`{%q:%q}`, routeID, upstream))},
	} {
		if _, err := cli.CopyToContainer(ctx, created.ID, client.CopyToContainerOptions{DestinationPath: dest, Content: tarOf(files)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	return created.ID
}

// connected is the controller's connection to a Server's host.
func connected(t *testing.T, server string) *fleet.Host {
	t.Helper()
	h := mgr.Fleet.Cached(server)
	if h == nil {
		t.Fatalf("no connection for %s", server)
	}
	return h
}

// A host whose proxy predates the route table gets today's proxy in the proxy rollout: the new
// proxy imports the older one's routes from its volumes and serves them from its first request,
// and the Deployment then takes its route over under its new id, in one change.
func TestOlderProxyIsReplacedKeepingItsRoutes(t *testing.T) {
	h := env.Host(hostMain)
	ns := newNamespace(t)
	keySecret(t, ns)
	srv := serverFor(ns, "web-1", h)
	createServer(t, srv)
	waitReady(t, srv)
	d := appDeployment(ns, "legacyapp", "v1")
	createDeployment(t, d)
	waitDeployed(t, d)
	servesV1 := answers(h, "legacyapp.test", "/version", 200, "v1")
	framework.Eventually(t, reactWithin, servesV1)
	ctx := context.Background()
	id, legacyID := release.RouteID(ns, d.Name, "web"), release.LegacyRouteID(ns, d.Name, "web")
	route, err := connected(t, ns+"/web-1").Proxy.Route(ctx, id)
	if err != nil {
		t.Fatal(err)
	}

	// The older proxy, with the app's route under its older id, as a host running the previous
	// release has it; the controller is stopped meanwhile (it would replace it at once).
	mgr.Stop()
	stopped := true
	t.Cleanup(func() {
		if stopped { // before the earlier cleanups, which need the controllers
			restartController(t, env.ProxyImage())
		}
	})
	oldID := runLegacyProxy(t, h, legacyID, "legacyapp.test", route.Upstream)
	// The app runs on its namespace's network (made by today's controller); the older proxy
	// reaches it there, as the network migration would have attached it.
	hostExec(t, h, "docker", "network", "connect", docker.NamespaceNetwork(ns), proxy.ContainerName)
	framework.Eventually(t, reactWithin, servesV1)

	t0 := time.Now()
	restartController(t, env.ProxyImage())
	stopped = false
	waitEvent(t, ns, srv.Name, "ProxyUpgraded")
	waitReady(t, srv)
	if err := servesV1(); err != nil {
		t.Fatalf("right after the replacement: %v", err)
	}
	t.Logf("the older proxy was replaced %s after the controller started: %s", time.Since(t0).Round(time.Millisecond),
		framework.EventNote(k8s, ns, srv.Name, "ProxyUpgraded"))
	if got := containerID(t, h, proxy.ContainerName); got == oldID {
		t.Fatal("the older proxy still runs")
	}
	host := connected(t, ns+"/web-1")
	if err := host.Proxy.Ready(ctx); err != nil {
		t.Fatalf("the new proxy does not run the fixed config: %v", err)
	}

	// The Deployment takes the route over under its own id; the older id is gone with it.
	waitEventD(t, d, "RouteUpdated")
	framework.Eventually(t, reactWithin, func() error {
		tbl, err := host.Proxy.Routes(ctx)
		if err != nil {
			return err
		}
		if _, ok := tbl.Routes[legacyID]; ok || tbl.Routes[id].Upstream != route.Upstream || tbl.Routes[id].Owner != ns+"/"+d.Name {
			return fmt.Errorf("routes %+v: want %s to %s only", tbl.Routes, id, route.Upstream)
		}
		return nil
	})
	framework.Eventually(t, reactWithin, servesV1)

	// A deploy through the taken-over route switches as ever.
	update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = env.Image("sampleapp:v2") })
	waitDeployed(t, d)
	framework.Eventually(t, reactWithin, answers(h, "legacyapp.test", "/version", 200, "v2"))
}
