package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// exchange is one admin API request and the proxy module's answer, as the module's tests
// recorded them from a running proxy (images/kamal-proxy/testdata/admin-answers.json).
type exchange struct {
	Method  string          `json:"method"`
	Path    string          `json:"path"`
	IfMatch string          `json:"ifMatch,omitempty"`
	Body    json.RawMessage `json:"body,omitempty"`
	Status  int             `json:"status"`
	Version string          `json:"version,omitempty"`
	Answer  json.RawMessage `json:"answer,omitempty"`
}

// replay is an admin API that expects the recorded requests in order and answers each as the
// module did; anything else fails the test.
type replay struct {
	t    *testing.T
	mu   sync.Mutex
	next int
	exs  []exchange
}

func (r *replay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next >= len(r.exs) {
		r.t.Errorf("unexpected request %s %s", req.Method, req.URL.Path)
		w.WriteHeader(http.StatusTeapot)
		return
	}
	ex := r.exs[r.next]
	r.next++
	body, _ := io.ReadAll(req.Body)
	if req.Method != ex.Method || req.URL.Path != ex.Path || req.Header.Get("If-Match") != ex.IfMatch || !sameJSON(body, ex.Body) {
		r.t.Errorf("request %d: %s %s If-Match %q %s; recorded %s %s If-Match %q %s", r.next, req.Method, req.URL.Path,
			req.Header.Get("If-Match"), body, ex.Method, ex.Path, ex.IfMatch, ex.Body)
	}
	if ex.Version != "" {
		w.Header().Set(versionHeader, ex.Version)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ex.Status)
	_, _ = w.Write(ex.Answer)
}

func sameJSON(a, b []byte) bool {
	if len(bytes.TrimSpace(a)) == 0 || len(b) == 0 {
		return len(bytes.TrimSpace(a)) == len(b)
	}
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// adminOver serves h on a unix socket and returns a client dialling it, as the controller
// dials the proxy's admin socket.
func adminOver(t *testing.T, h http.Handler) *Admin {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return NewAdmin(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	})
}

func TestClientReadsWhatTheModuleAnswers(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "images", "kamal-proxy", "testdata", "admin-answers.json"))
	if err != nil {
		t.Fatal(err)
	}
	rp := &replay{t: t}
	if err := json.Unmarshal(raw, &rp.exs); err != nil {
		t.Fatal(err)
	}
	a := adminOver(t, rp)
	ctx := context.Background()
	check := func(what string, got, want int64, err error) {
		t.Helper()
		if err != nil || got != want {
			t.Fatalf("%s: version %d, %v; want version %d", what, got, err, want)
		}
	}

	if err := a.Ready(ctx); err != nil {
		t.Fatalf("Ready on the fixed config: %v", err)
	}
	web := Route{Hosts: []string{"app.test"}, Paths: []string{"/api"}, Upstream: "app-web-1:80", ForwardHeaders: true, ResponseTimeout: "30s", Owner: "ns/a"}
	v, err := a.PutRoute(ctx, "ns/a/web", web, 0, nil)
	check("PutRoute", v, 2, err)
	v, err = a.PutRoute(ctx, "ns/a/web", web, 0, nil)
	check("an identical PutRoute", v, 2, err)

	_, err = a.PutRoute(ctx, "ns/b/web", Route{Hosts: []string{"app.test"}, Paths: []string{"/api/"}, Owner: "ns/b"}, 0, nil)
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.ID != "ns/b/web" ||
		!reflect.DeepEqual(ce.Conflicts, []RouteConflict{{ID: "ns/a/web", Owner: "ns/a", Hosts: []string{"app.test"}, Paths: []string{"/api"}}}) {
		t.Fatalf("a conflicting PutRoute: %v (%+v)", err, ce)
	}
	if want := "route ns/b/web conflicts with route ns/a/web (ns/a) on app.test /api"; ce.Error() != want {
		t.Errorf("conflict message %q, want %q", ce.Error(), want)
	}
	if _, err := a.PutRoute(ctx, "ns/b/web", Route{Hosts: []string{"b.test"}}, 1, nil); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("a PutRoute with a stale version: %v", err)
	}
	if r, err := a.Route(ctx, "ns/a/web"); err != nil || !r.Equal(web) {
		t.Fatalf("Route: %+v %v", r, err)
	}
	if _, err := a.Route(ctx, "ns/x/web"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Route of a missing id: %v", err)
	}
	v, err = a.SetUpstream(ctx, "ns/a/web", "app-web-2:80")
	check("SetUpstream", v, 3, err)
	if _, err := a.SetUpstream(ctx, "ns/x/web", "x:80"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetUpstream of a missing route: %v", err)
	}
	v, err = a.PutRoute(ctx, "kamal-ns-c-web", Route{Hosts: []string{"c.test"}}, 0, nil)
	check("PutRoute of a legacy id", v, 4, err)
	v, err = a.PutRoute(ctx, "ns/c/web", Route{Hosts: []string{"c.test"}, Owner: "ns/c"}, 0, []string{"kamal-ns-c-web"})
	check("PutRoute replacing it", v, 5, err)
	v, err = a.DeleteRoute(ctx, "ns/a/web", 5)
	check("DeleteRoute", v, 6, err)
	v, err = a.DeleteRoute(ctx, "ns/a/web", 0)
	check("DeleteRoute of a missing route", v, 6, err)
	tbl, err := a.Routes(ctx)
	if err != nil || tbl.Version != 6 || len(tbl.Routes) != 1 || tbl.Routes["ns/c/web"].Owner != "ns/c" {
		t.Fatalf("Routes: %+v %v", tbl, err)
	}
	if n, err := a.InFlight(ctx); err != nil || len(n) != 0 {
		t.Fatalf("InFlight: %v %v", n, err)
	}
	d := Route{Hosts: []string{"d.test"}, Upstream: "app-d-1:80", RedirectHTTPS: true, Owner: "ns/d"}
	v, err = a.PutRoute(ctx, "ns/d/web", d, 0, nil)
	check("PutRoute with redirectHTTPS", v, 7, err)
	if r, err := a.Route(ctx, "ns/d/web"); err != nil || !r.Equal(d) {
		t.Fatalf("Route with redirectHTTPS: %+v %v", r, err)
	}

	// The module's tests made the certificates; the bodies recorded hold their PEM.
	pems := map[string]struct{ Chain, Key string }{}
	for _, ex := range rp.exs {
		if ex.Method == http.MethodPut && strings.HasPrefix(ex.Path, "/kamal/certificates/") {
			var b struct{ Chain, Key string }
			_ = json.Unmarshal(ex.Body, &b)
			pems[strings.TrimPrefix(ex.Path, "/kamal/certificates/")] = b
		}
	}
	if certs, err := a.Certificates(ctx); err != nil || len(certs) != 0 {
		t.Fatalf("Certificates of an empty table: %v %v", certs, err)
	}
	good, bad := pems["ns/a"], pems["ns/b"]
	want := Certificate{Names: []string{"app.test", "www.app.test"}, Serial: "1", NotBefore: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), SHA256: "903c4b9c3d64540ef8ce2052506765d06f72f107f3227ea29884dfca39f39186"}
	if c, err := a.PutCertificate(ctx, "ns/a", []byte(good.Chain), []byte(good.Key)); err != nil || !reflect.DeepEqual(c, want) {
		t.Fatalf("PutCertificate: %+v %v", c, err)
	}
	_, err = a.PutCertificate(ctx, "ns/b", []byte(bad.Chain), []byte(bad.Key))
	keyBody := strings.Split(bad.Key, "\n")[1]
	if err == nil || !strings.Contains(err.Error(), "does not go with the leaf") || strings.Contains(err.Error(), keyBody) {
		t.Fatalf("PutCertificate with another key: %v", err)
	}
	if certs, err := a.Certificates(ctx); err != nil || len(certs) != 1 || !reflect.DeepEqual(certs["ns/a"], want) {
		t.Fatalf("Certificates: %+v %v", certs, err)
	}
	for range 2 {
		if err := a.DeleteCertificate(ctx, "ns/a"); err != nil {
			t.Fatalf("DeleteCertificate: %v", err)
		}
	}
	if err := a.PutChallenge(ctx, "tok-1", "tok-1.thumbprint", []string{"app.test", "www.app.test"}); err != nil {
		t.Fatalf("PutChallenge: %v", err)
	}
	if err := a.PutChallenge(ctx, "tok-2", "tok-1.thumbprint", []string{"app.test"}); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("PutChallenge with another token's answer: %v", err)
	}
	if err := a.DeleteChallenge(ctx, "tok-1"); err != nil {
		t.Fatalf("DeleteChallenge: %v", err)
	}
	if rp.next != len(rp.exs) {
		t.Fatalf("%d of %d recorded requests made", rp.next, len(rp.exs))
	}
}

// legacyProxy answers as the module of older proxies did: a table {id: upstream} without a
// version, its routes in Caddy's config.
type legacyProxy struct {
	mu      sync.Mutex
	table   map[string]string
	routes  []map[string]any // the Caddy routes of server "kamal"
	deleted []string         // paths of DELETE requests
}

func (l *legacyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case r.URL.Path == "/kamal/routes":
		_ = json.NewEncoder(w).Encode(l.table)
	case r.URL.Path == "/config/apps/http/servers/kamal/routes":
		_ = json.NewEncoder(w).Encode(l.routes)
	case r.Method == http.MethodDelete:
		l.deleted = append(l.deleted, r.URL.Path)
		if r.URL.Path == "/id/kamal-missing" {
			http.Error(w, `{"error":"unknown object ID 'kamal-missing'"}`, http.StatusInternalServerError)
		}
	case r.Method == http.MethodGet && len(r.URL.Path) > len("/kamal/routes/"):
		id := r.URL.Path[len("/kamal/routes/"):]
		if up, ok := l.table[id]; ok {
			fmt.Fprintf(w, `{"upstream":%q}`, up)
			return
		}
		http.Error(w, `{"error":"route has no upstream"}`, http.StatusNotFound)
	default:
		// The older module took any PUT as {"upstream"} for the rest of the path.
		w.WriteHeader(http.StatusOK)
	}
}

// An older proxy is told apart by its answers, never written to as if it had the table, and
// read for a replacement as the new proxy imports it.
func TestClientTellsAnOlderProxy(t *testing.T) {
	old := &legacyProxy{
		table: map[string]string{"kamal-ns-app-web": "app-web-1:80", "kamal-stray": "x:80"},
		routes: []map[string]any{
			{"@id": "kamal-ns-app-web", "handle": []any{map[string]any{"handler": "kamal_route", "route": "kamal-ns-app-web"}, map[string]any{"handler": "reverse_proxy"}}},
			{"@id": "kamal-ns-new-web", "handle": []any{map[string]any{"handler": "kamal_route", "route": "kamal-ns-new-web"}}},
			{"@id": legacyFallbackID, "handle": []any{map[string]any{"handler": "static_response"}}},
		},
	}
	a := adminOver(t, old)
	ctx := context.Background()
	if err := a.Ready(ctx); !errors.Is(err, ErrLegacyProxy) {
		t.Fatalf("Ready: %v", err)
	}
	for name, err := range map[string]error{
		"Routes":      func() error { _, err := a.Routes(ctx); return err }(),
		"Route":       func() error { _, err := a.Route(ctx, "kamal-ns-app-web"); return err }(),
		"Route 404":   func() error { _, err := a.Route(ctx, "ns/app/web"); return err }(),
		"PutRoute":    func() error { _, err := a.PutRoute(ctx, "ns/app/web", Route{Upstream: "a:80"}, 0, nil); return err }(),
		"SetUpstream": func() error { _, err := a.SetUpstream(ctx, "ns/app/web", "a:80"); return err }(),
	} {
		if !errors.Is(err, ErrLegacyProxy) {
			t.Errorf("%s on an older proxy: %v", name, err)
		}
	}
	// A removal goes through: the Caddy route of the id as well, a missing one no error.
	for _, id := range []string{"kamal-ns-app-web", "kamal-missing"} {
		if _, err := a.DeleteRoute(ctx, id, 0); err != nil {
			t.Errorf("DeleteRoute(%s) on an older proxy: %v", id, err)
		}
	}
	if want := []string{"/kamal/routes/kamal-ns-app-web", "/id/kamal-ns-app-web", "/kamal/routes/kamal-missing", "/id/kamal-missing"}; !reflect.DeepEqual(old.deleted, want) {
		t.Errorf("deleted %q, want %q", old.deleted, want)
	}
	st, err := a.RouteState(ctx)
	if want := (RouteState{"kamal-ns-app-web": "app-web-1:80", "kamal-ns-new-web": ""}); err != nil || !reflect.DeepEqual(st, want) {
		t.Fatalf("RouteState of an older proxy: %v %v, want %v", st, err, want)
	}

	// Stock Caddy: no module at all.
	stock := adminOver(t, http.NotFoundHandler())
	if err := stock.Ready(ctx); !errors.Is(err, ErrNoRouteModule) {
		t.Fatalf("Ready on stock Caddy: %v", err)
	}

	// A module older than the certificate table: Caddy has no such admin path. Each call is
	// one request.
	stock.Requests = new(atomic.Int64)
	for name, err := range map[string]error{
		"PutCertificate":    func() error { _, err := stock.PutCertificate(ctx, "ns/app", []byte("c"), []byte("k")); return err }(),
		"DeleteCertificate": stock.DeleteCertificate(ctx, "ns/app"),
		"Certificates":      func() error { _, err := stock.Certificates(ctx); return err }(),
		"PutChallenge":      stock.PutChallenge(ctx, "t", "t.x", []string{"app.test"}),
		"DeleteChallenge":   stock.DeleteChallenge(ctx, "t"),
	} {
		if !errors.Is(err, ErrNoCertificateTable) {
			t.Errorf("%s on an older module: %v", name, err)
		}
	}
	if n := stock.Requests.Load(); n != 5 {
		t.Errorf("%d requests counted for 5 calls", n)
	}
}
