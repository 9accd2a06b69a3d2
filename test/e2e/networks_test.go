package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/internal/remote"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/hosts"
)

// tenants is how the namespaces of a test reach one host: the Servers for it, and the server
// selection their Deployments and Accessories use.
type tenants struct {
	servers  []*kamalv1.Server
	selector kamalv1.ServerSelector
}

// tenantServers puts host h at the disposal of namespaces: one Server web-1 for it in a platform
// namespace that admits them, which their selection names.
func tenantServers(t *testing.T, h *hosts.Host, namespaces ...string) tenants {
	t.Helper()
	platform := newNamespace(t)
	keySecret(t, platform)
	s := serverFor(platform, "web-1", h)
	sel := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: namespaces}}}
	s.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromSelector, Selector: sel}
	createServer(t, s)
	waitReady(t, s)
	return tenants{servers: []*kamalv1.Server{s}, selector: kamalv1.ServerSelector{Namespace: platform, Names: []string{"web-1"}}}
}

// echoAccessory is a small "accessory": the sample app answering /version with version, reached
// by containerName (the object's name when "").
func echoAccessory(ns, name, containerName, version string, on kamalv1.ServerSelector) *kamalv1.Accessory {
	return &kamalv1.Accessory{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: kamalv1.AccessorySpec{
			Image:         env.Image("sampleapp:v1"),
			Servers:       on,
			ContainerName: containerName,
			Env:           []kamalv1.EnvVar{{Name: "APP_VERSION", Value: version}},
		},
	}
}

// fetchFrom GETs url from inside container c on h, as the app in it would.
func fetchFrom(h *hosts.Host, c, url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.Exec(ctx, "docker", "exec", c, "/sampleapp", "get", url)
	return strings.TrimSpace(string(out)), err
}

// networksOf lists the networks container c on h is attached to.
func networksOf(t *testing.T, h *hosts.Host, c string) []string {
	t.Helper()
	return strings.Fields(hostExec(t, h, "docker", "inspect", "-f", `{{range $n, $e := .NetworkSettings.Networks}}{{$n}} {{end}}`, c))
}

func hasNetwork(t *testing.T, h *hosts.Host, name string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := h.Exec(ctx, "docker", "network", "inspect", name)
	return err == nil
}

// replaceProxy replaces the main host's proxy directly (the controller is stopped), as a
// proxy upgrade does: a new container takes over from the old one.
func replaceProxy(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := remote.Dial(ctx, benchTarget(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cli, err := docker.NewClient(docker.NewDialer(conn, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	admin := proxy.NewAdmin(func(ctx context.Context) (net.Conn, error) { return conn.DialUnix(ctx, proxy.AdminSocket) })
	res, err := proxy.Replace(ctx, cli, admin, proxy.SettingsFor(kamalv1.ServerProxy{}, env.ProxyImage()), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.NewID == res.OldID {
		t.Fatalf("not replaced: %+v", res)
	}
	t.Logf("proxy replaced; ports closed for %s (%s)", res.Outage, res.Steps)
}

// whileControllerDown stops the in-process controllers, runs change on the hosts meanwhile, and
// starts new ones (restartController): a controller upgrade as the hosts see it.
func whileControllerDown(t *testing.T, change func()) {
	t.Helper()
	mgr.Stop()
	defer restartController(t, env.ProxyImage())
	change()
}

// Two namespaces on one host: each has its own network, so B's app cannot resolve or reach A's
// accessory while A's app can; an accessory whose containerName another namespace holds gets a
// name of its own and keeps the name as an alias; containers left on the old shared network
// are moved without being recreated; the proxy is attached to every namespace network across
// its replacement and recreation; and a namespace's network goes with its last container.
func TestNamespaceNetworksIsolateTenants(t *testing.T) {
	h := env.Host(hostMain)
	ctx := context.Background()
	nsA, nsB := newNamespace(t), newNamespace(t)
	netA, netB := docker.NamespaceNetwork(nsA), docker.NamespaceNetwork(nsB)
	ts := tenantServers(t, h, nsA, nsB)

	dbA := echoAccessory(nsA, "db", "", "db-a", ts.selector)
	createAccessory(t, dbA)
	shop := appDeployment(nsA, "shop", "v1")
	blog := appDeployment(nsB, "blog", "v1")
	for _, d := range []*kamalv1.Deployment{shop, blog} {
		d.Spec.Roles = map[string]kamalv1.Role{"web": {Servers: ts.selector}}
		createDeployment(t, d)
	}
	waitAccessory(t, dbA, kamalv1.ConditionReady, metav1.ConditionTrue, kamalv1.ReasonReconciled, readyWithin)
	waitDeployed(t, shop)
	waitDeployed(t, blog)
	framework.Eventually(t, reactWithin, answers(h, "shop.test", "/version", 200, "v1"))
	framework.Eventually(t, reactWithin, answers(h, "blog.test", "/version", 200, "v1"))

	// Each namespace on its own network; the proxy on both (and on the shared one).
	for c, want := range map[string][]string{"shop-web-v1": {netA}, "db": {netA}, "blog-web-v1": {netB}} {
		if got := networksOf(t, h, c); !slices.Equal(got, want) {
			t.Errorf("%s is on %v, want %v", c, got, want)
		}
	}
	if got, want := networksOf(t, h, proxy.ContainerName), []string{docker.LegacyNetwork, netA, netB}; !slices.Equal(got, sorted(want)) {
		t.Errorf("the proxy is on %v, want %v", got, sorted(want))
	}
	for n, ns := range map[string]string{netA: nsA, netB: nsB} {
		labels := hostExec(t, h, "docker", "network", "inspect", "-f", `{{index .Labels "`+kamalv1.LabelManagedBy+`"}}/{{index .Labels "`+kamalv1.LabelNamespace+`"}}`, n)
		if labels != kamalv1.ManagerName+"/"+ns {
			t.Errorf("network %s labelled %q", n, labels)
		}
	}

	// A's app reaches its accessory by name; B's app can neither resolve it nor reach its
	// address, nor A's app.
	if got, err := fetchFrom(h, "shop-web-v1", "http://db/version"); err != nil || got != "db-a" {
		t.Errorf("shop → db: %q, %v; want db-a", got, err)
	}
	if got, err := fetchFrom(h, "blog-web-v1", "http://db/version"); err == nil {
		t.Errorf("blog → db answered %q: B reaches A's accessory by name", got)
	} else {
		t.Logf("blog → db refused: %v", err)
	}
	if got, err := fetchFrom(h, "blog-web-v1", "http://shop-web-v1/version"); err == nil {
		t.Errorf("blog → shop-web-v1 answered %q", got)
	}
	dbIP := hostExec(t, h, "docker", "inspect", "-f", `{{(index .NetworkSettings.Networks "`+netA+`").IPAddress}}`, "db")
	if got, err := fetchFrom(h, "blog-web-v1", "http://"+dbIP+"/version"); err == nil {
		t.Errorf("blog → %s (db's address) answered %q", dbIP, got)
	}

	// B's accessory asks for the name A's holds: it gets its own container, the name as its
	// alias on B's network, and both keep running.
	dbAID := containerID(t, h, "db")
	cache := echoAccessory(nsB, "cache", "db", "db-b", ts.selector)
	createAccessory(t, cache)
	waitAccessory(t, cache, kamalv1.ConditionReady, metav1.ConditionTrue, kamalv1.ReasonReconciled, readyWithin)
	cacheName := cache.Status.Servers[0].Container
	if cacheName == "db" || !strings.HasPrefix(cacheName, "db-") {
		t.Fatalf("B's accessory runs as %q", cacheName)
	}
	if id := containerID(t, h, "db"); id != dbAID {
		t.Errorf("A's db was replaced (%s → %s)", dbAID, id)
	}
	for _, c := range []string{"db", cacheName} {
		if st := hostExec(t, h, "docker", "inspect", "-f", "{{.State.Status}}", c); st != "running" {
			t.Errorf("%s is %s", c, st)
		}
	}
	if aliases := hostExec(t, h, "docker", "inspect", "-f", `{{json (index .NetworkSettings.Networks "`+netB+`").Aliases}}`, cacheName); !strings.Contains(aliases, `"db"`) {
		t.Errorf("%s has aliases %s on %s, want db among them", cacheName, aliases, netB)
	}
	for c, want := range map[string]string{"shop-web-v1": "db-a", "blog-web-v1": "db-b"} {
		if got, err := fetchFrom(h, c, "http://db/version"); err != nil || got != want {
			t.Errorf("%s → db: %q, %v; want %s", c, got, err, want)
		}
	}

	// The state an older controller left: A's app and accessory on the shared network only.
	// While the controller is down, the proxy is replaced (as a proxy upgrade does), and the
	// new one is attached to both namespace networks before it takes over: it serves B's app,
	// which is on B's network only. Then the proxy goes altogether; the controller's new one
	// is attached to both networks too. After the restart A's containers are on A's network
	// only, the same containers, never restarted.
	before := map[string]string{}
	for _, c := range []string{"shop-web-v1", "db"} {
		before[c] = hostExec(t, h, "docker", "inspect", "-f", "{{.Id}} {{.State.StartedAt}}", c)
	}
	checkProxyReachesBoth := func(when string, hostNames ...string) {
		t.Helper()
		if got, want := networksOf(t, h, proxy.ContainerName), sorted([]string{docker.LegacyNetwork, netA, netB}); !slices.Equal(got, want) {
			t.Errorf("%s: the proxy is on %v, want %v", when, got, want)
		}
		for _, hn := range hostNames {
			framework.Eventually(t, reactWithin, answers(h, hn, "/version", 200, "v1"))
		}
	}
	whileControllerDown(t, func() {
		for _, c := range []string{"shop-web-v1", "db"} {
			hostExec(t, h, "docker", "network", "connect", docker.LegacyNetwork, c)
			hostExec(t, h, "docker", "network", "disconnect", netA, c)
		}
		replaceProxy(t)
		checkProxyReachesBoth("replaced proxy", "blog.test", "shop.test")
		hostExec(t, h, "docker", "rm", "-f", proxy.ContainerName)
	})
	framework.Eventually(t, reactWithin, func() error {
		for _, c := range []string{"shop-web-v1", "db"} {
			if got := networksOf(t, h, c); !slices.Equal(got, []string{netA}) {
				return fmt.Errorf("%s is on %v, want [%s]", c, got, netA)
			}
		}
		return nil
	})
	for c, was := range before {
		if now := hostExec(t, h, "docker", "inspect", "-f", "{{.Id}} {{.State.StartedAt}}", c); now != was {
			t.Errorf("%s was recreated or restarted: %s → %s", c, was, now)
		}
	}
	if got, err := fetchFrom(h, "shop-web-v1", "http://db/version"); err != nil || got != "db-a" {
		t.Errorf("after the move, shop → db: %q, %v; want db-a", got, err)
	}
	framework.Eventually(t, reactWithin, func() error {
		for _, s := range ts.servers {
			if framework.FindEvent(k8s, s.Namespace, s.Name, "NetworksMigrated") == nil {
				return nil
			}
		}
		return fmt.Errorf("no NetworksMigrated event")
	})
	checkProxyReachesBoth("proxy made by the controller", "shop.test", "blog.test")

	// Deleting A's objects takes A's network off the host (the proxy detached first); B's
	// stays and serves.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := k8s.Delete(ctx, shop); err != nil {
		t.Fatal(err)
	}
	deleteAccessory(t, dbA)
	framework.Eventually(t, reactWithin, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(shop), &kamalv1.Deployment{}); err == nil {
			return fmt.Errorf("shop still present")
		}
		if hasNetwork(t, h, netA) {
			return fmt.Errorf("network %s still on the host", netA)
		}
		return nil
	})
	if !hasNetwork(t, h, netB) {
		t.Errorf("network %s went with A's objects", netB)
	}
	if got := networksOf(t, h, proxy.ContainerName); slices.Contains(got, netA) {
		t.Errorf("the proxy is still on %v", got)
	}
	framework.Eventually(t, reactWithin, answers(h, "blog.test", "/version", 200, "v1"))
	if err := framework.FindEvent(k8s, nsA, "db", "NetworkRemoved"); err != nil && framework.FindEvent(k8s, nsA, "shop", "NetworkRemoved") != nil {
		t.Errorf("no NetworkRemoved event on A's objects: %v", err)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
