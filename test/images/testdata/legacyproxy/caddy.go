package kamalproxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Admin{})
	caddy.RegisterModule(Handler{})
}

// The table lives as long as the process, across config reloads.
var (
	tableOnce sync.Once
	table     *Table
	tableErr  error
)

func sharedTable() (*Table, error) {
	tableOnce.Do(func() {
		table, tableErr = NewTable(filepath.Join(caddy.AppDataDir(), "kamal-routes.json"))
	})
	return table, tableErr
}

// Admin serves the route table on Caddy's admin API:
//
//	GET    /kamal/routes         every route: {"<id>": "<host:port>"}
//	GET    /kamal/routes/<id>    {"upstream": "<host:port>"}, 404 when there is none
//	PUT    /kamal/routes/<id>    body {"upstream": "<host:port>"}: switch the route
//	DELETE /kamal/routes/<id>
//	GET    /kamal/inflight       requests in flight per upstream: {"<host:port>": n}
//	POST   /kamal/probe          body {"upstream", "path", "timeout"}: GET path on upstream
//	                             from the proxy; answers {"status": n} or {"error": "…"}
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

type routeBody struct {
	Upstream string `json:"upstream"`
}

func serveRoutes(w http.ResponseWriter, r *http.Request) error {
	t, err := sharedTable()
	if err != nil {
		return apiError(http.StatusInternalServerError, "route table: %v", err)
	}
	id := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/kamal/routes"), "/")
	if id == "" {
		if r.Method != http.MethodGet {
			return apiError(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
		}
		return writeJSON(w, t.All())
	}
	switch r.Method {
	case http.MethodGet:
		up := t.Get(id)
		if up == "" {
			return apiError(http.StatusNotFound, "route %s has no upstream", id)
		}
		return writeJSON(w, routeBody{Upstream: up})
	case http.MethodPut:
		var b routeBody
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&b); err != nil {
			return apiError(http.StatusBadRequest, "decoding body: %v", err)
		}
		if err := ValidUpstream(b.Upstream); err != nil {
			return apiError(http.StatusBadRequest, "%v", err)
		}
		if err := t.Set(id, b.Upstream); err != nil {
			return apiError(http.StatusInternalServerError, "saving route %s: %v", id, err)
		}
		return nil
	case http.MethodDelete:
		if err := t.Delete(id); err != nil {
			return apiError(http.StatusInternalServerError, "saving routes: %v", err)
		}
		return nil
	default:
		return apiError(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
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

// Handler (`kamal_route`) sends a request of route Route to the route's current upstream: it
// sets the request variable kamal_upstream, which the next handler (reverse_proxy dialling
// "{http.vars.kamal_upstream}") uses, and counts the request in flight until it is answered.
// A route with no upstream answers 502.
type Handler struct {
	Route string `json:"route"`

	table *Table
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.kamal_route", New: func() caddy.Module { return new(Handler) }}
}

// Provision loads the shared route table.
func (h *Handler) Provision(caddy.Context) error {
	if h.Route == "" {
		return fmt.Errorf("kamal_route: route is required")
	}
	t, err := sharedTable()
	if err != nil {
		return fmt.Errorf("kamal_route: %w", err)
	}
	h.table = t
	return nil
}

// ServeHTTP picks the upstream and calls the next handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	up, done := h.table.Begin(h.Route)
	defer done()
	if up == "" {
		return caddyhttp.Error(http.StatusBadGateway, fmt.Errorf("route %s has no upstream", h.Route))
	}
	caddyhttp.SetVar(r.Context(), UpstreamVar, up)
	return next.ServeHTTP(w, r)
}

var (
	_ caddy.AdminRouter           = Admin{}
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
