package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func post(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Post(srv.URL+path, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestDBWithoutDatabaseURL(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	var inFlight atomic.Int64
	srv := httptest.NewServer(handler(&inFlight))
	defer srv.Close()
	for _, p := range []string{"/db", "/db/rows"} {
		if code, body := call(t, srv, p); code != http.StatusServiceUnavailable || body != "DATABASE_URL is not set" {
			t.Errorf("GET %s = %d %q", p, code, body)
		}
	}
	for _, p := range []string{"/db/rows?value=x", "/db/rows"} {
		if code, body := post(t, srv, p); code != http.StatusServiceUnavailable || body != "DATABASE_URL is not set" {
			t.Errorf("POST %s = %d %q", p, code, body)
		}
	}
	// the other endpoints are unchanged
	if code, body := call(t, srv, "/up"); code != 200 || body != "ok" {
		t.Errorf("/up = %d %q", code, body)
	}
}

// closedPort is a loopback port where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestDBErrorsHideThePassword(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	addr := closedPort(t)
	var inFlight atomic.Int64
	srv := httptest.NewServer(handler(&inFlight))
	defer srv.Close()
	for _, u := range []string{
		"postgres://app:" + secret + "@" + addr + "/appdb?sslmode=disable&connect_timeout=2",
		"postgres://app:" + secret + "@" + addr + "/appdb?sslmode=bogus",   // does not parse
		"postgres://app:" + secret + "@[::1/appdb",                         // bad URL
		"host=127.0.0.1 port=1 user=app password=" + secret + " sslmode=x", // keyword form
	} {
		t.Setenv("DATABASE_URL", u)
		for _, req := range []struct{ method, path string }{{"GET", "/db"}, {"GET", "/db/rows"}, {"POST", "/db/rows?value=x"}} {
			var code int
			var body string
			if req.method == "GET" {
				code, body = call(t, srv, req.path)
			} else {
				code, body = post(t, srv, req.path)
			}
			if code != http.StatusServiceUnavailable || body == "" {
				t.Errorf("%s %s with %q: %d %q", req.method, req.path, redact(u, u), code, body)
			}
			t.Logf("%s %s: %d %s", req.method, req.path, code, body)
			if strings.Contains(body, secret) {
				t.Errorf("%s %s answered the password: %q", req.method, req.path, body)
			}
		}
	}
}

func TestPostRowNeedsValue(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://app:pw@"+closedPort(t)+"/appdb?sslmode=disable")
	var inFlight atomic.Int64
	srv := httptest.NewServer(handler(&inFlight))
	defer srv.Close()
	if code, body := post(t, srv, "/db/rows"); code != http.StatusBadRequest || body != "value is required" {
		t.Fatalf("POST /db/rows without value = %d %q", code, body)
	}
}

func TestRedact(t *testing.T) {
	for _, c := range []struct{ msg, url, want string }{
		{"failed for app:hunter22@db", "postgres://app:hunter22@db:5432/x", "failed for app:xxxxx@db"},
		{"bad p%40ss and p@ss", "postgres://app:p%40ss@db/x", "bad xxxxx and xxxxx"},
		{"cannot parse `host=db password=abc123 user=x`", "host=db password=abc123 user=x", "cannot parse `host=db password=xxxxx user=x`"},
		{"no secret here", "", "no secret here"},
	} {
		if got := redact(c.msg, c.url); got != c.want {
			t.Errorf("redact(%q, %q) = %q, want %q", c.msg, c.url, got, c.want)
		}
	}
}
