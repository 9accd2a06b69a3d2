package kamalproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Before the route table held whole routes, each app route was a Caddy route in the server
// "kamal" (id kamal-<namespace>-<deployment>-<role>), autosaved by Caddy, and the table
// (LegacyTableFile) held only {id: upstream}. A proxy replacing such a proxy finds no TableFile
// and imports those routes with their ids, so it serves the same routes from its first request
// and the controller can take each over under its new id. The import is kept in memory until
// the first change, so the older proxy's files stay as they were: a replacement that fails
// starts the older proxy again on them.

// LegacyTableFile is the {id: upstream} table of older proxies, in Caddy's data directory.
const LegacyTableFile = "kamal-routes.json"

// legacyServer is the Caddy server that held the app routes.
const legacyServer = "kamal"

type legacyConfig struct {
	Apps struct {
		HTTP struct {
			Servers map[string]struct {
				Routes []legacyRoute `json:"routes"`
			} `json:"servers"`
		} `json:"http"`
	} `json:"apps"`
}

type legacyRoute struct {
	ID    string `json:"@id"`
	Match []struct {
		Host []string `json:"host"`
		Path []string `json:"path"`
	} `json:"match"`
	Handle []legacyHandler `json:"handle"`
}

type legacyHandler struct {
	Handler         string          `json:"handler"`
	Route           string          `json:"route"`             // kamal_route
	MaxSize         int64           `json:"max_size"`          // request_body
	Routes          []legacyRoute   `json:"routes"`            // subroute
	StripPathPrefix string          `json:"strip_path_prefix"` // rewrite
	TrustedProxies  []string        `json:"trusted_proxies"`
	RequestBuffers  int64           `json:"request_buffers"`
	ResponseBuffers int64           `json:"response_buffers"`
	Transport       json.RawMessage `json:"transport"`
}

// MigrateLegacy reads the routes of an older proxy: the kamal_route routes of Caddy's autosave
// (autosavePath) with their upstreams from the legacy table (tablePath). Either file may be
// missing (nothing to import). Routes it cannot read are skipped and named in skipped.
func MigrateLegacy(autosavePath, tablePath string) (routes map[string]*Route, skipped []string, err error) {
	routes = map[string]*Route{}
	upstreams := map[string]string{}
	b, err := os.ReadFile(tablePath)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &upstreams); err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", tablePath, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, nil, err
	}
	b, err = os.ReadFile(autosavePath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return routes, nil, nil
	case err != nil:
		return nil, nil, err
	}
	var cfg legacyConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", autosavePath, err)
	}
	for _, lr := range cfg.Apps.HTTP.Servers[legacyServer].Routes {
		id, r, ok := lr.route()
		if !ok {
			continue // the fallback route and anything else not of the route module
		}
		r.Upstream = upstreams[id]
		r = normalized(r)
		if err := ValidID(id); err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		if err := r.Validate(); err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		routes[id] = &r
	}
	return routes, skipped, nil
}

// route reads one Caddy route as the older controller wrote it (internal/release.Proxy.Route of
// that version): match host/path, request_body, a subroute of rewrites that strip the matched
// prefix, kamal_route and reverse_proxy.
func (lr legacyRoute) route() (string, Route, bool) {
	var r Route
	id := ""
	for _, m := range lr.Match {
		r.Hosts = append(r.Hosts, m.Host...)
		for _, p := range m.Path {
			// Each prefix was written as "/p" and "/p/*".
			if !strings.HasSuffix(p, "/*") && !containsFold(r.Paths, p) {
				r.Paths = append(r.Paths, p)
			}
		}
	}
	for _, h := range lr.Handle {
		switch h.Handler {
		case "kamal_route":
			id = h.Route
		case "request_body":
			r.MaxRequestBody = h.MaxSize
		case "subroute":
			for _, sr := range h.Routes {
				for _, sh := range sr.Handle {
					if sh.Handler == "rewrite" && sh.StripPathPrefix != "" {
						r.StripPathPrefix = true
					}
				}
			}
		case "reverse_proxy":
			r.ForwardHeaders = len(h.TrustedProxies) > 0
			r.RequestBuffers, r.ResponseBuffers = h.RequestBuffers, h.ResponseBuffers
			var tr struct {
				ResponseHeaderTimeout caddy.Duration `json:"response_header_timeout"`
			}
			if json.Unmarshal(h.Transport, &tr) == nil && tr.ResponseHeaderTimeout > 0 {
				r.ResponseTimeout = time.Duration(tr.ResponseHeaderTimeout).String()
			}
		}
	}
	if id == "" {
		return "", Route{}, false
	}
	return id, r, true
}

// OpenTable opens the route table of Caddy's data directory dataDir. When the directory holds
// no TableFile yet, it imports the routes of an older proxy (MigrateLegacy, with Caddy's autosave
// in configDir), in memory until the first change; notes say what was imported or could not be.
func OpenTable(dataDir, configDir string) (t *Table, notes []string, err error) {
	t, loaded, err := NewTable(filepath.Join(dataDir, TableFile))
	if err != nil || loaded {
		return t, nil, err
	}
	routes, skipped, err := MigrateLegacy(filepath.Join(configDir, "autosave.json"), filepath.Join(dataDir, LegacyTableFile))
	if err != nil {
		// Unreadable files of an older proxy would not start it either: start without them;
		// the controller writes every route again.
		return t, []string{"not importing the routes of an older proxy: " + err.Error()}, nil
	}
	for _, s := range skipped {
		notes = append(notes, "not importing route "+s)
	}
	if len(routes) > 0 {
		t.publish(newState(1, routes))
		notes = append(notes, fmt.Sprintf("imported %d routes of an older proxy", len(routes)))
	}
	return t, notes, nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
