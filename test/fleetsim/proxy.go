package fleetsim

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kamal-operator/kamal-operator/internal/proxy"
)

// proxyState is what one host's kamal-proxy keeps: its route table (in its data volume, so it
// outlives the container), certificates and challenge answers.
type proxyState struct {
	mu         sync.Mutex
	version    int64
	routes     map[string]proxy.Route
	certs      map[string]proxy.Certificate
	challenges map[string]bool
}

func newProxyState() *proxyState {
	return &proxyState{version: 1, routes: map[string]proxy.Route{}, certs: map[string]proxy.Certificate{}, challenges: map[string]bool{}}
}

// versionHeader is the module's route table version header (images/kamal-proxy).
const versionHeader = "Kamal-Routes-Version"

// adminHandler serves the subset of kamal-proxy's admin API (images/kamal-proxy caddy.go)
// the controller calls, with the module's answers: versions on every route table answer,
// 409 with the conflicting routes, 412 on a stale If-Match, strict decoding of bodies.
func (f *Fleet) adminHandler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, fn func(w http.ResponseWriter, r *http.Request, h *Host)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			h := hostOf(r)
			// Route ids hold slashes (namespace/deployment/role): {id...} in the pattern, {id}
			// in the template.
			tmpl := strings.Replace(pattern, "{id...}", "{id}", 1)
			if _, up := strings.CutSuffix(r.PathValue("id"), "/upstream"); up && strings.HasPrefix(pattern, "PUT /kamal/routes/") {
				tmpl += "/upstream"
			}
			h.record("proxy " + tmpl)
			if d := h.Faults().Slow; d > 0 {
				time.Sleep(d)
			}
			fn(w, r, h)
		})
	}
	route("GET /kamal/routes", func(w http.ResponseWriter, r *http.Request, h *Host) {
		p := h.proxy
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set(versionHeader, strconv.FormatInt(p.version, 10))
		writeJSON(w, http.StatusOK, proxy.RouteTable{Version: p.version, Routes: p.routes})
	})
	route("GET /kamal/routes/{id...}", func(w http.ResponseWriter, r *http.Request, h *Host) {
		p := h.proxy
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set(versionHeader, strconv.FormatInt(p.version, 10))
		rt, ok := p.routes[r.PathValue("id")]
		if !ok {
			caddyError(w, http.StatusNotFound, "no route %s", r.PathValue("id"))
			return
		}
		writeJSON(w, http.StatusOK, rt)
	})
	route("PUT /kamal/routes/{id...}", func(w http.ResponseWriter, r *http.Request, h *Host) {
		if id, up := strings.CutSuffix(r.PathValue("id"), "/upstream"); up {
			var b struct {
				Upstream string `json:"upstream"`
			}
			if !decodeStrict(w, r, &b) {
				return
			}
			h.proxy.change(w, r, id, func(p *proxyState) (bool, error) {
				rt, ok := p.routes[id]
				if !ok {
					return false, errNoRoute
				}
				if rt.Upstream == b.Upstream {
					return false, nil
				}
				rt.Upstream = b.Upstream
				p.routes[id] = rt
				return true, nil
			})
			return
		}
		var b struct {
			proxy.Route
			Replaces []string `json:"replaces,omitempty"`
		}
		if !decodeStrict(w, r, &b) {
			return
		}
		id := r.PathValue("id")
		h.proxy.change(w, r, id, func(p *proxyState) (bool, error) { return p.put(id, b.Route, b.Replaces) })
	})
	route("DELETE /kamal/routes/{id...}", func(w http.ResponseWriter, r *http.Request, h *Host) {
		id := r.PathValue("id")
		h.proxy.change(w, r, id, func(p *proxyState) (bool, error) {
			if _, ok := p.routes[id]; !ok {
				return false, nil
			}
			delete(p.routes, id)
			return true, nil
		})
	})
	route("GET /kamal/inflight", func(w http.ResponseWriter, r *http.Request, h *Host) {
		writeJSON(w, http.StatusOK, map[string]int{}) // no simulated traffic: nothing in flight
	})
	route("POST /kamal/probe", func(w http.ResponseWriter, r *http.Request, h *Host) {
		var b struct{ Upstream, Path, Timeout string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&b); err != nil {
			caddyError(w, http.StatusBadRequest, "decoding body: %v", err)
			return
		}
		name, _, ok := strings.Cut(b.Upstream, ":")
		if !ok || !strings.HasPrefix(b.Path, "/") {
			caddyError(w, http.StatusBadRequest, "upstream %q or path %q invalid", b.Upstream, b.Path)
			return
		}
		if up, why := h.engine.answeringName(name, h.fleet.Delays().Health); !up {
			writeJSON(w, http.StatusOK, map[string]any{"error": why})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": http.StatusOK})
	})
	route("GET /config/apps/http/servers/{server}/routes", func(w http.ResponseWriter, r *http.Request, h *Host) {
		if s := r.PathValue("server"); s != proxy.ServerName && s != proxy.TLSServerName {
			caddyError(w, http.StatusNotFound, "unknown server %s", s)
			return
		}
		writeJSON(w, http.StatusOK, []any{map[string]any{"handle": []any{map[string]any{"handler": "kamal_router"}}}})
	})
	route("GET /kamal/certificates", func(w http.ResponseWriter, r *http.Request, h *Host) {
		p := h.proxy
		p.mu.Lock()
		defer p.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"certificates": p.certs})
	})
	route("PUT /kamal/certificates/{id...}", func(w http.ResponseWriter, r *http.Request, h *Host) {
		var b struct{ Chain, Key string }
		if !decodeStrict(w, r, &b) {
			return
		}
		c, err := describeCertificate([]byte(b.Chain))
		if err != nil {
			caddyError(w, http.StatusBadRequest, "%v", err)
			return
		}
		p := h.proxy
		p.mu.Lock()
		p.certs[r.PathValue("id")] = c
		p.mu.Unlock()
		writeJSON(w, http.StatusOK, c)
	})
	route("DELETE /kamal/certificates/{id...}", func(w http.ResponseWriter, r *http.Request, h *Host) {
		p := h.proxy
		p.mu.Lock()
		delete(p.certs, r.PathValue("id"))
		p.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{})
	})
	route("PUT /kamal/challenges/{token}", func(w http.ResponseWriter, r *http.Request, h *Host) {
		var b struct {
			KeyAuthorization string   `json:"keyAuthorization"`
			Hosts            []string `json:"hosts"`
		}
		if !decodeStrict(w, r, &b) {
			return
		}
		p := h.proxy
		p.mu.Lock()
		p.challenges[r.PathValue("token")] = true
		p.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{})
	})
	route("DELETE /kamal/challenges/{token}", func(w http.ResponseWriter, r *http.Request, h *Host) {
		p := h.proxy
		p.mu.Lock()
		delete(p.challenges, r.PathValue("token"))
		p.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notImplemented(w, r, "proxy") })
	return mux
}

// caddyError answers as Caddy's admin API answers an error.
func caddyError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// decodeStrict refuses unknown fields, as the module does: a field the controller sends that
// the module does not know fails here as it fails there.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		caddyError(w, http.StatusBadRequest, "decoding body: %v", err)
		return false
	}
	return true
}

var errNoRoute = fmt.Errorf("no such route")

type preconditionError struct{}

func (preconditionError) Error() string { return "the route table changed" }

// change applies edit under If-Match and answers with the table's version.
func (p *proxyState) change(w http.ResponseWriter, r *http.Request, id string, edit func(*proxyState) (bool, error)) {
	var ifMatch int64
	if s := r.Header.Get("If-Match"); s != "" {
		v, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(s), `"`), 10, 64)
		if err != nil || v <= 0 {
			caddyError(w, http.StatusBadRequest, "If-Match %q is not a table version", s)
			return
		}
		ifMatch = v
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w.Header().Set(versionHeader, strconv.FormatInt(p.version, 10))
	if ifMatch != 0 && ifMatch != p.version {
		writeJSON(w, http.StatusPreconditionFailed, map[string]any{"error": "the route table changed", "version": p.version})
		return
	}
	changed, err := edit(p)
	var ce *proxy.ConflictError
	switch {
	case err == errNoRoute:
		caddyError(w, http.StatusNotFound, "no route %s", id)
		return
	case asConflict(err, &ce):
		writeJSON(w, http.StatusConflict, struct {
			Error string `json:"error"`
			*proxy.ConflictError
		}{err.Error(), ce})
		return
	case err != nil:
		caddyError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if changed {
		p.version++
		w.Header().Set(versionHeader, strconv.FormatInt(p.version, 10))
	}
	writeJSON(w, http.StatusOK, map[string]int64{"version": p.version})
}

func asConflict(err error, ce **proxy.ConflictError) bool {
	c, ok := err.(*proxy.ConflictError)
	if ok {
		*ce = c
	}
	return ok
}

// put is the module's Table.Put: replaces go in the same change, an identical route is no
// change, a route claiming a host and path prefix another route claims is refused.
func (p *proxyState) put(id string, r proxy.Route, replaces []string) (bool, error) {
	if r.Upstream != "" && !strings.Contains(r.Upstream, ":") {
		return false, fmt.Errorf("upstream %q is not host:port", r.Upstream)
	}
	routes := make(map[string]proxy.Route, len(p.routes))
	for k, v := range p.routes {
		routes[k] = v
	}
	changed := false
	for _, old := range replaces {
		if old == id {
			return false, fmt.Errorf("route %s cannot replace itself", id)
		}
		if _, ok := routes[old]; ok {
			delete(routes, old)
			changed = true
		}
	}
	if prev, ok := routes[id]; ok && prev.Equal(r) && !changed {
		return false, nil
	}
	delete(routes, id)
	var cs []proxy.RouteConflict
	ids := make([]string, 0, len(routes))
	for k := range routes {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	for _, other := range ids {
		o := routes[other]
		hosts, paths := overlap(keys(r.Hosts, ""), keys(o.Hosts, "")), overlap(keys(r.Paths, "/"), keys(o.Paths, "/"))
		if len(hosts) > 0 && len(paths) > 0 {
			cs = append(cs, proxy.RouteConflict{ID: other, Owner: o.Owner, Hosts: hosts, Paths: paths})
		}
	}
	if len(cs) > 0 {
		return false, &proxy.ConflictError{ID: id, Conflicts: cs}
	}
	routes[id] = r
	p.routes = routes
	return true, nil
}

func keys(list []string, none string) []string {
	if len(list) == 0 {
		return []string{none}
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = strings.ToLower(s)
	}
	return out
}

func overlap(a, b []string) []string {
	var out []string
	for _, s := range a {
		if slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// describeCertificate reads the leaf of a PEM chain as the module describes it.
func describeCertificate(chain []byte) (proxy.Certificate, error) {
	block, _ := pem.Decode(chain)
	if block == nil {
		return proxy.Certificate{}, fmt.Errorf("no PEM certificate in the chain")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return proxy.Certificate{}, err
	}
	sum := sha256.Sum256(leaf.Raw)
	names := make([]string, 0, len(leaf.DNSNames))
	for _, n := range leaf.DNSNames {
		names = append(names, strings.ToLower(n))
	}
	sort.Strings(names)
	return proxy.Certificate{Names: names, Serial: strings.ToLower(leaf.SerialNumber.Text(16)), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
		SHA256: hex.EncodeToString(sum[:])}, nil
}

// appHandler is every app container: 200 on any path once it answers at all (openTCP lets a
// connection through only after Delays.Health).
func appHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := hostOf(r)
		h.record("app " + r.Method)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintf(w, "fleetsim %s %s\n", h.Name, r.URL.Path)
	})
}
