package kamalproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/requestbody"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/rewrite"
)

func init() {
	caddy.RegisterModule(Admin{})
	caddy.RegisterModule(Router{})
}

// One instance of the tables per data directory, living as long as the process: the admin API,
// the router and the certificate manager share it, and a config reload keeps it.
var (
	instancesMu sync.Mutex
	instances   = map[string]*instance{}
)

// instance is the module's state: routes, certificates and ACME challenge answers.
type instance struct {
	routes       *Table
	certificates *CertTable
	challenges   *Challenges
}

func shared() (*instance, error) {
	dir := caddy.AppDataDir()
	instancesMu.Lock()
	defer instancesMu.Unlock()
	if in := instances[dir]; in != nil {
		return in, nil
	}
	t, notes, err := OpenTable(dir, caddy.AppConfigDir())
	if err != nil {
		return nil, err
	}
	certs, certNotes := OpenCertificates(filepath.Join(dir, CertificatesFile))
	for _, n := range append(notes, certNotes...) {
		caddy.Log().Named("kamal").Warn(n)
	}
	in := &instance{routes: t, certificates: certs, challenges: NewChallenges()}
	instances[dir] = in
	return in, nil
}

func sharedTable() (*Table, error) {
	in, err := shared()
	if err != nil {
		return nil, err
	}
	return in.routes, nil
}

// VersionHeader carries the table's version on every /kamal/routes answer, errors included; an
// answer without it comes from an older module.
const VersionHeader = "Kamal-Routes-Version"

// Admin serves the route table on Caddy's admin API (ids: ValidID; If-Match: a table version,
// refusing the change with 412 when the table has another):
//
//	GET    /kamal/routes               {"version": n, "routes": {"<id>": route}}
//	GET    /kamal/routes/<id>          the route; 404 when there is none
//	PUT    /kamal/routes/<id>          body: route, plus "replaces": [ids] removed in the same
//	                                   change; If-Match optional. {"version": n}; 409 with
//	                                   {"error", "id", "conflicts": [{id, owner, hosts, paths}]}
//	                                   when other routes claim the same host and path prefix
//	PUT    /kamal/routes/<id>/upstream body {"upstream": "<host:port>"}: switch the route; 404
//	                                   when there is none
//	DELETE /kamal/routes/<id>          a missing route is no error; If-Match optional
//	GET    /kamal/inflight             requests in flight per upstream: {"<host:port>": n}
//	POST   /kamal/probe                body {"upstream", "path", "timeout"}: GET path on upstream
//	                                   from the proxy; answers {"status": n} or {"error": "…"}
//
// A change that changes nothing (an identical PUT, a DELETE of a missing route) keeps the
// version. A 412 answers {"error", "version"}.
//
// Certificates (ids: ValidCertID) and ACME challenge answers (see certificates.go and
// challenges.go) have no versions:
//
//	GET    /kamal/certificates           {"certificates": {"<id>": info}}: names, serial,
//	                                     notBefore, notAfter, sha256, shadowed; never a key
//	GET    /kamal/certificates/<id>      info; 404 when there is none
//	PUT    /kamal/certificates/<id>      body {"chain": PEM, leaf first, "key": PEM}: info
//	DELETE /kamal/certificates/<id>      a missing certificate is no error
//	PUT    /kamal/challenges/<token>     body {"keyAuthorization", "hosts": [names]}
//	DELETE /kamal/challenges/<token>     a missing answer is no error
type Admin struct{}

// CaddyModule returns the Caddy module information.
func (Admin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.kamal", New: func() caddy.Module { return new(Admin) }}
}

// Routes returns the admin routes.
func (Admin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/kamal/routes", Handler: caddy.AdminHandlerFunc(serveRoutes)},
		{Pattern: "/kamal/routes/", Handler: caddy.AdminHandlerFunc(serveRoutes)},
		{Pattern: "/kamal/inflight", Handler: caddy.AdminHandlerFunc(serveInFlight)},
		{Pattern: "/kamal/probe", Handler: caddy.AdminHandlerFunc(serveProbe)},
		{Pattern: "/kamal/certificates", Handler: caddy.AdminHandlerFunc(serveCertificates)},
		{Pattern: "/kamal/certificates/", Handler: caddy.AdminHandlerFunc(serveCertificates)},
		{Pattern: "/kamal/challenges/", Handler: caddy.AdminHandlerFunc(serveChallenges)},
	}
}

func apiError(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

func writeStatusJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// TableAnswer is GET /kamal/routes.
type TableAnswer struct {
	Version int64            `json:"version"`
	Routes  map[string]Route `json:"routes"`
}

// putBody is PUT /kamal/routes/<id>.
type putBody struct {
	Route
	Replaces []string `json:"replaces,omitempty"`
}

type versionAnswer struct {
	Version int64 `json:"version"`
}

// decodeStrict reads a JSON body of at most 1 MiB, refusing unknown fields: a field this module
// does not know would otherwise be dropped without a word.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiError(http.StatusBadRequest, "decoding body: %v", err)
	}
	return nil
}

func parseIfMatch(h string) (int64, error) {
	if h == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(h), `"`), 10, 64)
	if err != nil || v <= 0 {
		return 0, apiError(http.StatusBadRequest, "If-Match %q is not a table version", h)
	}
	return v, nil
}

func serveRoutes(w http.ResponseWriter, r *http.Request) error {
	t, err := sharedTable()
	if err != nil {
		return apiError(http.StatusInternalServerError, "route table: %v", err)
	}
	w.Header().Set(VersionHeader, strconv.FormatInt(t.Version(), 10))
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/kamal/routes"), "/")
	if rest == "" {
		if r.Method != http.MethodGet {
			return apiError(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
		}
		v, routes := t.Snapshot()
		w.Header().Set(VersionHeader, strconv.FormatInt(v, 10))
		return writeJSON(w, TableAnswer{Version: v, Routes: routes})
	}
	id, upstream, err := ParseRoutePath(rest)
	if err != nil {
		return apiError(http.StatusBadRequest, "%v", err)
	}
	ifMatch, err := parseIfMatch(r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	var version int64
	switch {
	case upstream && r.Method == http.MethodPut:
		var b struct {
			Upstream string `json:"upstream"`
		}
		if err := decodeStrict(w, r, &b); err != nil {
			return err
		}
		version, err = t.SetUpstream(id, b.Upstream, ifMatch)
	case upstream:
		return apiError(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	case r.Method == http.MethodGet:
		route, v, ok := t.Get(id)
		w.Header().Set(VersionHeader, strconv.FormatInt(v, 10))
		if !ok {
			return apiError(http.StatusNotFound, "no route %s", id)
		}
		return writeJSON(w, route)
	case r.Method == http.MethodPut:
		var b putBody
		if err := decodeStrict(w, r, &b); err != nil {
			return err
		}
		version, err = t.Put(id, b.Route, ifMatch, b.Replaces)
	case r.Method == http.MethodDelete:
		version, err = t.Delete(id, ifMatch)
	default:
		return apiError(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	}
	if version > 0 {
		w.Header().Set(VersionHeader, strconv.FormatInt(version, 10))
	}
	var conflict *ConflictError
	switch {
	case err == nil:
		return writeJSON(w, versionAnswer{Version: version})
	case errors.As(err, &conflict):
		return writeStatusJSON(w, http.StatusConflict, struct {
			Error string `json:"error"`
			*ConflictError
		}{err.Error(), conflict})
	case errors.Is(err, ErrPrecondition):
		return writeStatusJSON(w, http.StatusPreconditionFailed, struct {
			Error   string `json:"error"`
			Version int64  `json:"version"`
		}{fmt.Sprintf("%v: it is %d, If-Match says %d", err, version, ifMatch), version})
	case errors.Is(err, ErrNotFound):
		return apiError(http.StatusNotFound, "no route %s", id)
	case errors.Is(err, ErrInvalid):
		return apiError(http.StatusBadRequest, "%v", err)
	default:
		return apiError(http.StatusInternalServerError, "saving the route table: %v", err)
	}
}

func serveInFlight(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return apiError(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	}
	t, err := sharedTable()
	if err != nil {
		return apiError(http.StatusInternalServerError, "route table: %v", err)
	}
	return writeJSON(w, t.InFlight())
}

// CertificatesAnswer is GET /kamal/certificates.
type CertificatesAnswer struct {
	Certificates map[string]CertificateInfo `json:"certificates"`
}

// certificateBody is PUT /kamal/certificates/<id>.
type certificateBody struct {
	Chain string `json:"chain"`
	Key   string `json:"key"`
}

func serveCertificates(w http.ResponseWriter, r *http.Request) error {
	in, err := shared()
	if err != nil {
		return apiError(http.StatusInternalServerError, "route table: %v", err)
	}
	certs := in.certificates
	id := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/kamal/certificates"), "/")
	if id == "" {
		if r.Method != http.MethodGet {
			return apiError(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
		}
		return writeJSON(w, CertificatesAnswer{Certificates: certs.List()})
	}
	if err := ValidCertID(id); err != nil {
		return apiError(http.StatusBadRequest, "%v", err)
	}
	switch r.Method {
	case http.MethodGet:
		info, ok := certs.Info(id)
		if !ok {
			return apiError(http.StatusNotFound, "no certificate %s", id)
		}
		return writeJSON(w, info)
	case http.MethodPut:
		var b certificateBody
		if err := decodeStrict(w, r, &b); err != nil {
			return err
		}
		info, err := certs.Put(id, []byte(b.Chain), []byte(b.Key))
		if err != nil {
			return changeError(err, "certificate "+id)
		}
		return writeJSON(w, info)
	case http.MethodDelete:
		if err := certs.Delete(id); err != nil {
			return changeError(err, "certificate "+id)
		}
		return writeJSON(w, struct{}{})
	}
	return apiError(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
}

func serveChallenges(w http.ResponseWriter, r *http.Request) error {
	in, err := shared()
	if err != nil {
		return apiError(http.StatusInternalServerError, "route table: %v", err)
	}
	token := strings.TrimPrefix(r.URL.Path, "/kamal/challenges/")
	switch r.Method {
	case http.MethodPut:
		var b Challenge
		if err := decodeStrict(w, r, &b); err != nil {
			return err
		}
		err = in.challenges.Put(token, b)
	case http.MethodDelete:
		err = in.challenges.Delete(token)
	default:
		return apiError(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	}
	if err != nil {
		return changeError(err, "challenge "+token)
	}
	return writeJSON(w, struct{}{})
}

// changeError is the answer to a refused certificate or challenge change.
func changeError(err error, what string) error {
	switch {
	case errors.Is(err, ErrInvalid):
		return apiError(http.StatusBadRequest, "%v", err)
	case errors.Is(err, ErrTooManyChallenges):
		return apiError(http.StatusServiceUnavailable, "%v", err)
	}
	return apiError(http.StatusInternalServerError, "saving %s: %v", what, err)
}

// Router (`kamal_router`) is the one handler of the proxy's fixed config: it finds the
// request's route in the table, counts it in flight to the route's upstream, applies the route's
// path stripping and body limit, and hands it to a reverse_proxy handler for the route's
// settings that dials "{http.vars.kamal_upstream}". No route: 404; a route without upstream: 502.
// Before that, it answers ACME HTTP-01 challenges it holds (challenges.go) and redirects
// plain-HTTP requests of RedirectHTTPS routes to https.
type Router struct {
	ctx        caddy.Context
	table      *Table
	challenges *Challenges

	mu      *sync.RWMutex
	proxies map[settings]caddyhttp.MiddlewareHandler
}

// CaddyModule returns the Caddy module information.
func (Router) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.kamal_router", New: func() caddy.Module { return new(Router) }}
}

// Provision loads the route table (before the servers start, so a restarted proxy serves its
// routes from the first request) and the proxies of the routes it holds.
func (h *Router) Provision(ctx caddy.Context) error {
	in, err := shared()
	if err != nil {
		return fmt.Errorf("kamal_router: %w", err)
	}
	t := in.routes
	h.ctx, h.table, h.challenges, h.mu, h.proxies = ctx, t, in.challenges, new(sync.RWMutex), map[settings]caddyhttp.MiddlewareHandler{}
	_, routes := t.Snapshot()
	for _, r := range routes {
		if _, err := h.proxyFor(r.settings()); err != nil {
			return fmt.Errorf("kamal_router: %w", err)
		}
	}
	return nil
}

// proxyFor returns the reverse_proxy handler for s, provisioning it the first time. Handlers
// stay until the config is unloaded (with the fixed config, when the process ends): there are
// few distinct settings.
func (h *Router) proxyFor(s settings) (caddyhttp.MiddlewareHandler, error) {
	h.mu.RLock()
	p := h.proxies[s]
	h.mu.RUnlock()
	if p != nil {
		return p, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.proxies[s]; p != nil {
		return p, nil
	}
	raw, err := json.Marshal(reverseProxyConfig(s))
	if err != nil {
		return nil, err
	}
	mod, err := h.ctx.LoadModuleByID("http.handlers.reverse_proxy", raw)
	if err != nil {
		return nil, fmt.Errorf("provisioning reverse_proxy %s: %w", raw, err)
	}
	p = mod.(caddyhttp.MiddlewareHandler)
	h.proxies[s] = p
	return p, nil
}

// reverseProxyConfig is the reverse_proxy handler for routes with settings s.
func reverseProxyConfig(s settings) map[string]any {
	transport := map[string]any{"protocol": "http"}
	if s.ResponseTimeout != "" {
		transport["response_header_timeout"] = s.ResponseTimeout
	}
	cfg := map[string]any{
		"upstreams": []any{map[string]any{"dial": "{http.vars." + UpstreamVar + "}"}},
		"transport": transport,
	}
	if s.ForwardHeaders {
		// Trust the client's X-Forwarded-* from anywhere, as Kamal's forward_headers does.
		cfg["trusted_proxies"] = []string{"0.0.0.0/0", "::/0"}
	}
	if s.RequestBuffers > 0 {
		cfg["request_buffers"] = s.RequestBuffers
	}
	if s.ResponseBuffers > 0 {
		cfg["response_buffers"] = s.ResponseBuffers
	}
	return cfg
}

// NoRouteBody is the answer (404) to a request no route matches.
const NoRouteBody = "no app is routed for this host\n"

// ServeHTTP routes the request.
func (h *Router) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	token, isChallenge := strings.CutPrefix(r.URL.Path, ChallengePathPrefix)
	if isChallenge && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		if keyAuth, ok := h.challenges.Answer(token, r.Host); ok {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, keyAuth)
			return nil
		}
	}
	m, done := h.table.Begin(r.Host, r.URL.Path)
	defer done()
	route := m.Route
	if route == nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, NoRouteBody)
		return nil
	}
	if route.RedirectHTTPS && r.TLS == nil && !isChallenge {
		http.Redirect(w, r, httpsURL(r), http.StatusPermanentRedirect)
		return nil
	}
	if route.Upstream == "" {
		return caddyhttp.Error(http.StatusBadGateway, fmt.Errorf("route %s has no upstream", m.ID))
	}
	rp, err := h.proxyFor(route.settings())
	if err != nil {
		return caddyhttp.Error(http.StatusBadGateway, err)
	}
	caddyhttp.SetVar(r.Context(), UpstreamVar, route.Upstream)
	if route.StripPathPrefix && m.Strip != "" {
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		rewrite.Rewrite{StripPathPrefix: m.Strip}.Rewrite(r, repl)
	}
	proxy := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return rp.ServeHTTP(w, r, next) })
	if route.MaxRequestBody > 0 {
		// Caddy's request_body: 413 for a declared or a read body over the limit.
		return requestbody.RequestBody{MaxSize: route.MaxRequestBody}.ServeHTTP(w, r, proxy)
	}
	return proxy(w, r)
}

// httpsURL is r's URL on https, on the default port: the proxy's HTTPS port is 443 wherever
// redirects are asked for.
func httpsURL(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return "https://" + host + r.URL.RequestURI()
}

var (
	_ caddy.AdminRouter           = Admin{}
	_ caddy.Provisioner           = (*Router)(nil)
	_ caddyhttp.MiddlewareHandler = (*Router)(nil)
)
