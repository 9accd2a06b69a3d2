package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Admin talks to one proxy's Caddy admin API over a dialled stream (the admin socket reached
// through the host's SSH connection).
type Admin struct {
	http *http.Client
	// Requests, when set, counts the requests made.
	Requests *atomic.Int64
}

// NewAdmin returns an admin client whose every request opens a stream with dial.
func NewAdmin(dial func(ctx context.Context) (net.Conn, error)) *Admin {
	return &Admin{http: &http.Client{
		Transport: &http.Transport{
			DialContext:     func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
			MaxIdleConns:    2,
			IdleConnTimeout: 30 * time.Second,
		},
		Timeout: 30 * time.Second,
	}}
}

// ErrNotFound is an admin path or route id that does not exist.
var ErrNotFound = errors.New("not found")

func (a *Admin) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://kamal-proxy"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.Requests != nil {
		a.Requests.Add(1)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("proxy admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("proxy admin %s %s: %w", method, path, ErrNotFound)
	case resp.StatusCode >= 300:
		// Caddy reports a missing id as a 404 or as a 500 "unknown object ID".
		if bytes.Contains(data, []byte("unknown object ID")) {
			return fmt.Errorf("proxy admin %s %s: %w", method, path, ErrNotFound)
		}
		return fmt.Errorf("proxy admin %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// ErrNoRouteModule is a proxy image without the kamal_route module.
var ErrNoRouteModule = errors.New("the proxy image lacks the kamal_route module (images/kamal-proxy); build it from there")

// Ready checks that the admin API answers, the app server exists and the image has the route
// module.
func (a *Admin) Ready(ctx context.Context) error {
	var srv map[string]any
	if err := a.do(ctx, http.MethodGet, "/config/apps/http/servers/"+ServerName, nil, &srv); err != nil {
		return err
	}
	var routes map[string]string
	if err := a.do(ctx, http.MethodGet, "/kamal/routes", nil, &routes); err != nil {
		if errors.Is(err, ErrNotFound) {
			return ErrNoRouteModule
		}
		return err
	}
	return nil
}

// Route returns the route with the given id.
func (a *Admin) Route(ctx context.Context, id string) (json.RawMessage, error) {
	var r json.RawMessage
	if err := a.do(ctx, http.MethodGet, "/id/"+id, nil, &r); err != nil {
		return nil, err
	}
	return r, nil
}

// Routes returns the app server's routes in order.
func (a *Admin) Routes(ctx context.Context) ([]json.RawMessage, error) {
	var rs []json.RawMessage
	err := a.do(ctx, http.MethodGet, "/config/apps/http/servers/"+ServerName+"/routes", nil, &rs)
	return rs, err
}

// UpsertRoute replaces the route with id in place, or inserts it: first when it is specific
// (names hosts or paths), else just before the fallback, so catch-alls never shadow others.
// Caddy applies either change gracefully: in-flight requests finish on the old config. An
// unchanged route is no config change at all.
func (a *Admin) UpsertRoute(ctx context.Context, id string, route map[string]any, specific bool) error {
	route["@id"] = id
	err := a.do(ctx, http.MethodPatch, "/id/"+id, route, nil)
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	at := 0
	if !specific {
		rs, err := a.Routes(ctx)
		if err != nil {
			return err
		}
		at = max(len(rs)-1, 0)
	}
	return a.do(ctx, http.MethodPut, fmt.Sprintf("/config/apps/http/servers/%s/routes/%d", ServerName, at), route, nil)
}

// SetUpstream points route id at upstream ("container:port"). The route's config does not
// change, so Caddy keeps its servers and listeners: the next request goes to upstream, the ones
// in flight finish where they are.
func (a *Admin) SetUpstream(ctx context.Context, id, upstream string) error {
	return a.do(ctx, http.MethodPut, "/kamal/routes/"+id, map[string]string{"upstream": upstream}, nil)
}

// RoutedTo returns route id as Caddy holds it and its upstream address ("container:port"); both
// empty when the route is missing, the upstream empty when the table has none for it.
func (a *Admin) RoutedTo(ctx context.Context, id string) (json.RawMessage, string, error) {
	route, err := a.Route(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, "", nil
		}
		return nil, "", err
	}
	var r struct {
		Upstream string `json:"upstream"`
	}
	if err := a.do(ctx, http.MethodGet, "/kamal/routes/"+id, nil, &r); err != nil {
		if errors.Is(err, ErrNotFound) {
			return route, "", nil
		}
		return nil, "", err
	}
	return route, r.Upstream, nil
}

// InFlight returns the requests in flight per upstream address.
func (a *Admin) InFlight(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	if err := a.do(ctx, http.MethodGet, "/kamal/inflight", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteRoute removes the route with id and then its upstream; a missing one is not an error.
func (a *Admin) DeleteRoute(ctx context.Context, id string) error {
	err := a.do(ctx, http.MethodDelete, "/id/"+id, nil, nil)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return a.do(ctx, http.MethodDelete, "/kamal/routes/"+id, nil, nil)
}
