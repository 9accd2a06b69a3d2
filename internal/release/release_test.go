package release

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
)

func TestVersion(t *testing.T) {
	for image, want := range map[string]string{
		"docker.io/shuirong/dokuya:2f3c9a1": "2f3c9a1",
		"localhost:5000/app:v2":             "v2",
		"localhost:5000/app":                "latest",
		"app@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef":             "0123456789ab",
		"reg:5000/app:v1@sha256:" + "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff": "ffffffffffff",
	} {
		if got := Version(image); got != want {
			t.Errorf("Version(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestHashChangesWithEveryInputAndKey(t *testing.T) {
	base := Role{Namespace: "ns", Deployment: "app", Name: "web", Image: "a:v1", Env: []string{"A=1"}}
	h := base.Hash("uid-1")
	if h2 := base.Hash("uid-2"); h2 == h {
		t.Error("hash ignores the key")
	}
	for name, mut := range map[string]func(*Role){
		"env":     func(r *Role) { r.Env = []string{"A=2"} },
		"image":   func(r *Role) { r.Image = "a:v2" },
		"cmd":     func(r *Role) { r.Cmd = []string{"x"} },
		"restart": func(r *Role) { r.Restart = "now" },
	} {
		r := base
		mut(&r)
		if r.Hash("uid-1") == h {
			t.Errorf("hash ignores %s", name)
		}
	}
	if len(h) != 16 {
		t.Errorf("hash %q", h)
	}
	// Proxy settings shape the route, not the container.
	r := base
	r.Proxy = &Proxy{AppPort: 80, Hosts: []string{"a.example.com"}}
	if r.Hash("uid-1") != h {
		t.Error("a proxy setting changes the container's hash")
	}
}

func TestContainerName(t *testing.T) {
	r := Role{Deployment: "dokuya", Name: "web", Image: "x/dokuya:2f3c9a1"}
	if n := r.ContainerName("abcdef0123456789", false); n != "dokuya-web-2f3c9a1" {
		t.Errorf("name %q", n)
	}
	if n := r.ContainerName("abcdef0123456789", true); n != "dokuya-web-2f3c9a1-abcdef01" {
		t.Errorf("name %q", n)
	}
}

func TestEffectiveProxy(t *testing.T) {
	spec := &kamalv1.DeploymentSpec{
		PrimaryRole: "web",
		Roles: map[string]kamalv1.Role{
			"web":  {},
			"jobs": {},
			"api":  {Proxy: &kamalv1.Proxy{Hosts: []string{"api.example.com"}, AppPort: ptr.To[int32](8080)}},
			"off":  {Proxy: &kamalv1.Proxy{Enabled: ptr.To(false)}},
		},
		Proxy: &kamalv1.Proxy{Hosts: []string{"example.com"}, Healthcheck: &kamalv1.ProxyHealthcheck{Path: "/health", Interval: &metav1.Duration{Duration: 2 * time.Second}}},
	}
	web := EffectiveProxy(spec, "web")
	if web == nil || !reflect.DeepEqual(web.Hosts, []string{"example.com"}) || web.AppPort != 80 || web.HealthPath != "/health" ||
		web.HealthInterval != 2*time.Second || web.HealthTimeout != 5*time.Second || web.ResponseTimeout != 30*time.Second {
		t.Errorf("web proxy = %+v", web)
	}
	if p := EffectiveProxy(spec, "jobs"); p != nil {
		t.Errorf("non-primary role without proxy section got %+v", p)
	}
	if p := EffectiveProxy(spec, "off"); p != nil {
		t.Errorf("disabled role got %+v", p)
	}
	api := EffectiveProxy(spec, "api")
	if api == nil || api.Hosts[0] != "api.example.com" || api.AppPort != 8080 || api.HealthPath != "/health" {
		t.Errorf("api proxy = %+v", api)
	}
	spec.Proxy.Enabled = ptr.To(false)
	if p := EffectiveProxy(spec, "web"); p != nil {
		t.Errorf("primary role with proxy disabled got %+v", p)
	}
}

func TestPlanTarget(t *testing.T) {
	const hash = "h2"
	old := Observed{Name: "app-web-v1", Hash: "h1", Running: true, Created: 1}
	fresh := Observed{Name: "app-web-v2", Hash: "h2", Running: true, Created: 5}
	stoppedNew := Observed{Name: "app-web-v2", Hash: "h2", Running: false, Created: 5}
	retained := func(i int64) Observed { return Observed{Name: "r", Hash: "old", Created: i} }

	p := PlanTarget(hash, "app-web-v2", []Observed{old}, true, "app-web-v1", 5)
	if p.Desired != nil || len(p.Old) != 1 || p.Converged {
		t.Errorf("fresh rollout plan = %+v", p)
	}
	p = PlanTarget(hash, "app-web-v2", []Observed{old, fresh}, true, "app-web-v1", 5)
	if p.Desired == nil || p.Desired.Name != "app-web-v2" || len(p.Old) != 1 || p.Converged {
		t.Errorf("started but not switched = %+v", p)
	}
	p = PlanTarget(hash, "app-web-v2", []Observed{fresh}, true, "app-web-v2", 5)
	if !p.Converged {
		t.Errorf("switched and old stopped should converge: %+v", p)
	}
	p = PlanTarget(hash, "app-web-v2", []Observed{fresh}, false, "", 5)
	if !p.Converged {
		t.Errorf("unproxied role converges on running: %+v", p)
	}
	// A retained (stopped) container of the desired hash is reused: rollback without a pull.
	p = PlanTarget(hash, "app-web-v2", []Observed{old, stoppedNew}, true, "app-web-v1", 5)
	if p.Desired == nil || p.Desired.Running || p.Converged {
		t.Errorf("rollback plan = %+v", p)
	}
	// The plain name is taken by a container of the same version with other settings.
	p = PlanTarget(hash, "app-web-v2", []Observed{{Name: "app-web-v2", Hash: "h0", Running: true}}, true, "app-web-v2", 5)
	if !p.NameTaken {
		t.Error("NameTaken not set")
	}
	// Retention keeps the newest stopped ones, prunes oldest first.
	obs := []Observed{fresh}
	for i := int64(1); i <= 4; i++ {
		obs = append(obs, retained(i))
	}
	p = PlanTarget(hash, "app-web-v2", obs, true, "app-web-v2", 2)
	if len(p.Prune) != 2 || p.Prune[0].Created != 1 || p.Prune[1].Created != 2 || !p.Converged {
		t.Errorf("prune = %+v", p.Prune)
	}
	// An unhealthy desired container is not converged.
	sick := fresh
	sick.Health = "unhealthy"
	if p := PlanTarget(hash, "app-web-v2", []Observed{sick}, false, "", 5); p.Converged {
		t.Error("unhealthy container counted as converged")
	}
}

func TestBatchSize(t *testing.T) {
	for _, c := range []struct{ n, count, pct, want int }{
		{3, 1, 0, 1}, {3, 2, 0, 2}, {3, 10, 0, 3}, {4, 0, 50, 2}, {3, 0, 25, 1}, {10, 0, 100, 10}, {0, 1, 0, 1},
	} {
		if got := BatchSize(c.n, c.count, c.pct); got != c.want {
			t.Errorf("BatchSize(%d, %d, %d%%) = %d, want %d", c.n, c.count, c.pct, got, c.want)
		}
	}
}

func TestRouteIsTheRoleInTheProxysTable(t *testing.T) {
	p := &Proxy{Hosts: []string{"a.example.com"}, PathPrefixes: []string{"/api/", "/v2"}, StripPathPrefix: true, AppPort: 3000,
		ResponseTimeout: 45 * time.Second, ForwardHeaders: true, RequestBuffer: 1 << 20, MaxRequestBody: 10 << 20}
	got := p.Route(p.Upstream("app-web-v1"), RouteOwner("ns", "app"))
	want := proxy.Route{Hosts: []string{"a.example.com"}, Paths: []string{"/api/", "/v2"}, Upstream: "app-web-v1:3000", StripPathPrefix: true,
		ForwardHeaders: true, RequestBuffers: 1 << 20, MaxRequestBody: 10 << 20, ResponseTimeout: "45s", Owner: "ns/app"}
	if !got.Equal(want) {
		t.Fatalf("route\n%s\nwant\n%s", mustJSON(got), mustJSON(want))
	}
	// Without paths there is nothing to strip, and no timeout is no field: both read the same
	// as the proxy's copy, so a converged route is not written again.
	p = &Proxy{StripPathPrefix: true, AppPort: 80}
	if r := p.Route("", "ns/app"); r.StripPathPrefix || r.ResponseTimeout != "" || r.Paths != nil {
		t.Fatalf("catch-all route %s", mustJSON(r))
	}
	if !(proxy.Route{Hosts: []string{}}).Equal(proxy.Route{}) {
		t.Fatal("an empty host list differs from none")
	}
}

func TestRouteIDsAreUnambiguous(t *testing.T) {
	// The pairs older ids could not tell apart.
	if RouteID("team-a", "web", "web") == RouteID("team", "a-web", "web") || RouteID("ns", "app", "web-api") == RouteID("ns", "app-web", "api") {
		t.Fatal("two roles share a route id")
	}
	if got := RouteID("team-a", "web", "web"); got != "team-a/web/web" {
		t.Fatalf("RouteID = %q", got)
	}
	if got := LegacyRouteID("team-a", "web", "web"); got != "kamal-team-a-web-web" {
		t.Fatalf("LegacyRouteID = %q", got)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A running container of today's hash whose name the proxy cannot resolve (64 characters, made
// before names were kept to a DNS label) is replaced for a proxied role and kept otherwise.
func TestPlanTargetReplacesAnUnreachableName(t *testing.T) {
	long := "storefront-billings-web-3f9c2b7e1d4a8f6c0b5e9d2a7c4f1e8b6d3a0c5f" // 64 characters
	obs := []Observed{{ID: "1", Name: long, Hash: "h", Running: true}}
	p := PlanTarget("h", "storefront-billings-web-3f9c2b7e1d4a-1234abcd", obs, true, long, 5)
	if p.Desired != nil || p.Converged || len(p.Old) != 1 {
		t.Fatalf("proxied: plan %+v, want the container replaced (old, no desired)", p)
	}
	p = PlanTarget("h", "storefront-billings-web-3f9c2b7e1d4a-1234abcd", obs, false, "", 5)
	if p.Desired == nil || !p.Converged {
		t.Fatalf("not proxied: plan %+v, want the running container kept", p)
	}
}

// A role's container joins its namespace's network, and only that one; the network is not in
// the spec hash, so a container moved from the old shared network keeps its hash.
func TestCreateOptionsJoinTheNamespaceNetwork(t *testing.T) {
	r := &Role{Namespace: "shop", Deployment: "web", UID: "uid", Name: "web", Image: "shop/web:v1"}
	opts, err := r.CreateOptions("web-web-v1", r.Hash("uid"))
	if err != nil {
		t.Fatal(err)
	}
	eps := opts.NetworkingConfig.EndpointsConfig
	if string(opts.HostConfig.NetworkMode) != "kamal-shop" || len(eps) != 1 || eps["kamal-shop"] == nil {
		t.Errorf("network mode %q, endpoints %v", opts.HostConfig.NetworkMode, eps)
	}
	other := *r
	other.Namespace = "blog"
	if other.Network() == r.Network() {
		t.Error("two namespaces share a network")
	}
	// Only the controller's containers of the object are found (and so ever stopped).
	f := Filters("shop", "web", "web")
	for _, want := range []string{kamalv1.LabelManagedBy + "=" + kamalv1.ManagerName, kamalv1.LabelNamespace + "=shop", kamalv1.LabelDeployment + "=web", kamalv1.LabelRole + "=web"} {
		if _, ok := f["label"][want]; !ok {
			t.Errorf("filters %v lack %s", f, want)
		}
	}
}

// With TLS the proxy is the edge: X-Forwarded-* are replaced unless asked, and plain HTTP is
// redirected unless sslRedirect is false, as in Kamal.
func TestEffectiveProxySSL(t *testing.T) {
	spec := &kamalv1.DeploymentSpec{
		PrimaryRole: "web",
		Roles: map[string]kamalv1.Role{
			"web":   {},
			"api":   {Proxy: &kamalv1.Proxy{SSLRedirect: ptr.To(false)}},
			"plain": {Proxy: &kamalv1.Proxy{SSL: ptr.To(false)}},
			"fwd":   {Proxy: &kamalv1.Proxy{ForwardHeaders: ptr.To(true)}},
		},
		Proxy: &kamalv1.Proxy{Hosts: []string{"example.com"}, SSL: ptr.To(true)},
	}
	cases := map[string]struct{ ssl, redirect, forward bool }{
		"web":   {true, true, false},
		"api":   {true, false, false},
		"plain": {false, false, true},
		"fwd":   {true, true, true},
	}
	for role, want := range cases {
		p := EffectiveProxy(spec, role)
		if p.SSL != want.ssl || p.SSLRedirect != want.redirect || p.ForwardHeaders != want.forward {
			t.Errorf("%s: ssl=%v redirect=%v forward=%v, want %+v", role, p.SSL, p.SSLRedirect, p.ForwardHeaders, want)
		}
		if r := p.Route("up:80", "ns/app"); r.RedirectHTTPS != want.redirect || r.ForwardHeaders != want.forward {
			t.Errorf("%s: route %+v", role, r)
		}
	}
}
