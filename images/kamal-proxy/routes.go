// Package kamalproxy is the Caddy module of kamal-operator's proxy: every app route lives in a
// table of this module, never in Caddy's config.
//
// Why: every Caddy config change starts new servers and shuts the old ones down gracefully, and
// a connection that an old server accepts while it shuts down can be closed without an answer.
// If creating, changing or removing one app's route changed the config, it would drop requests
// of every other app on the host. So the proxy's config is fixed (internal/proxy.FixedConfig):
// one server on :80 (and one on :443 for TLS) whose only handler is `kamal_router`. The router
// looks the request up in the route table, counts it in flight to the chosen upstream and hands
// it to one of Caddy's own reverse_proxy handlers, kept per distinct route settings, which dials
// "{http.vars.kamal_upstream}". The controller changes the table through the admin API
// (/kamal/routes), so a route change touches no connection.
//
// Matching is deterministic, whatever order routes came in: the request's host picks a tier
// (routes naming that exact host; else wildcard routes "*.<parent>" matching one label; else
// routes naming no host), and within the tier the longest matching path prefix wins. A host
// that a route names is never served by a wildcard or host-less route. Two routes that share a
// host key and a path prefix conflict: the table refuses the second one (409), so no two routes
// can tie.
//
// The table is saved to <data dir>/kamal-routes-v2.json on every change (a new file renamed over
// the old) and read before the servers start, so a restarted proxy routes as before. A proxy that
// finds no such file imports the routes of the older per-route Caddy config (see migrate.go).
//
// HTTPS follows the same rule. Certificates are a table of this module as well (certificates.go,
// /kamal/certificates), served at handshake time through Caddy's get_certificate hook (tls.go)
// and saved to <data dir>/kamal-certificates.json (mode 0600), so installing or renewing one is
// no config change either. ACME HTTP-01 challenge answers (challenges.go, /kamal/challenges) are
// answered by the router before any route; a route with RedirectHTTPS sends plain-HTTP requests
// to https with 308. The ACME client is the controller's: the proxy never asks a CA.
package kamalproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// UpstreamVar is the request variable holding the upstream chosen for the request; the
// reverse_proxy handlers dial "{http.vars.kamal_upstream}".
const UpstreamVar = "kamal_upstream"

// TableFile is the name of the route table in Caddy's data directory.
const TableFile = "kamal-routes-v2.json"

// tableFormat is the format number written into TableFile.
const tableFormat = 2

// Route is one entry of the route table: which requests (hosts, path prefixes) go where
// (upstream, "container:port"), and how they are proxied.
type Route struct {
	// Hosts are exact host names or wildcards "*.example.com" (one label); none: every host no
	// other route names.
	Hosts []string `json:"hosts,omitempty"`
	// Paths are path prefixes: "/api" matches /api and /api/...; none matches every path, after
	// every explicit prefix.
	Paths []string `json:"paths,omitempty"`
	// Upstream is "container:port"; empty answers 502.
	Upstream string `json:"upstream,omitempty"`
	// MaxRequestBody in bytes (0: no limit); a larger body is answered 413.
	MaxRequestBody int64 `json:"maxRequestBody,omitempty"`
	// StripPathPrefix removes the matched prefix from the path sent upstream.
	StripPathPrefix bool `json:"stripPathPrefix,omitempty"`
	// ForwardHeaders trusts the client's X-Forwarded-* headers.
	ForwardHeaders bool `json:"forwardHeaders,omitempty"`
	// RequestBuffers and ResponseBuffers are reverse_proxy's buffer sizes in bytes (0: streamed).
	RequestBuffers  int64 `json:"requestBuffers,omitempty"`
	ResponseBuffers int64 `json:"responseBuffers,omitempty"`
	// ResponseTimeout bounds the wait for the upstream's response headers, e.g. "30s".
	ResponseTimeout string `json:"responseTimeout,omitempty"`
	// RedirectHTTPS answers a plain-HTTP request 308 to the same URL on https (ACME HTTP-01
	// challenges excepted); requests that came over TLS are routed as usual. Tables saved before
	// the field existed read as false.
	RedirectHTTPS bool `json:"redirectHTTPS,omitempty"`
	// Owner is informational ("namespace/deployment").
	Owner string `json:"owner,omitempty"`
}

// Equal says whether two routes are the same.
func (r Route) Equal(o Route) bool {
	return slices.Equal(r.Hosts, o.Hosts) && slices.Equal(r.Paths, o.Paths) && r.settings() == o.settings() &&
		r.Upstream == o.Upstream && r.MaxRequestBody == o.MaxRequestBody && r.StripPathPrefix == o.StripPathPrefix &&
		r.RedirectHTTPS == o.RedirectHTTPS && r.Owner == o.Owner
}

// settings are what shape the route's reverse_proxy handler.
type settings struct {
	ForwardHeaders  bool
	RequestBuffers  int64
	ResponseBuffers int64
	ResponseTimeout string
}

func (r Route) settings() settings {
	return settings{ForwardHeaders: r.ForwardHeaders, RequestBuffers: r.RequestBuffers, ResponseBuffers: r.ResponseBuffers, ResponseTimeout: r.ResponseTimeout}
}

// ErrInvalid is a route, id or upstream the table refuses (400).
var ErrInvalid = errors.New("invalid")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Limits keep one route's index entries bounded.
const (
	maxHosts    = 256
	maxPaths    = 256
	maxHostLen  = 253
	maxPathLen  = 1024
	maxOwnerLen = 253
)

var hostRE = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$`)

// Validate checks a route's fields.
func (r Route) Validate() error {
	if len(r.Hosts) > maxHosts || len(r.Paths) > maxPaths {
		return invalid("at most %d hosts and %d paths", maxHosts, maxPaths)
	}
	for _, h := range r.Hosts {
		if len(h) > maxHostLen || !(hostRE.MatchString(h) || net.ParseIP(strings.Trim(h, "[]")) != nil) {
			return invalid("host %q is not a host name, a wildcard *.<name> or an IP address", h)
		}
	}
	for _, p := range r.Paths {
		if err := validPrefix(p); err != nil {
			return err
		}
	}
	if r.Upstream != "" {
		if err := ValidUpstream(r.Upstream); err != nil {
			return invalid("%v", err)
		}
	}
	if r.MaxRequestBody < 0 || r.RequestBuffers < 0 || r.ResponseBuffers < 0 {
		return invalid("maxRequestBody, requestBuffers and responseBuffers must not be negative")
	}
	if r.ResponseTimeout != "" {
		if d, err := time.ParseDuration(r.ResponseTimeout); err != nil || d < 0 {
			return invalid("responseTimeout %q is not a duration", r.ResponseTimeout)
		}
	}
	if len(r.Owner) > maxOwnerLen || strings.IndexFunc(r.Owner, unicode.IsControl) >= 0 {
		return invalid("owner must be at most %d characters without control characters", maxOwnerLen)
	}
	return nil
}

func validPrefix(p string) error {
	if !strings.HasPrefix(p, "/") || len(p) > maxPathLen || strings.ContainsAny(p, "?#*{}") ||
		strings.IndexFunc(p, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }) >= 0 {
		return invalid("path prefix %q must start with '/', have at most %d characters and no '?', '#', '*', '{', '}' or whitespace", p, maxPathLen)
	}
	if _, err := url.PathUnescape(p); err != nil {
		return invalid("path prefix %q: %v", p, err)
	}
	return nil
}

// ValidUpstream checks that addr is host:port with a non-empty host and a numeric port.
func ValidUpstream(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("upstream %q: %w", addr, err)
	}
	if host == "" || port == "" {
		return fmt.Errorf("upstream %q: want host:port", addr)
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return fmt.Errorf("upstream %q: port is not a number", addr)
		}
	}
	return nil
}

var labelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidID checks a route id: one label ("kamal-team-web-web", as older controllers named
// routes) or three ("namespace/deployment/role"), each lowercase letters, digits and '-'.
// Only odd counts, so "<id>/upstream" (the upstream of a route) is never itself an id.
func ValidID(id string) error {
	segs := strings.Split(id, "/")
	if len(segs) != 1 && len(segs) != 3 {
		return invalid("route id %q must be one label or namespace/deployment/role", id)
	}
	for _, s := range segs {
		if len(s) > maxHostLen || !labelRE.MatchString(s) || (len(segs) == 3 && len(s) > 63) {
			return invalid("route id %q: %q is not a DNS label", id, s)
		}
	}
	return nil
}

// ParseRoutePath splits what follows /kamal/routes/ into the route id and whether it names the
// route's upstream ("<id>/upstream").
func ParseRoutePath(rest string) (id string, upstream bool, err error) {
	if err := ValidID(rest); err == nil {
		return rest, false, nil
	}
	if id, ok := strings.CutSuffix(rest, "/upstream"); ok && ValidID(id) == nil {
		return id, true, nil
	}
	return "", false, ValidID(rest)
}

// hostKey is how a host is compared: lowercase, no trailing dot, no IPv6 brackets.
func hostKey(h string) string {
	return strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
}

// prefixKey is how a path prefix is compared: unescaped, cleaned, lowercase (as Caddy's path
// matcher, which routes used before), no trailing '/'; "" is every path.
func prefixKey(p string) string {
	if u, err := url.PathUnescape(p); err == nil {
		p = u
	}
	p = strings.ToLower(path.Clean("/" + p))
	if p == "/" {
		return ""
	}
	return p
}

// requestHost is the host a request is routed by: lowercase, without port.
func requestHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return hostKey(h)
}

// requestPath is the path a request is routed by: cleaned, lowercase.
func requestPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	return strings.ToLower(path.Clean(p))
}

// key is one (host, path prefix) a route claims; host "" is the host-less tier.
type key struct{ host, prefix string }

func (r *Route) keys() []key {
	hosts, prefixes := []string{""}, []string{""}
	if len(r.Hosts) > 0 {
		hosts = hosts[:0]
		for _, h := range r.Hosts {
			hosts = append(hosts, hostKey(h))
		}
	}
	if len(r.Paths) > 0 {
		prefixes = prefixes[:0]
		for _, p := range r.Paths {
			prefixes = append(prefixes, prefixKey(p))
		}
	}
	var out []key
	for _, h := range hosts {
		for _, p := range prefixes {
			if k := (key{h, p}); !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

// Conflict is a route that shares host keys and path prefixes with another.
type Conflict struct {
	ID    string `json:"id"`
	Owner string `json:"owner,omitempty"`
	// Hosts and Paths are what both claim: host keys ("" for no host) and prefixes ("/" for every
	// path).
	Hosts []string `json:"hosts"`
	Paths []string `json:"paths"`
}

// ConflictError is a route refused because others claim the same host and path (409).
type ConflictError struct {
	ID        string     `json:"id"`
	Conflicts []Conflict `json:"conflicts"`
}

func (e *ConflictError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "route %s conflicts with", e.ID)
	for i, c := range e.Conflicts {
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " route %s", c.ID)
		if c.Owner != "" {
			fmt.Fprintf(&b, " (%s)", c.Owner)
		}
		hosts := c.Hosts
		if len(hosts) == 1 && hosts[0] == "" {
			hosts = []string{"any host"}
		}
		fmt.Fprintf(&b, " on %s %s", strings.Join(hosts, ","), strings.Join(c.Paths, ","))
	}
	return b.String()
}

// ErrPrecondition is a change whose If-Match version is not the table's (412).
var ErrPrecondition = errors.New("the route table's version differs")

// ErrNotFound is a route that does not exist (404).
var ErrNotFound = errors.New("no such route")

// entry is one (host, prefix) of a route in the index.
type entry struct {
	id     string
	route  *Route
	prefix string // prefixKey
	strip  string // the prefix as the route names it, for stripping
}

// index finds a request's route: by exact host, else by wildcard, else host-less; within one,
// entries are ordered longest prefix first (then by id: only routes imported from an older
// proxy can tie).
type index struct {
	exact, wild map[string][]entry
	any         []entry
}

func buildIndex(routes map[string]*Route) index {
	x := index{exact: map[string][]entry{}, wild: map[string][]entry{}}
	for _, id := range slices.Sorted(maps.Keys(routes)) {
		r := routes[id]
		strips := map[string]string{}
		for _, p := range r.Paths {
			if k := prefixKey(p); strips[k] == "" {
				strips[k] = strings.TrimRight(p, "/")
			}
		}
		for _, k := range r.keys() {
			e := entry{id: id, route: r, prefix: k.prefix, strip: strips[k.prefix]}
			switch {
			case k.host == "":
				x.any = append(x.any, e)
			case strings.HasPrefix(k.host, "*."):
				x.wild[k.host] = append(x.wild[k.host], e)
			default:
				x.exact[k.host] = append(x.exact[k.host], e)
			}
		}
	}
	order := func(es []entry) {
		sort.SliceStable(es, func(i, j int) bool { return len(es[i].prefix) > len(es[j].prefix) })
	}
	for _, es := range x.exact {
		order(es)
	}
	for _, es := range x.wild {
		order(es)
	}
	order(x.any)
	return x
}

// tier is the entries that may serve host: the first tier with any route for it.
func (x index) tier(host string) []entry {
	if es := x.exact[host]; len(es) > 0 {
		return es
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		if es := x.wild["*"+host[i:]]; len(es) > 0 {
			return es
		}
	}
	return x.any
}

// match finds the entry for a request host and path (as requestHost and requestPath give them).
func (x index) match(host, p string) (entry, bool) {
	for _, e := range x.tier(host) {
		if e.prefix == "" || p == e.prefix || strings.HasPrefix(p, e.prefix+"/") {
			return e, true
		}
	}
	return entry{}, false
}

// state is one version of the table; never changed once published.
type state struct {
	version int64
	routes  map[string]*Route
	idx     index
}

func newState(version int64, routes map[string]*Route) *state {
	return &state{version: version, routes: routes, idx: buildIndex(routes)}
}

// Table holds the routes and counts the requests in flight per upstream.
type Table struct {
	// writeMu serializes changes, saves included; mu guards the published state and the
	// counters, and is held for writing only to swap them.
	writeMu  sync.Mutex
	mu       sync.RWMutex
	st       *state
	inflight map[string]*atomic.Int64
	path     string // where the table is saved; "" keeps it in memory only
}

// savedTable is TableFile's content.
type savedTable struct {
	Format  int              `json:"format"`
	Version int64            `json:"version"`
	Routes  map[string]Route `json:"routes"`
}

// NewTable returns a table saved at path, loaded from it when it exists (loaded reports that).
// Versions start at 1, so 0 never names one.
func NewTable(path string) (t *Table, loaded bool, err error) {
	t = &Table{inflight: map[string]*atomic.Int64{}, path: path}
	t.publish(newState(1, map[string]*Route{}))
	if path == "" {
		return t, false, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return t, false, nil
	case err != nil:
		return nil, false, err
	}
	var saved savedTable
	if err := json.Unmarshal(b, &saved); err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", path, err)
	}
	if saved.Format != tableFormat {
		return nil, false, fmt.Errorf("reading %s: format %d, want %d", path, saved.Format, tableFormat)
	}
	routes := map[string]*Route{}
	for id, r := range saved.Routes {
		if err := ValidID(id); err != nil {
			return nil, false, fmt.Errorf("reading %s: %w", path, err)
		}
		r := r
		routes[id] = &r
	}
	t.publish(newState(max(saved.Version, 1), routes))
	return t, true, nil
}

// publish makes st the table's state, with a counter for each of its upstreams; counters at
// zero that no route names any more go.
func (t *Table) publish(st *state) {
	t.mu.Lock()
	defer t.mu.Unlock()
	used := map[string]bool{}
	for _, r := range st.routes {
		if r.Upstream != "" {
			used[r.Upstream] = true
			if t.inflight[r.Upstream] == nil {
				t.inflight[r.Upstream] = new(atomic.Int64)
			}
		}
	}
	for up, n := range t.inflight {
		if !used[up] && n.Load() == 0 {
			delete(t.inflight, up)
		}
	}
	t.st = st
}

func (t *Table) current() *state {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.st
}

// Snapshot returns the version and a copy of every route.
func (t *Table) Snapshot() (int64, map[string]Route) {
	st := t.current()
	out := make(map[string]Route, len(st.routes))
	for id, r := range st.routes {
		out[id] = *r
	}
	return st.version, out
}

// Get returns route id and the table's version.
func (t *Table) Get(id string) (Route, int64, bool) {
	st := t.current()
	r, ok := st.routes[id]
	if !ok {
		return Route{}, st.version, false
	}
	return *r, st.version, true
}

// Version is the table's version; it grows by one with every change.
func (t *Table) Version() int64 { return t.current().version }

// change applies edit to a copy of the routes (under writeMu), saves and publishes it. edit
// returns false when nothing changes: the version stays.
func (t *Table) change(ifMatch int64, edit func(cur *state, routes map[string]*Route) (bool, error)) (int64, error) {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	cur := t.current()
	if ifMatch != 0 && ifMatch != cur.version {
		return cur.version, ErrPrecondition
	}
	routes := maps.Clone(cur.routes)
	changed, err := edit(cur, routes)
	if err != nil || !changed {
		return cur.version, err
	}
	next := newState(cur.version+1, routes)
	if err := t.save(next); err != nil {
		return cur.version, err
	}
	t.publish(next)
	return next.version, nil
}

// Put adds or replaces route id, and removes the routes replaces names in the same change (so a
// route can take over from an older id without a moment in between). It refuses a route that
// shares a host and path prefix with another (a *ConflictError), and with ifMatch other than 0
// a table whose version is not ifMatch (ErrPrecondition). An identical route is no change.
func (t *Table) Put(id string, r Route, ifMatch int64, replaces []string) (int64, error) {
	if err := ValidID(id); err != nil {
		return 0, err
	}
	for _, old := range replaces {
		if err := ValidID(old); err != nil {
			return 0, err
		}
		if old == id {
			return 0, invalid("route %s cannot replace itself", id)
		}
	}
	r = normalized(r)
	if err := r.Validate(); err != nil {
		return 0, err
	}
	return t.change(ifMatch, func(cur *state, routes map[string]*Route) (bool, error) {
		changed := false
		for _, old := range replaces {
			if _, ok := routes[old]; ok {
				delete(routes, old)
				changed = true
			}
		}
		if prev, ok := routes[id]; ok && prev.Equal(r) && !changed {
			return false, nil
		}
		delete(routes, id)
		if cs := conflicts(routes, &r); len(cs) > 0 {
			return false, &ConflictError{ID: id, Conflicts: cs}
		}
		routes[id] = &r
		return true, nil
	})
}

// SetUpstream points route id at upstream ("" answers 502): from the next request on, the route
// goes there. ErrNotFound when there is no such route.
func (t *Table) SetUpstream(id, upstream string, ifMatch int64) (int64, error) {
	if upstream != "" {
		if err := ValidUpstream(upstream); err != nil {
			return 0, invalid("%v", err)
		}
	}
	return t.change(ifMatch, func(_ *state, routes map[string]*Route) (bool, error) {
		prev, ok := routes[id]
		if !ok {
			return false, ErrNotFound
		}
		if prev.Upstream == upstream {
			return false, nil
		}
		r := *prev
		r.Upstream = upstream
		routes[id] = &r
		return true, nil
	})
}

// Delete removes route id; a missing one is no change.
func (t *Table) Delete(id string, ifMatch int64) (int64, error) {
	return t.change(ifMatch, func(_ *state, routes map[string]*Route) (bool, error) {
		if _, ok := routes[id]; !ok {
			return false, nil
		}
		delete(routes, id)
		return true, nil
	})
}

// normalized drops empty lists, so a route reads the same however it was written.
func normalized(r Route) Route {
	if len(r.Hosts) == 0 {
		r.Hosts = nil
	}
	if len(r.Paths) == 0 {
		r.Paths = nil
	}
	return r
}

// conflicts lists the routes that claim one of r's (host, prefix) keys, by id.
func conflicts(routes map[string]*Route, r *Route) []Conflict {
	mine := r.keys()
	var out []Conflict
	for _, id := range slices.Sorted(maps.Keys(routes)) {
		other := routes[id]
		var c Conflict
		for _, k := range other.keys() {
			if !slices.Contains(mine, k) {
				continue
			}
			if !slices.Contains(c.Hosts, k.host) {
				c.Hosts = append(c.Hosts, k.host)
			}
			p := k.prefix
			if p == "" {
				p = "/"
			}
			if !slices.Contains(c.Paths, p) {
				c.Paths = append(c.Paths, p)
			}
		}
		if len(c.Hosts) > 0 {
			c.ID, c.Owner = id, other.Owner
			out = append(out, c)
		}
	}
	return out
}

// save writes st atomically: a new file, synced, renamed over the old one.
func (t *Table) save(st *state) error {
	if t.path == "" {
		return nil
	}
	saved := savedTable{Format: tableFormat, Version: st.version, Routes: make(map[string]Route, len(st.routes))}
	for id, r := range st.routes {
		saved.Routes[id] = *r
	}
	b, err := json.Marshal(saved)
	if err != nil {
		return err
	}
	return writeFileAtomic(t.path, b)
}

// writeFileAtomic writes b to path, mode 0600: a new file, synced, renamed over the old one, so
// a reader (or a proxy starting after a crash) finds the old content or the new, never a part.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Match is the route a request goes to.
type Match struct {
	ID    string
	Route *Route
	// Strip is the matched path prefix as the route names it ("" when the route matched as a
	// catch-all path).
	Strip string
}

// Begin finds the route of a request (host as sent, URL path) and counts the request in flight
// to the route's upstream until the returned done is called. The count is taken under the same
// lock as the lookup, and a change swaps the state under that lock held for writing: once a
// change returns, every request that picked the previous upstream is already counted, so a drain
// that reads InFlight after a switch misses none. A zero Match is no route.
func (t *Table) Begin(host, urlPath string) (Match, func()) {
	h, p := requestHost(host), requestPath(urlPath)
	t.mu.RLock()
	e, ok := t.st.idx.match(h, p)
	var n *atomic.Int64
	if ok && e.route.Upstream != "" {
		n = t.inflight[e.route.Upstream]
		n.Add(1)
	}
	t.mu.RUnlock()
	if !ok {
		return Match{}, func() {}
	}
	m := Match{ID: e.id, Route: e.route, Strip: e.strip}
	if n == nil {
		return m, func() {}
	}
	return m, func() { n.Add(-1) }
}

// InFlight returns the requests in flight per upstream, for upstreams with any.
func (t *Table) InFlight() map[string]int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := map[string]int64{}
	for up, n := range t.inflight {
		if v := n.Load(); v > 0 {
			out[up] = v
		}
	}
	return out
}
