package kamalproxy

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Which route serves a request depends on the routes, never on the order they came in: the
// exact host beats a wildcard beats no host, the longest prefix wins within one, and a host a
// route names is never served by a wildcard or host-less route.
func TestMatchingIsBySpecificity(t *testing.T) {
	routes := map[string]Route{
		"ns/exact/web":   {Hosts: []string{"app.test"}},
		"ns/exact/api":   {Hosts: []string{"App.Test"}, Paths: []string{"/api/"}},
		"ns/exact/apiv2": {Hosts: []string{"app.test"}, Paths: []string{"/api/v2"}},
		"ns/wild/web":    {Hosts: []string{"*.app.test"}},
		"ns/wild/admin":  {Hosts: []string{"*.app.test"}, Paths: []string{"/admin"}},
		"ns/any/web":     {Paths: []string{"/"}},
		"ns/any/static":  {Paths: []string{"/static"}},
		"ns/claim/api":   {Hosts: []string{"claimed.test", "x.app.test"}, Paths: []string{"/api"}},
		"kamal-legacy":   {Hosts: []string{"10.0.0.1"}},
	}
	cases := []struct{ host, path, want string }{
		{"app.test", "/", "ns/exact/web"},
		{"APP.test:8080", "/api", "ns/exact/api"},
		{"app.test", "/api/x", "ns/exact/api"},
		{"app.test", "/API/V2/y", "ns/exact/apiv2"},
		{"app.test", "/api/v2", "ns/exact/apiv2"},
		{"app.test", "/apix", "ns/exact/web"},
		{"app.test", "/static/x", "ns/exact/web"},
		{"app.test.", "/", "ns/exact/web"},
		{"app.test", "/x/../api/y", "ns/exact/api"},
		{"y.app.test", "/", "ns/wild/web"},
		{"y.app.test", "/admin/z", "ns/wild/admin"},
		{"a.b.app.test", "/", "ns/any/web"}, // a wildcard is one label
		{"other.test", "/static/a", "ns/any/static"},
		{"other.test", "/", "ns/any/web"},
		{"", "/", "ns/any/web"},
		{"[::1]:80", "/", "ns/any/web"},
		{"10.0.0.1:80", "/", "kamal-legacy"},
		// A host claimed for /api only: its other paths are nobody's, not the catch-all's;
		// x.app.test is claimed by name, so the wildcard does not serve it either.
		{"claimed.test", "/", ""},
		{"claimed.test", "/api/v1", "ns/claim/api"},
		{"x.app.test", "/admin", ""},
		{"x.app.test", "/api", "ns/claim/api"},
	}
	ids := slices.Sorted(maps.Keys(routes))
	for _, order := range [][]string{ids, reversed(ids)} {
		tb, _, _ := NewTable("")
		for _, id := range order {
			if _, err := tb.Put(id, routes[id], 0, nil); err != nil {
				t.Fatalf("Put %s: %v", id, err)
			}
		}
		for _, c := range cases {
			m, done := tb.Begin(c.host, c.path)
			done()
			if m.ID != c.want {
				t.Errorf("order %v: %s %s went to %q, want %q", order[:2], c.host, c.path, m.ID, c.want)
			}
		}
	}
	// Without a host-less route, a host nobody names is routed nowhere.
	tb, _, _ := NewTable("")
	_, _ = tb.Put("ns/a/web", Route{Hosts: []string{"a.test"}}, 0, nil)
	if m, _ := tb.Begin("b.test", "/"); m.Route != nil {
		t.Fatalf("an unnamed host went to %s", m.ID)
	}
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

// Two routes conflict when they share a host key and a path prefix; the table refuses the
// second one and names the first.
func TestConflictsAreRefused(t *testing.T) {
	tb, _, _ := NewTable("")
	must := func(id string, r Route) {
		t.Helper()
		if _, err := tb.Put(id, r, 0, nil); err != nil {
			t.Fatalf("Put %s: %v", id, err)
		}
	}
	must("ns/a/web", Route{Hosts: []string{"app.test"}, Paths: []string{"/api"}, Owner: "ns/a"})
	must("ns/a/any", Route{Owner: "ns/a"})
	must("ns/a/wild", Route{Hosts: []string{"*.app.test"}})
	for _, c := range []struct {
		route Route
		want  []Conflict
	}{
		{Route{Hosts: []string{"other.test", "APP.test."}, Paths: []string{"/api/", "/x"}}, []Conflict{{ID: "ns/a/web", Owner: "ns/a", Hosts: []string{"app.test"}, Paths: []string{"/api"}}}},
		{Route{Paths: []string{"/"}}, []Conflict{{ID: "ns/a/any", Owner: "ns/a", Hosts: []string{""}, Paths: []string{"/"}}}},
		{Route{Hosts: []string{"*.APP.test"}, Paths: []string{"/"}}, []Conflict{{ID: "ns/a/wild", Hosts: []string{"*.app.test"}, Paths: []string{"/"}}}},
	} {
		_, err := tb.Put("ns/b/web", c.route, 0, nil)
		var ce *ConflictError
		if !errors.As(err, &ce) || ce.ID != "ns/b/web" || !reflect.DeepEqual(ce.Conflicts, c.want) {
			t.Errorf("Put %+v: %v, want conflicts %+v", c.route, err, c.want)
		}
	}
	// Other prefixes, an exact host under a wildcard, and the same host without paths do not
	// conflict.
	must("ns/b/v2", Route{Hosts: []string{"app.test"}, Paths: []string{"/api/v2"}})
	must("ns/b/x", Route{Hosts: []string{"x.app.test"}})
	must("ns/b/root", Route{Hosts: []string{"app.test"}})
	if v := tb.Version(); v != 7 {
		t.Fatalf("version %d after 6 changes", v)
	}
	// An identical route is no change.
	if v, err := tb.Put("ns/b/root", Route{Hosts: []string{"app.test"}, Paths: []string{}}, 0, nil); err != nil || v != 7 {
		t.Fatalf("identical Put: %d %v", v, err)
	}
	// A route takes over from the ids it replaces in one change, conflicts with them ignored.
	if v, err := tb.Put("ns/a/api", Route{Hosts: []string{"app.test"}, Paths: []string{"/api"}}, 7, []string{"ns/a/web", "kamal-missing"}); err != nil || v != 8 {
		t.Fatalf("Put replacing: %d %v", v, err)
	}
	if _, _, ok := tb.Get("ns/a/web"); ok {
		t.Fatal("the replaced route stayed")
	}
	if _, err := tb.Put("ns/a/api", Route{}, 0, []string{"ns/a/api"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a route replacing itself: %v", err)
	}
}

func TestPreconditions(t *testing.T) {
	tb, _, _ := NewTable("")
	v, _ := tb.Put("a", Route{Hosts: []string{"a.test"}}, 0, nil)
	for _, step := range []struct {
		name string
		f    func(int64) (int64, error)
	}{
		{"Put", func(m int64) (int64, error) { return tb.Put("b", Route{Hosts: []string{"b.test"}}, m, nil) }},
		{"SetUpstream", func(m int64) (int64, error) { return tb.SetUpstream("a", "a:80", m) }},
		{"Delete", func(m int64) (int64, error) { return tb.Delete("a", m) }},
	} {
		name, f := step.name, step.f
		cur := tb.Version()
		if got, err := f(cur - 1); !errors.Is(err, ErrPrecondition) || got != cur {
			t.Errorf("%s with a stale version: %d %v", name, got, err)
		}
		if got, err := f(cur); err != nil || got != cur+1 {
			t.Errorf("%s with the current version: %d %v", name, got, err)
		}
	}
	if _, err := tb.SetUpstream("a", "a:80", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetUpstream of a deleted route: %v", err)
	}
	if before := tb.Version(); before != v+3 {
		t.Fatalf("version %d", before)
	}
	if got, err := tb.Delete("missing", 0); err != nil || got != v+3 {
		t.Fatalf("deleting a missing route: %d %v", got, err)
	}
}

func TestTableRefusesBadInput(t *testing.T) {
	tb, _, _ := NewTable("")
	for _, r := range []Route{
		{Upstream: "app"}, {Upstream: "app:"}, {Upstream: ":80"}, {Upstream: "app:http"},
		{Hosts: []string{""}}, {Hosts: []string{"*"}}, {Hosts: []string{"a b"}}, {Hosts: []string{"a.*.test"}},
		{Paths: []string{"api"}}, {Paths: []string{"/a?b"}}, {Paths: []string{"/a*"}}, {Paths: []string{"/%zz"}}, {Paths: []string{"/{x}"}},
		{ResponseTimeout: "soon"}, {MaxRequestBody: -1}, {Owner: "a\nb"},
	} {
		if _, err := tb.Put("a", r, 0, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("Put %+v: %v", r, err)
		}
	}
	for _, id := range []string{"", "A", "a/b", "a/b/c/d", "-a", "a//b", "ns/dep/Web"} {
		if _, err := tb.Put(id, Route{}, 0, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("Put id %q: %v", id, err)
		}
	}
	if v := tb.Version(); v != 1 {
		t.Fatalf("refused changes moved the version to %d", v)
	}
}

func TestRouteIDsInPaths(t *testing.T) {
	for _, c := range []struct {
		rest     string
		id       string
		upstream bool
		bad      bool
	}{
		{"kamal-ns-app-web", "kamal-ns-app-web", false, false},
		{"kamal-ns-app-web/upstream", "kamal-ns-app-web", true, false},
		{"team-a/web/web", "team-a/web/web", false, false},
		{"team-a/web/web/upstream", "team-a/web/web", true, false},
		// A role named "upstream" is a three-label id, never the upstream of a two-label one.
		{"ns/app/upstream", "ns/app/upstream", false, false},
		{"ns/app/upstream/upstream", "ns/app/upstream", true, false},
		{"upstream", "upstream", false, false},
		{"ns/app", "", false, true},
		{"ns/app/web/other", "", false, true},
		{"ns/app/web/", "", false, true},
	} {
		id, up, err := ParseRoutePath(c.rest)
		if (err != nil) != c.bad || id != c.id || up != c.upstream {
			t.Errorf("ParseRoutePath(%q) = %q %v %v", c.rest, id, up, err)
		}
	}
}

func TestTableSavesAndLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", TableFile)
	tb, loaded, err := NewTable(path)
	if err != nil || loaded {
		t.Fatal(loaded, err)
	}
	want := Route{Hosts: []string{"a.test"}, Paths: []string{"/api"}, Upstream: "app-a-1:80", MaxRequestBody: 1 << 20, StripPathPrefix: true,
		ForwardHeaders: true, RequestBuffers: 4096, ResponseBuffers: 8192, ResponseTimeout: "30s", Owner: "ns/a"}
	_, _ = tb.Put("ns/a/web", want, 0, nil)
	_, _ = tb.Put("ns/b/web", Route{Hosts: []string{"b.test"}, Upstream: "app-b-1:3000"}, 0, nil)
	_, _ = tb.Delete("ns/b/web", 0)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	var saved savedTable
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &saved); err != nil || saved.Format != 2 || saved.Version != 4 {
		t.Fatalf("saved %s: %v", b, err)
	}
	again, loaded, err := NewTable(path)
	if err != nil || !loaded {
		t.Fatal(loaded, err)
	}
	v, got := again.Snapshot()
	if v != 4 || len(got) != 1 || !got["ns/a/web"].Equal(want) {
		t.Fatalf("reloaded version %d routes %+v", v, got)
	}
	if m, done := again.Begin("a.test", "/api/x"); m.ID != "ns/a/web" {
		t.Fatalf("the reloaded table routes a.test/api/x to %q", m.ID)
	} else {
		done()
	}
	// A file of another format is an error, not an empty table.
	_ = os.WriteFile(path, []byte(`{"a":"b:80"}`), 0o600)
	if _, _, err := NewTable(path); err == nil {
		t.Fatal("a file of another format loaded")
	}
}

func TestTableCountsInFlightPerUpstream(t *testing.T) {
	tb, _, _ := NewTable("")
	_, _ = tb.Put("a", Route{}, 0, nil)
	if m, done := tb.Begin("x", "/"); m.Route == nil || m.Route.Upstream != "" {
		t.Fatalf("a route without upstream: %+v", m)
	} else {
		done()
	}
	_, _ = tb.SetUpstream("a", "old:80", 0)
	_, done1 := tb.Begin("x", "/")
	_, done2 := tb.Begin("x", "/")
	_, _ = tb.SetUpstream("a", "new:80", 0)
	m3, done3 := tb.Begin("x", "/")
	if m3.Route.Upstream != "new:80" {
		t.Fatalf("after the switch a request went to %q", m3.Route.Upstream)
	}
	if got := tb.InFlight(); got["old:80"] != 2 || got["new:80"] != 1 {
		t.Fatalf("in flight %v", got)
	}
	// The counter of an upstream no route names stays while requests hold it.
	_, _ = tb.SetUpstream("a", "third:80", 0)
	if got := tb.InFlight(); got["old:80"] != 2 {
		t.Fatalf("in flight after another switch %v", got)
	}
	done1()
	done2()
	done3()
	if got := tb.InFlight(); len(got) != 0 {
		t.Fatalf("in flight after all done: %v", got)
	}
}

// copyLegacyFixture puts the files an older proxy left (testdata/legacy: Caddy's autosave as
// the older controller wrote its routes, and the {id: upstream} table) into Caddy's data and
// config directories, with the table's upstreams replaced by upstreams when given. It returns
// the table's bytes.
func copyLegacyFixture(t *testing.T, dataDir, configDir string, upstreams map[string]string) []byte {
	t.Helper()
	autosave, err := os.ReadFile(filepath.Join("testdata", "legacy", "autosave.json"))
	if err != nil {
		t.Fatal(err)
	}
	table, err := os.ReadFile(filepath.Join("testdata", "legacy", LegacyTableFile))
	if err != nil {
		t.Fatal(err)
	}
	if upstreams != nil {
		table, _ = json.Marshal(upstreams)
	}
	for dir, f := range map[string]struct {
		name string
		b    []byte
	}{configDir: {"autosave.json", autosave}, dataDir: {LegacyTableFile, table}} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), f.b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return table
}

func TestOlderProxysRoutesAreImported(t *testing.T) {
	dataDir, configDir := t.TempDir(), t.TempDir()
	table := copyLegacyFixture(t, dataDir, configDir, nil)
	tb, notes, err := OpenTable(dataDir, configDir)
	if err != nil {
		t.Fatal(err)
	}
	v, got := tb.Snapshot()
	want := map[string]Route{
		"kamal-team-a-web-web": {Hosts: []string{"a.test", "www.a.test"}, Upstream: "web-web-v1:80", ForwardHeaders: true, ResponseTimeout: "30s"},
		"kamal-team-a-web-api": {Hosts: []string{"a.test"}, Paths: []string{"/api", "/v2"}, Upstream: "web-api-v2:3000", StripPathPrefix: true,
			MaxRequestBody: 1 << 20, RequestBuffers: 1 << 20, ResponseBuffers: 2 << 20, ResponseTimeout: "45s"},
		"kamal-team-b-blog-web":  {Hosts: []string{"*.blog.test"}, Upstream: "blog-web-abc:8080", ForwardHeaders: true, ResponseTimeout: "10s"},
		"kamal-team-b-catch-web": {Upstream: "catch-web-1:80", ResponseTimeout: "30s"},
	}
	if v != 1 || !reflect.DeepEqual(got, want) {
		t.Fatalf("imported version %d:\n%+v\nwant\n%+v", v, got, want)
	}
	if len(notes) != 1 {
		t.Errorf("notes %q", notes)
	}
	// Nothing is written until the first change, and the older proxy's files never are.
	if _, err := os.Stat(filepath.Join(dataDir, TableFile)); !os.IsNotExist(err) {
		t.Fatalf("the import was saved: %v", err)
	}
	if _, err := tb.Delete("kamal-team-b-catch-web", 0); err != nil {
		t.Fatal(err)
	}
	again, notes, err := OpenTable(dataDir, configDir)
	if err != nil || len(notes) != 0 {
		t.Fatal(notes, err)
	}
	if v, got := again.Snapshot(); v != 2 || len(got) != 3 {
		t.Fatalf("after a change and a restart: version %d, %d routes", v, len(got))
	}
	if b, _ := os.ReadFile(filepath.Join(dataDir, LegacyTableFile)); string(b) != string(table) {
		t.Fatal("the older table was written")
	}

	// No older proxy: an empty table; unreadable files: an empty table and a note.
	empty, notes, err := OpenTable(t.TempDir(), t.TempDir())
	if v, got := empty.Snapshot(); err != nil || len(notes) != 0 || v != 1 || len(got) != 0 {
		t.Fatalf("fresh: %d %v %v %v", v, got, notes, err)
	}
	broken := t.TempDir()
	_ = os.WriteFile(filepath.Join(broken, "autosave.json"), []byte("{"), 0o600)
	if _, notes, err := OpenTable(t.TempDir(), broken); err != nil || len(notes) != 1 {
		t.Fatalf("broken autosave: %v %v", notes, err)
	}
}

// A table saved before RedirectHTTPS existed loads with the field false; one saved with it
// keeps it, and setting it is a change.
func TestRedirectHTTPSKeepsOlderTablesReadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), TableFile)
	older := `{"format":2,"version":3,"routes":{"ns/a/web":{"hosts":["a.test"],"upstream":"app-a-1:80","forwardHeaders":true,"owner":"ns/a"}}}`
	if err := os.WriteFile(path, []byte(older), 0o600); err != nil {
		t.Fatal(err)
	}
	tb, loaded, err := NewTable(path)
	if err != nil || !loaded {
		t.Fatal(loaded, err)
	}
	r, v, ok := tb.Get("ns/a/web")
	if !ok || v != 3 || r.RedirectHTTPS || !r.Equal(Route{Hosts: []string{"a.test"}, Upstream: "app-a-1:80", ForwardHeaders: true, Owner: "ns/a"}) {
		t.Fatalf("older table read as %+v (version %d)", r, v)
	}
	if v, _ := tb.Put("ns/a/web", r, 0, nil); v != 3 {
		t.Fatalf("the same route again changed the version to %d", v)
	}
	r.RedirectHTTPS = true
	if v, err := tb.Put("ns/a/web", r, 0, nil); err != nil || v != 4 {
		t.Fatalf("setting redirectHTTPS: version %d, %v", v, err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `"redirectHTTPS":true`) {
		t.Fatalf("saved %s", b)
	}
	again, _, err := NewTable(path)
	if r, _, _ := again.Get("ns/a/web"); err != nil || !r.RedirectHTTPS {
		t.Fatalf("reloaded %+v %v", r, err)
	}
}
