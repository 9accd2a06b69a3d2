package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func call(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestEndpoints(t *testing.T) {
	t.Setenv("APP_VERSION", "v9")
	t.Setenv("SECRET_X", "s3cret")
	var inFlight atomic.Int64
	srv := httptest.NewServer(handler(&inFlight))
	defer srv.Close()

	for _, c := range []struct {
		path string
		code int
		body string
	}{
		{"/up", 200, "ok"},
		{"/version", 200, "v9"},
		{"/env?name=SECRET_X", 200, "s3cret"},
		{"/env?name=NOT_SET_ANYWHERE", 404, "unset"},
		{"/slow?ms=20", 200, "slept 20 ms (v9)"},
		{"/slow?ms=x", 400, "ms must be a non-negative integer"},
		{"/inflight", 200, "0"},
	} {
		if code, body := call(t, srv, c.path); code != c.code || body != c.body {
			t.Errorf("GET %s = %d %q, want %d %q", c.path, code, body, c.code, c.body)
		}
	}

	// a slow request shows in /inflight while it runs
	done := make(chan struct{})
	go func() {
		defer close(done)
		call(t, srv, "/slow?ms=2000")
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, body := call(t, srv, "/inflight"); body == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("slow request never in flight")
		}
		time.Sleep(10 * time.Millisecond)
	}
	<-done
}

func TestBrokenMode(t *testing.T) {
	t.Setenv("BROKEN", "1")
	var inFlight atomic.Int64
	srv := httptest.NewServer(handler(&inFlight))
	defer srv.Close()
	if code, _ := call(t, srv, "/up"); code != http.StatusServiceUnavailable {
		t.Fatalf("/up in broken mode = %d", code)
	}
	if code, _ := call(t, srv, "/version"); code != 200 {
		t.Fatalf("/version in broken mode = %d", code)
	}
}

func TestBrokenBuildFlag(t *testing.T) {
	old := broken
	broken = "true"
	defer func() { broken = old }()
	if !isBroken() {
		t.Fatal("-X main.broken=true is not broken")
	}
	t.Setenv("BROKEN", "0")
	if isBroken() {
		t.Fatal("BROKEN=0 does not override the build flag")
	}
}

func TestGet(t *testing.T) {
	t.Setenv("APP_VERSION", "v9")
	var inFlight atomic.Int64
	srv := httptest.NewServer(handler(&inFlight))
	defer srv.Close()
	var out, errOut strings.Builder
	if code := get(&out, &errOut, srv.URL+"/version"); code != 0 || strings.TrimSpace(out.String()) != "v9" {
		t.Errorf("get /version: %d %q %q", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := get(&out, &errOut, srv.URL+"/env?name=NOT_SET_ANYWHERE"); code != 1 || !strings.Contains(errOut.String(), "404") {
		t.Errorf("get a 404: %d %q", code, errOut.String())
	}
	errOut.Reset()
	if code := get(&out, &errOut, "http://no-such-host.invalid/"); code != 1 || errOut.Len() == 0 {
		t.Errorf("get an unknown host: %d %q", code, errOut.String())
	}
}
