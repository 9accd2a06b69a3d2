// Package kamalproxy is the Caddy module of kamal-operator's proxy. It lets the controller move a
// route from one container to another without a Caddy config change.
//
// Why: every config change makes Caddy start new servers and shut the old ones down gracefully.
// A client connection that an old server accepts while it shuts down can be closed without an
// answer, so a deploy could fail a request. Here a route's config never changes during a deploy:
// its handler `kamal_route` looks up the route's current upstream in a table at request time,
// and the controller switches the table entry through the admin API (PUT /kamal/routes/<id>).
// The same handler counts requests in flight per upstream, so the controller knows when an old
// container has drained.
//
// The table is saved to <data dir>/kamal-routes.json on every change and read at start, so a
// restarted proxy routes as before.
package kamalproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// UpstreamVar is the request variable holding the upstream chosen for the request; the route's
// reverse_proxy dials "{http.vars.kamal_upstream}".
const UpstreamVar = "kamal_upstream"

// Table maps route ids to upstream addresses ("container:port") and counts the requests in
// flight per upstream.
type Table struct {
	mu       sync.RWMutex
	routes   map[string]string
	inflight map[string]*atomic.Int64
	path     string // where the routes are saved; "" keeps them in memory only
}

// NewTable returns a table saved at path (loaded from it when it exists).
func NewTable(path string) (*Table, error) {
	t := &Table{routes: map[string]string{}, inflight: map[string]*atomic.Int64{}, path: path}
	if path == "" {
		return t, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return t, nil
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(b, &t.routes); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if t.routes == nil {
		t.routes = map[string]string{}
	}
	return t, nil
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

// Get returns the upstream of route id, "" when there is none.
func (t *Table) Get(id string) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.routes[id]
}

// All returns a copy of every route.
func (t *Table) All() map[string]string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make(map[string]string, len(t.routes))
	for k, v := range t.routes {
		out[k] = v
	}
	return out
}

// Set points route id at upstream; from the next request on, the route goes there.
func (t *Table) Set(id, upstream string) error {
	if err := ValidUpstream(upstream); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.routes[id] == upstream {
		return nil
	}
	prev, had := t.routes[id]
	t.routes[id] = upstream
	if err := t.saveLocked(); err != nil {
		if had {
			t.routes[id] = prev
		} else {
			delete(t.routes, id)
		}
		return err
	}
	return nil
}

// Delete removes route id; a missing one is no error.
func (t *Table) Delete(id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	prev, had := t.routes[id]
	if !had {
		return nil
	}
	delete(t.routes, id)
	if err := t.saveLocked(); err != nil {
		t.routes[id] = prev
		return err
	}
	return nil
}

// saveLocked writes the routes atomically (a new file renamed over the old one).
func (t *Table) saveLocked() error {
	if t.path == "" {
		return nil
	}
	b, err := json.Marshal(t.routes)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(t.path), 0o700); err != nil {
		return err
	}
	tmp := t.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, t.path)
}

// Begin picks route id's upstream for one request and counts it in flight until the returned
// done is called. It returns "" (and a no-op done) when the route has no upstream. The count
// is taken under the same lock as the pick, so once Set returns, every request that picked
// the previous upstream is already counted: a drain that reads InFlight after a switch misses
// none.
func (t *Table) Begin(id string) (upstream string, done func()) {
	t.mu.RLock()
	upstream = t.routes[id]
	n := t.inflight[upstream]
	if upstream != "" && n != nil {
		n.Add(1)
	}
	t.mu.RUnlock()
	if upstream == "" {
		return "", func() {}
	}
	if n == nil {
		t.mu.Lock()
		if upstream = t.routes[id]; upstream == "" {
			t.mu.Unlock()
			return "", func() {}
		}
		if n = t.inflight[upstream]; n == nil {
			n = new(atomic.Int64)
			t.inflight[upstream] = n
		}
		n.Add(1)
		t.mu.Unlock()
	}
	return upstream, func() { n.Add(-1) }
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
