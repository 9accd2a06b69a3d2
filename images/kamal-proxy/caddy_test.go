package kamalproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/standard"
)

// proxyUnderTest runs Caddy in this process with one route through kamal_route, the way the
// controller configures it, and returns its address and an admin client.
func proxyUnderTest(t *testing.T) (addr string, admin *http.Client) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	sock := filepath.Join(dir, "admin.sock")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	cfg := map[string]any{
		"admin": map[string]any{"listen": "unix/" + sock},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"kamal": map[string]any{
			"listen": []string{addr},
			"routes": []any{map[string]any{
				"handle": []any{
					map[string]any{"handler": "kamal_route", "route": "r"},
					map[string]any{"handler": "reverse_proxy", "upstreams": []any{map[string]any{"dial": "{http.vars." + UpstreamVar + "}"}}},
				},
			}},
		}}}},
	}
	b, _ := json.Marshal(cfg)
	if err := caddy.Load(b, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	admin = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}, Timeout: 10 * time.Second}
	return addr, admin
}

func adminDo(t *testing.T, c *http.Client, method, path string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://localhost"+path, rd)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func backend(t *testing.T, name string, release <-chan struct{}) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		fmt.Fprint(w, name)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), nil
}

func TestRouteSwitchesWithoutConfigChange(t *testing.T) {
	release := make(chan struct{})
	a, b := backend(t, "a", release), backend(t, "b", nil)
	addr, admin := proxyUnderTest(t)
	url := "http://" + addr

	// Unrouted: a clear 502, not a dial of an empty address.
	if _, err := get(http.DefaultClient, url); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("request before any upstream: %v", err)
	}
	if code, body := adminDo(t, admin, http.MethodPut, "/kamal/routes/r", map[string]string{"upstream": "nope"}); code != http.StatusBadRequest {
		t.Fatalf("PUT of a bad upstream: %d %s", code, body)
	}
	if code, body := adminDo(t, admin, http.MethodPut, "/kamal/routes/r", map[string]string{"upstream": a}); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, body)
	}
	_, cfgBefore := adminDo(t, admin, http.MethodGet, "/config/", nil)
	if got, err := get(http.DefaultClient, url); err != nil || got != "a" {
		t.Fatalf("routed to a: %q %v", got, err)
	}

	// A request in flight on a is counted, and finishes after the switch to b.
	slow := make(chan error, 1)
	go func() {
		got, err := get(http.DefaultClient, url+"/slow")
		if err == nil && got != "a" {
			err = fmt.Errorf("slow request answered by %q", got)
		}
		slow <- err
	}()
	waitFor(t, func() bool {
		_, body := adminDo(t, admin, http.MethodGet, "/kamal/inflight", nil)
		return strings.Contains(body, a)
	})
	adminDo(t, admin, http.MethodPut, "/kamal/routes/r", map[string]string{"upstream": b})
	if got, err := get(http.DefaultClient, url); err != nil || got != "b" {
		t.Fatalf("after the switch: %q %v", got, err)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatalf("the request in flight during the switch: %v", err)
	}
	waitFor(t, func() bool {
		_, body := adminDo(t, admin, http.MethodGet, "/kamal/inflight", nil)
		return strings.TrimSpace(body) == "{}"
	})
	if _, body := adminDo(t, admin, http.MethodGet, "/kamal/routes/r", nil); !strings.Contains(body, b) {
		t.Fatalf("GET route: %s", body)
	}
	if _, cfgAfter := adminDo(t, admin, http.MethodGet, "/config/", nil); cfgAfter != cfgBefore {
		t.Fatalf("the switch changed Caddy's config:\n%s\n%s", cfgBefore, cfgAfter)
	}
	saved, err := os.ReadFile(filepath.Join(caddy.AppDataDir(), "kamal-routes.json"))
	if err != nil || !strings.Contains(string(saved), b) {
		t.Fatalf("saved routes: %s %v", saved, err)
	}
	if code, _ := adminDo(t, admin, http.MethodDelete, "/kamal/routes/r", nil); code != http.StatusOK {
		t.Fatalf("DELETE: %d", code)
	}
	if code, _ := adminDo(t, admin, http.MethodGet, "/kamal/routes/r", nil); code != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d", code)
	}
}

// Switching back and forth under load, on new and reused connections, fails no request.
func TestSwitchesUnderLoadFailNothing(t *testing.T) {
	a, b := backend(t, "a", nil), backend(t, "b", nil)
	addr, admin := proxyUnderTest(t)
	url := "http://" + addr
	adminDo(t, admin, http.MethodPut, "/kamal/routes/r", map[string]string{"upstream": a})

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: i%2 == 0}}
			for n := 0; n < 20000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := get(c, url); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	for i := range 200 {
		up := a
		if i%2 == 0 {
			up = b
		}
		before := ok.Load() + failed.Load()
		if code, body := adminDo(t, admin, http.MethodPut, "/kamal/routes/r", map[string]string{"upstream": up}); code != http.StatusOK {
			t.Fatalf("PUT: %d %s", code, body)
		}
		// Let some requests through on each side of every switch.
		waitFor(t, func() bool { return ok.Load()+failed.Load() >= before+8 })
	}
	close(stop)
	wg.Wait()
	t.Logf("200 switches: %d requests ok, %d failed", ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed, first: %v", failed.Load(), firstErr.Load())
	}
	if ok.Load() < 200 {
		t.Fatalf("only %d requests were made", ok.Load())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
