package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/hosts"
)

// The shared hosts: two test hosts, their Servers in a platform namespace that lets every
// namespace place on them.
var sharedHosts = []int{hostMain, hostOther}

// platform makes a namespace with the key Secret and Servers web-1 and web-2 for the shared
// hosts, open to all namespaces (catch-all routes too), Ready.
func platform(t testing.TB) string {
	t.Helper()
	ns := newNamespace(t)
	keySecret(t, ns)
	var servers []*kamalv1.Server
	for i, h := range sharedHosts {
		s := serverFor(ns, fmt.Sprintf("web-%d", i+1), env.Host(h))
		s.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromAll}
		s.Spec.Proxy.CatchAllFrom = "All"
		createServer(t, s)
		servers = append(servers, s)
	}
	for _, s := range servers {
		waitReady(t, s)
	}
	return ns
}

// namedNamespace creates namespace name (tests that need names in a given relation to each
// other).
func namedNamespace(t testing.TB, name string) string {
	t.Helper()
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// guestApp is app name of namespace ns on the platform's shared hosts, answering version on
// /version, routed for hostName.
func guestApp(ns, platformNS, name, version, hostName string) *kamalv1.Deployment {
	d := appDeployment(ns, name, "v1")
	d.Spec.Roles = map[string]kamalv1.Role{"web": {Servers: kamalv1.ServerSelector{Namespace: platformNS, Names: []string{"web-1", "web-2"}}}}
	d.Spec.Env = []kamalv1.EnvVar{{Name: "APP_VERSION", Value: version}}
	d.Spec.Proxy.Hosts = []string{hostName}
	return d
}

// sharedServe checks that every shared host's proxy answers version for hostName.
func sharedServe(hostName, version string) func() error {
	return func() error {
		for _, i := range sharedHosts {
			if err := answers(env.Host(i), hostName, "/version", http.StatusOK, version)(); err != nil {
				return err
			}
		}
		return nil
	}
}

// proxyConfig is the running Caddy config of h's proxy, as its admin API returns it.
func proxyConfig(t testing.TB, h *hosts.Host) string {
	return hostExec(t, h, "curl", "-sf", "--unix-socket", "/run/kamal-proxy/admin.sock", "http://kamal-proxy/config/")
}

// routeTable is the routes of h's proxy's table, without the table's version (which counts the
// changes that host saw).
func routeTable(t testing.TB, h *hosts.Host) string {
	out := hostExec(t, h, "curl", "-sf", "--unix-socket", "/run/kamal-proxy/admin.sock", "http://kamal-proxy/kamal/routes")
	var tbl struct {
		Routes json.RawMessage `json:"routes"`
	}
	if err := json.Unmarshal([]byte(out), &tbl); err != nil {
		t.Fatalf("route table of %s: %v: %s", h.Name(), err, out)
	}
	return string(tbl.Routes)
}

func deleteAndWait(t testing.TB, objs ...client.Object) {
	t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		if err := k8s.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	framework.Eventually(t, readyWithin, func() error {
		for _, o := range objs {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(o), o.DeepCopyObject().(client.Object)); err == nil {
				return fmt.Errorf("%s/%s still present", o.GetNamespace(), o.GetName())
			}
		}
		return nil
	})
}

// Ten apps of two namespaces come to the shared hosts at once and go again (one namespace
// deleted as a whole) while another app is under load: none of its requests fails, and the
// proxies' Caddy config never changes.
func TestAppsComeAndGoWithoutTouchingOthers(t *testing.T) {
	p := platform(t)
	teamA, teamB := newNamespace(t), newNamespace(t)
	steady := guestApp(teamA, p, "steady", "steady-1", "steady.test")
	createDeployment(t, steady)
	waitDeployed(t, steady)
	framework.Eventually(t, reactWithin, sharedServe("steady.test", "steady-1"))
	before := map[int]string{}
	for _, i := range sharedHosts {
		before[i] = proxyConfig(t, env.Host(i))
	}

	// 8 clients, half of them on a fresh connection per request.
	load := runLoad(loadSpec{hosts: sharedHosts, hostName: "steady.test", want: "steady-1", freshConns: true}, 8, 200000, 4*time.Minute)
	var apps []*kamalv1.Deployment
	for i := 0; i < 10; i++ {
		ns := teamA
		if i%2 == 1 {
			ns = teamB
		}
		name := fmt.Sprintf("app-%d", i)
		apps = append(apps, guestApp(ns, p, name, name, name+".test"))
	}
	ctx := context.Background()
	for _, d := range apps {
		if err := k8s.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range apps {
		waitDeployed(t, d)
		framework.Eventually(t, reactWithin, sharedServe(d.Name+".test", d.Name))
	}
	// Team A's apps are deleted; team B's namespace goes as a whole, at the same time.
	var objs []client.Object
	for _, d := range apps {
		if d.Namespace == teamA {
			objs = append(objs, d)
		}
	}
	for _, o := range objs {
		if err := k8s.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	deleteNamespace(t, teamB)
	deleteAndWait(t, objs...)
	ok, failed, firstErr := load.finish()
	t.Logf("steady.test under load while 10 apps came and went (5 deleted, 5 with their namespace): %d ok, %d failed", ok, failed)
	if failed > 0 || ok == 0 {
		logProxies(t)
		t.Errorf("%d of %d requests failed; first: %s", failed, ok+failed, firstErr)
	}
	for _, i := range sharedHosts {
		h := env.Host(i)
		if after := proxyConfig(t, h); after != before[i] {
			t.Errorf("host %d: the proxy's Caddy config changed:\nbefore %s\nafter  %s", i, before[i], after)
		}
		for _, d := range apps {
			if code, _, _ := httpGet(h, d.Name+".test", "/version"); code != http.StatusNotFound {
				t.Errorf("host %d still routes %s.test (%d)", i, d.Name, code)
			}
		}
		for _, n := range containerNames(t, h) {
			if strings.HasPrefix(n, "app-") {
				t.Errorf("host %d still has container %s", i, n)
			}
		}
	}
}

// Names that collided when host-side names were built by joining object names: each pair
// deploys side by side, answers its own version, and deleting one leaves the other serving.
func TestCollidingNamesDeploySideBySide(t *testing.T) {
	p := platform(t)
	nsBare := newNamespace(t) // a fresh unique name, t-xxxxx
	nsDash := namedNamespace(t, nsBare+"-a")
	other := newNamespace(t)

	type pair struct {
		name string
		a, b *kamalv1.Deployment
	}
	roleApp := func(ns, name, role, version, hostName string) *kamalv1.Deployment {
		d := guestApp(ns, p, name, version, hostName)
		d.Spec.Roles = map[string]kamalv1.Role{role: d.Spec.Roles["web"]}
		d.Spec.PrimaryRole = role
		return d
	}
	pairs := []pair{
		// Route ids kamal-<ns>-<deployment>-<role> were equal.
		{"namespace and name", guestApp(nsDash, p, "web", "dash-web", "dash.test"), guestApp(nsBare, p, "a-web", "bare-a-web", "bare.test")},
		// Container names <deployment>-<role>-<version> and route ids were equal.
		{"name and role", roleApp(nsBare, "app", "web-api", "app-web-api", "app1.test"), roleApp(nsBare, "app-web", "api", "app-web-api-2", "app2.test")},
		// The same Deployment name and tag in two namespaces.
		{"two namespaces", guestApp(other, p, "shop", "other-shop", "shop-other.test"), guestApp(nsDash, p, "shop", "dash-shop", "shop-dash.test")},
	}
	for _, pr := range pairs {
		createDeployment(t, pr.a)
		createDeployment(t, pr.b)
	}
	for _, pr := range pairs {
		waitDeployed(t, pr.a)
		waitDeployed(t, pr.b)
		framework.Eventually(t, reactWithin, sharedServe(pr.a.Spec.Proxy.Hosts[0], pr.a.Spec.Env[0].Value))
		framework.Eventually(t, reactWithin, sharedServe(pr.b.Spec.Proxy.Hosts[0], pr.b.Spec.Env[0].Value))
	}
	for _, pr := range pairs {
		deleteAndWait(t, pr.a)
		if err := sharedServe(pr.b.Spec.Proxy.Hosts[0], pr.b.Spec.Env[0].Value)(); err != nil {
			t.Errorf("%s: deleting one of the pair broke the other: %v", pr.name, err)
		}
		for _, i := range sharedHosts {
			if err := answers(env.Host(i), pr.a.Spec.Proxy.Hosts[0], "/version", http.StatusNotFound, "")(); err != nil {
				t.Errorf("%s: %v", pr.name, err)
			}
		}
	}
}

// A host name claimed by a second Deployment stays with the first on every host; a route
// without hosts cannot take a host another app names; every host holds the same routes.
func TestHostConflictKeepsTheFirstClaimant(t *testing.T) {
	p := platform(t)
	teamA, teamB := newNamespace(t), newNamespace(t)
	first := guestApp(teamA, p, "owner", "owner-1", "claimed.test")
	createDeployment(t, first)
	waitDeployed(t, first)
	framework.Eventually(t, reactWithin, sharedServe("claimed.test", "owner-1"))

	second := guestApp(teamB, p, "thief", "thief-1", "claimed.test")
	second.Spec.Proxy.Hosts = []string{"claimed.test", "thief.test"}
	createDeployment(t, second)
	c := waitDeployment(t, second, kamalv1.ConditionStalled, metav1.ConditionTrue, kamalv1.ReasonHostConflict, readyWithin)
	if !strings.Contains(c.Message, "claimed.test is routed by Deployment "+teamA+"/owner") {
		t.Errorf("HostConflict message %q does not name the claim and its owner", c.Message)
	}
	// Catch-all: no hosts, every path.
	catchAll := guestApp(teamB, p, "anything", "catch-all", "")
	catchAll.Spec.Proxy.Hosts = nil
	catchAll.Spec.Proxy.PathPrefixes = []string{"/"}
	createDeployment(t, catchAll)
	waitDeployed(t, catchAll)
	framework.Eventually(t, reactWithin, sharedServe("unclaimed.test", "catch-all"))
	if err := sharedServe("claimed.test", "owner-1")(); err != nil {
		t.Errorf("the first claimant lost its host: %v", err)
	}
	for _, i := range sharedHosts {
		if err := answers(env.Host(i), "thief.test", "/version", http.StatusOK, "catch-all")(); err != nil {
			t.Errorf("a held Deployment is routed: %v", err)
		}
	}
	tables := map[string][]int{}
	for _, i := range sharedHosts {
		tbl := routeTable(t, env.Host(i))
		tables[tbl] = append(tables[tbl], i)
	}
	if len(tables) != 1 {
		t.Errorf("the hosts hold different routes: %v", tables)
	}

	// The owner lets go: the second claimant routes on every host.
	deleteAndWait(t, first)
	waitDeployed(t, second)
	framework.Eventually(t, reactWithin, sharedServe("claimed.test", "thief-1"))

	// The platform deletes one of its Servers while guests run there: it goes only once they
	// have left its host, and they keep serving on the other.
	h2 := env.Host(hostOther)
	deleteServer(t, &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: p, Name: "web-2"}})
	for _, ns := range []string{teamA, teamB} {
		if got := containersOf(t, h2, ns); len(got) != 0 {
			t.Errorf("guests of namespace %s left on the deleted Server's host: %v", ns, got)
		}
	}
	if err := answers(env.Host(hostMain), "claimed.test", "/version", http.StatusOK, "thief-1")(); err != nil {
		t.Error(err)
	}
}
