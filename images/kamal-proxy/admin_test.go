package kamalproxy

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/admin-answers.json")

func TestAdminAPIRefusesConflictsAndStaleVersions(t *testing.T) {
	p := startProxy(t, nil)
	p.put(t, "ns/a/web", Route{Hosts: []string{"app.test"}, Paths: []string{"/api"}, Owner: "ns/a"})

	a := p.do(t, http.MethodPut, "/kamal/routes/ns/b/web", Route{Hosts: []string{"app.test"}, Paths: []string{"/api/"}, Owner: "ns/b"})
	var conflict struct {
		Error string `json:"error"`
		ConflictError
	}
	if err := json.Unmarshal([]byte(a.body), &conflict); a.code != http.StatusConflict || err != nil ||
		!reflect.DeepEqual(conflict.Conflicts, []Conflict{{ID: "ns/a/web", Owner: "ns/a", Hosts: []string{"app.test"}, Paths: []string{"/api"}}}) ||
		!strings.Contains(conflict.Error, "ns/a/web (ns/a)") || a.version != "2" {
		t.Fatalf("a conflicting PUT: %d %s (version %q)", a.code, a.body, a.version)
	}
	if a := p.do(t, http.MethodPut, "/kamal/routes/ns/b/web", Route{Hosts: []string{"b.test"}}, "If-Match", "1"); a.code != http.StatusPreconditionFailed ||
		!strings.Contains(a.body, `"version":2`) {
		t.Fatalf("a PUT with a stale If-Match: %d %s", a.code, a.body)
	}
	if a := p.do(t, http.MethodPut, "/kamal/routes/ns/b/web", Route{Hosts: []string{"b.test"}}, "If-Match", `"2"`); a.code != http.StatusOK || a.version != "3" {
		t.Fatalf("a PUT with the current If-Match: %d %s %q", a.code, a.body, a.version)
	}
	if a := p.do(t, http.MethodDelete, "/kamal/routes/ns/b/web", nil, "If-Match", "2"); a.code != http.StatusPreconditionFailed {
		t.Fatalf("a DELETE with a stale If-Match: %d %s", a.code, a.body)
	}
	for _, c := range []struct {
		method, path string
		body         any
		want         int
	}{
		{http.MethodGet, "/kamal/routes/ns/a", nil, http.StatusBadRequest},
		{http.MethodPut, "/kamal/routes/NS/a/web", Route{}, http.StatusBadRequest},
		{http.MethodPut, "/kamal/routes/ns/c/web", `{"hosts":["c.test"],"tls":true}`, http.StatusBadRequest},
		{http.MethodPut, "/kamal/routes/ns/c/web", Route{Paths: []string{"api"}}, http.StatusBadRequest},
		{http.MethodGet, "/kamal/routes/ns/a/web/upstream", nil, http.StatusMethodNotAllowed},
		{http.MethodPost, "/kamal/routes", nil, http.StatusMethodNotAllowed},
		{http.MethodPut, "/kamal/routes/ns/x/web/upstream", map[string]string{"upstream": "x:80"}, http.StatusNotFound},
	} {
		if a := p.do(t, c.method, c.path, c.body); a.code != c.want || a.version == "" {
			t.Errorf("%s %s: %d %s (version %q), want %d", c.method, c.path, a.code, a.body, a.version, c.want)
		}
	}
}

// exchange is one request to the admin API and its answer, recorded for the controller's
// client tests (internal/proxy), which replay them: both sides agree on what the module says.
type exchange struct {
	Method  string          `json:"method"`
	Path    string          `json:"path"`
	IfMatch string          `json:"ifMatch,omitempty"`
	Body    json.RawMessage `json:"body,omitempty"`
	Status  int             `json:"status"`
	Version string          `json:"version,omitempty"`
	Answer  json.RawMessage `json:"answer,omitempty"`
}

func TestAdminAnswersAsRecorded(t *testing.T) {
	p := startProxy(t, nil)
	var got []exchange
	rec := func(method, path, ifMatch string, body any) {
		var hdr []string
		if ifMatch != "" {
			hdr = []string{"If-Match", ifMatch}
		}
		a := p.do(t, method, path, body, hdr...)
		ex := exchange{Method: method, Path: path, IfMatch: ifMatch, Status: a.code, Version: a.version}
		if body != nil {
			ex.Body, _ = json.Marshal(body)
		}
		if s := strings.TrimSpace(a.body); s != "" {
			ex.Answer = json.RawMessage(s)
		}
		got = append(got, ex)
	}
	web := Route{Hosts: []string{"app.test"}, Paths: []string{"/api"}, Upstream: "app-web-1:80", ForwardHeaders: true, ResponseTimeout: "30s", Owner: "ns/a"}
	rec(http.MethodGet, "/kamal/routes", "", nil)
	rec(http.MethodGet, "/config/apps/http/servers/kamal/routes", "", nil)
	rec(http.MethodPut, "/kamal/routes/ns/a/web", "", putBody{Route: web})
	rec(http.MethodPut, "/kamal/routes/ns/a/web", "", putBody{Route: web})
	rec(http.MethodPut, "/kamal/routes/ns/b/web", "", putBody{Route: Route{Hosts: []string{"app.test"}, Paths: []string{"/api/"}, Owner: "ns/b"}})
	rec(http.MethodPut, "/kamal/routes/ns/b/web", "1", putBody{Route: Route{Hosts: []string{"b.test"}}})
	rec(http.MethodGet, "/kamal/routes/ns/a/web", "", nil)
	rec(http.MethodGet, "/kamal/routes/ns/x/web", "", nil)
	rec(http.MethodPut, "/kamal/routes/ns/a/web/upstream", "", map[string]string{"upstream": "app-web-2:80"})
	rec(http.MethodPut, "/kamal/routes/ns/x/web/upstream", "", map[string]string{"upstream": "x:80"})
	rec(http.MethodPut, "/kamal/routes/kamal-ns-c-web", "", putBody{Route: Route{Hosts: []string{"c.test"}}})
	rec(http.MethodPut, "/kamal/routes/ns/c/web", "", putBody{Route: Route{Hosts: []string{"c.test"}, Owner: "ns/c"}, Replaces: []string{"kamal-ns-c-web"}})
	rec(http.MethodDelete, "/kamal/routes/ns/a/web", "5", nil)
	rec(http.MethodDelete, "/kamal/routes/ns/a/web", "", nil)
	rec(http.MethodGet, "/kamal/routes", "", nil)
	rec(http.MethodGet, "/kamal/inflight", "", nil)
	rec(http.MethodPut, "/kamal/routes/ns/d/web", "", putBody{Route: Route{Hosts: []string{"d.test"}, Upstream: "app-d-1:80", RedirectHTTPS: true, Owner: "ns/d"}})
	rec(http.MethodGet, "/kamal/routes/ns/d/web", "", nil)

	cert := newTestCert(t, 1, 1, longAgo, farOff, "app.test", "www.app.test")
	other := newTestCert(t, 2, 2, longAgo, farOff, "app.test")
	rec(http.MethodGet, "/kamal/certificates", "", nil)
	rec(http.MethodPut, "/kamal/certificates/ns/a", "", certificateBody{Chain: cert.chain, Key: cert.key})
	rec(http.MethodPut, "/kamal/certificates/ns/b", "", certificateBody{Chain: cert.chain, Key: other.key})
	rec(http.MethodGet, "/kamal/certificates", "", nil)
	rec(http.MethodDelete, "/kamal/certificates/ns/a", "", nil)
	rec(http.MethodDelete, "/kamal/certificates/ns/a", "", nil)
	rec(http.MethodPut, "/kamal/challenges/tok-1", "", Challenge{KeyAuthorization: "tok-1.thumbprint", Hosts: []string{"app.test", "www.app.test"}})
	rec(http.MethodPut, "/kamal/challenges/tok-2", "", Challenge{KeyAuthorization: "tok-1.thumbprint", Hosts: []string{"app.test"}})
	rec(http.MethodDelete, "/kamal/challenges/tok-1", "", nil)

	b, _ := json.MarshalIndent(got, "", "  ")
	path := filepath.Join("testdata", "admin-answers.json")
	if *update {
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(want), b) {
		t.Fatalf("the admin API answers differently from %s (rerun with -update, then the client tests in internal/proxy):\n%s", path, b)
	}
}
