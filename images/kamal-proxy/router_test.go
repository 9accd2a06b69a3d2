package kamalproxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loadLoop sends GET / with Host host to addr from 4 clients (half on fresh connections),
// each at most perClient requests and for at most limit, until stopped; an answer of another
// app than want (any, when "") counts as failed.
type loadLoop struct {
	ok, failed atomic.Int64
	firstErr   atomic.Value
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(addr, host, want string, perClient int, limit time.Duration) *loadLoop {
	l := &loadLoop{stop: make(chan struct{})}
	deadline := time.Now().Add(limit)
	for i := range 4 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: i%2 == 0}}
			for n := 0; n < perClient && time.Now().Before(deadline); n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				got, err := get(c, addr, host, "/")
				if err == nil && want != "" && !strings.HasPrefix(got, want+" ") {
					err = fmt.Errorf("answered by %q", got)
				}
				if err != nil {
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
				} else {
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *loadLoop) total() int64 { return l.ok.Load() + l.failed.Load() }

// atLeast waits until n more requests were made than before (or the loop ended).
func (l *loadLoop) atLeast(t *testing.T, before, n int64) {
	t.Helper()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	deadline := time.After(20 * time.Second)
	for l.total() < before+n {
		select {
		case <-done:
			return
		case <-deadline:
			t.Fatalf("the load loop made no progress: %d requests", l.total())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (l *loadLoop) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if l.failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed, first: %v", l.failed.Load(), l.total(), l.firstErr.Load())
	}
}

// Adding and removing other apps' routes is no config change: an app under load loses no
// request, and Caddy's config is byte for byte what it was.
func TestAddingAndRemovingRoutesTouchesNoOtherApp(t *testing.T) {
	a, b := backend(t, "a", nil), backend(t, "b", nil)
	p := startProxy(t, nil)
	p.put(t, "ns/a/web", Route{Hosts: []string{"a.test"}, Upstream: a, ResponseTimeout: "30s", ForwardHeaders: true})
	before := p.do(t, http.MethodGet, "/config/", nil)

	load := startLoad(p.http, "a.test", "a", 5000, time.Minute)
	c := &http.Client{Timeout: 5 * time.Second}
	for i := range 10 {
		n := load.total()
		// Each with its own settings, so each provisions a reverse_proxy of its own.
		p.put(t, fmt.Sprintf("ns%d/app/web", i), Route{Hosts: []string{fmt.Sprintf("app%d.test", i)}, Paths: []string{"/"}, Upstream: b,
			ResponseTimeout: fmt.Sprintf("%ds", 10+i), RequestBuffers: int64(i) << 10})
		if got, err := get(c, p.http, fmt.Sprintf("app%d.test", i), "/x"); err != nil || got != "b /x" {
			t.Fatalf("new route %d: %q %v", i, got, err)
		}
		load.atLeast(t, n, 50)
	}
	for i := range 10 {
		n := load.total()
		if a := p.do(t, http.MethodDelete, fmt.Sprintf("/kamal/routes/ns%d/app/web", i), nil); a.code != http.StatusOK {
			t.Fatalf("DELETE: %d %s", a.code, a.body)
		}
		if code, body, _ := send(c, http.MethodGet, p.http, fmt.Sprintf("app%d.test", i), "/", nil, nil); code != http.StatusNotFound || body != NoRouteBody {
			t.Fatalf("removed route %d answers %d %q", i, code, body)
		}
		load.atLeast(t, n, 50)
	}
	load.finish(t)
	t.Logf("10 routes added and removed: %d requests to another app, none failed", load.total())
	if after := p.do(t, http.MethodGet, "/config/", nil); after.body != before.body {
		t.Fatalf("Caddy's config changed:\n%s\n%s", before.body, after.body)
	}
	if a := p.do(t, http.MethodGet, "/kamal/routes", nil); !strings.Contains(a.body, `"version":22`) {
		t.Fatalf("table after 1+10+10 changes from version 1: %s", a.body)
	}
}

func TestRouteSwitchesWithoutConfigChange(t *testing.T) {
	release := make(chan struct{})
	a, b := backend(t, "a", release), backend(t, "b", nil)
	p := startProxy(t, nil)
	c := &http.Client{Timeout: 10 * time.Second}

	// A route without upstream: a clear 502, not a dial of an empty address.
	p.put(t, "ns/app/web", Route{Hosts: []string{"app.test"}})
	if code, _, err := send(c, http.MethodGet, p.http, "app.test", "/", nil, nil); err != nil || code != http.StatusBadGateway {
		t.Fatalf("request before any upstream: %d %v", code, err)
	}
	if a := p.do(t, http.MethodPut, "/kamal/routes/ns/app/web/upstream", map[string]string{"upstream": "nope"}); a.code != http.StatusBadRequest {
		t.Fatalf("PUT of a bad upstream: %d %s", a.code, a.body)
	}
	if a := p.do(t, http.MethodPut, "/kamal/routes/ns/app/web/upstream", map[string]string{"upstream": a}); a.code != http.StatusOK {
		t.Fatalf("PUT upstream: %d %s", a.code, a.body)
	}
	before := p.do(t, http.MethodGet, "/config/", nil)
	if got, err := get(c, p.http, "app.test", "/"); err != nil || got != "a /" {
		t.Fatalf("routed to a: %q %v", got, err)
	}

	// A request in flight on a is counted, and finishes after the switch to b.
	slow := make(chan error, 1)
	go func() {
		got, err := get(c, p.http, "app.test", "/slow")
		if err == nil && got != "a /slow" {
			err = fmt.Errorf("slow request answered by %q", got)
		}
		slow <- err
	}()
	waitFor(t, func() bool { return strings.Contains(p.do(t, http.MethodGet, "/kamal/inflight", nil).body, a) })
	p.do(t, http.MethodPut, "/kamal/routes/ns/app/web/upstream", map[string]string{"upstream": b})
	if got, err := get(c, p.http, "app.test", "/"); err != nil || got != "b /" {
		t.Fatalf("after the switch: %q %v", got, err)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatalf("the request in flight during the switch: %v", err)
	}
	waitFor(t, func() bool { return strings.TrimSpace(p.do(t, http.MethodGet, "/kamal/inflight", nil).body) == "{}" })
	if after := p.do(t, http.MethodGet, "/config/", nil); after.body != before.body {
		t.Fatalf("the switch changed Caddy's config:\n%s\n%s", before.body, after.body)
	}
	saved, err := os.ReadFile(filepath.Join(p.dataDir, TableFile))
	if err != nil || !strings.Contains(string(saved), b) {
		t.Fatalf("saved routes: %s %v", saved, err)
	}
}

// Switching back and forth under load, on new and reused connections, fails no request.
func TestSwitchesUnderLoadFailNothing(t *testing.T) {
	a, b := backend(t, "a", nil), backend(t, "b", nil)
	p := startProxy(t, nil)
	p.put(t, "r", Route{Upstream: a})
	load := startLoad(p.http, "any.test", "", 20000, 2*time.Minute)
	for i := range 200 {
		up := a
		if i%2 == 0 {
			up = b
		}
		n := load.total()
		if a := p.do(t, http.MethodPut, "/kamal/routes/r/upstream", map[string]string{"upstream": up}); a.code != http.StatusOK {
			t.Fatalf("PUT: %d %s", a.code, a.body)
		}
		// Let some requests through on each side of every switch.
		load.atLeast(t, n, 8)
	}
	load.finish(t)
	t.Logf("200 switches: %d requests, none failed", load.total())
	if load.ok.Load() < 200 {
		t.Fatalf("only %d requests were made", load.ok.Load())
	}
}

// The route's settings shape the request: the prefix stripped, the body limited, the
// upstream's answer awaited no longer than the timeout, the client's X-Forwarded-For trusted.
func TestRouteSettings(t *testing.T) {
	up := backend(t, "app", nil)
	p := startProxy(t, nil)
	c := &http.Client{Timeout: 10 * time.Second}
	p.put(t, "ns/strip/web", Route{Hosts: []string{"s.test"}, Paths: []string{"/api/", "/v2"}, StripPathPrefix: true, Upstream: up})
	p.put(t, "ns/keep/web", Route{Hosts: []string{"k.test"}, Paths: []string{"/api"}, Upstream: up})
	p.put(t, "ns/body/web", Route{Hosts: []string{"b.test"}, MaxRequestBody: 10, Upstream: up})
	p.put(t, "ns/slow/web", Route{Hosts: []string{"t.test"}, ResponseTimeout: "200ms", Upstream: up})
	p.put(t, "ns/fwd/web", Route{Hosts: []string{"f.test"}, ForwardHeaders: true, Upstream: up})
	p.put(t, "ns/nofwd/web", Route{Hosts: []string{"n.test"}, Upstream: up})

	for _, tc := range []struct{ host, path, want string }{
		{"s.test", "/api/x/y", "app /x/y"},
		{"s.test", "/API/x", "app /x"},
		{"s.test", "/api", "app /"},
		{"s.test", "/v2/z", "app /z"},
		{"k.test", "/api/x", "app /api/x"},
		{"t.test", "/", "app /"},
	} {
		if got, err := get(c, p.http, tc.host, tc.path); err != nil || got != tc.want {
			t.Errorf("GET %s%s = %q %v, want %q", tc.host, tc.path, got, err, tc.want)
		}
	}
	if got, err := get(c, p.http, "s.test", "/other"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a path of no prefix on a claimed host: %q %v", got, err)
	}

	for _, tc := range []struct {
		body    string
		chunked bool
		want    int
	}{{"0123456789", false, 200}, {"0123456789a", false, 413}, {"0123456789a", true, 413}, {"short", true, 200}} {
		var rd = strings.NewReader(tc.body)
		req, _ := http.NewRequest(http.MethodPost, "http://"+p.http+"/", rd)
		req.Host = "b.test"
		if tc.chunked {
			req.ContentLength = -1
			req.Body = readerOnly{strings.NewReader(tc.body)}
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("POST %d bytes: %v", len(tc.body), err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("POST %d bytes (chunked %v): %d, want %d", len(tc.body), tc.chunked, resp.StatusCode, tc.want)
		}
	}

	start := time.Now()
	if code, _, err := send(c, http.MethodGet, p.http, "t.test", "/sleep", nil, nil); err != nil || code != http.StatusGatewayTimeout {
		t.Errorf("an upstream slower than responseTimeout: %d %v", code, err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("the timeout of 200ms took %s", d)
	}
	if got, err := get(c, p.http, "n.test", "/sleep"); err != nil || got != "app /sleep" {
		t.Errorf("without responseTimeout: %q %v", got, err)
	}

	xff := http.Header{"X-Forwarded-For": {"203.0.113.7"}}
	if _, got, _ := send(c, http.MethodGet, p.http, "f.test", "/headers", nil, xff); got != "app 203.0.113.7, 127.0.0.1" {
		t.Errorf("forwardHeaders: upstream saw X-Forwarded-For %q", got)
	}
	if _, got, _ := send(c, http.MethodGet, p.http, "n.test", "/headers", nil, xff); got != "app 127.0.0.1" {
		t.Errorf("without forwardHeaders: upstream saw X-Forwarded-For %q", got)
	}
}

type readerOnly struct{ r *strings.Reader }

func (r readerOnly) Read(b []byte) (int, error) { return r.r.Read(b) }
func (readerOnly) Close() error                 { return nil }

// A proxy replacing an older one serves the older one's routes from its first request: the
// routes of Caddy's autosave, with the upstreams of the older table (here pointed at local
// backends), without writing anything until the first change.
func TestReplacedProxyServesTheOlderProxysRoutes(t *testing.T) {
	web, api, blog, catch := backend(t, "web", nil), backend(t, "api", nil), backend(t, "blog", nil), backend(t, "catch", nil)
	var legacyTable []byte
	p := startProxy(t, func(dataDir, configDir string) {
		legacyTable = copyLegacyFixture(t, dataDir, configDir, map[string]string{
			"kamal-team-a-web-web": web, "kamal-team-a-web-api": api, "kamal-team-b-blog-web": blog, "kamal-team-b-catch-web": catch,
		})
	})
	c := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct{ host, path, want string }{
		{"a.test", "/", "web /"},
		{"www.a.test", "/x", "web /x"},
		{"a.test", "/api/users", "api /users"},
		{"a.test", "/v2", "api /"},
		{"x.blog.test", "/post", "blog /post"},
		{"other.test", "/api/users", "catch /api/users"},
	} {
		if got, err := get(c, p.http, tc.host, tc.path); err != nil || got != tc.want {
			t.Errorf("GET %s%s = %q %v, want %q", tc.host, tc.path, got, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(p.dataDir, TableFile)); !os.IsNotExist(err) {
		t.Fatalf("the import was saved before any change: %v", err)
	}
	if a := p.do(t, http.MethodPut, "/kamal/routes/team-a/web/web", `{"hosts":["a.test","www.a.test"],"upstream":"`+web+`","replaces":["kamal-team-a-web-web"]}`); a.code != http.StatusOK {
		t.Fatalf("taking over the legacy id: %d %s", a.code, a.body)
	}
	if b, err := os.ReadFile(filepath.Join(p.dataDir, LegacyTableFile)); err != nil || string(b) != string(legacyTable) {
		t.Fatalf("the older proxy's table changed: %s %v", b, err)
	}
	a := p.do(t, http.MethodGet, "/kamal/routes", nil)
	var tbl TableAnswer
	if err := json.Unmarshal([]byte(a.body), &tbl); err != nil || len(tbl.Routes) != 4 || tbl.Version != 2 || tbl.Routes["team-a/web/web"].Upstream != web {
		t.Fatalf("table after the takeover: %s %v", a.body, err)
	}
	if _, ok := tbl.Routes["kamal-team-a-web-web"]; ok {
		t.Fatalf("the legacy id stayed: %s", a.body)
	}
}
