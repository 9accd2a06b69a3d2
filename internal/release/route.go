package release

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// RouteID is the stable id of a role's route in a host's proxy.
func RouteID(namespace, deployment, role string) string {
	return "kamal-" + namespace + "-" + deployment + "-" + role
}

// Upstream is how the proxy dials a container: by name (unique per host) on the container's
// namespace network, to which the proxy is attached.
func (p *Proxy) Upstream(container string) string {
	return fmt.Sprintf("%s:%d", container, p.AppPort)
}

// UpstreamVar is the request variable the proxy's kamal_route handler sets to the route's
// current upstream.
const UpstreamVar = "kamal_upstream"

// Route is the Caddy route for the role's hosts and paths. It names no container: kamal_route
// picks the upstream the controller last set for route id, so a deploy switches containers
// without changing Caddy's config.
func (p *Proxy) Route(id string) map[string]any {
	match := map[string]any{}
	if len(p.Hosts) > 0 {
		match["host"] = p.Hosts
	}
	var handle []any
	if len(p.PathPrefixes) > 0 {
		var paths []string
		for _, pre := range p.PathPrefixes {
			pre = strings.TrimSuffix(pre, "/")
			paths = append(paths, pre, pre+"/*")
		}
		match["path"] = paths
	}
	if p.MaxRequestBody > 0 {
		handle = append(handle, map[string]any{"handler": "request_body", "max_size": p.MaxRequestBody})
	}
	rp := map[string]any{
		"handler":   "reverse_proxy",
		"upstreams": []any{map[string]any{"dial": "{http.vars." + UpstreamVar + "}"}},
		"transport": map[string]any{"protocol": "http", "response_header_timeout": p.ResponseTimeout.String()},
	}
	if p.ForwardHeaders {
		// Trust the client's X-Forwarded-* from anywhere, as Kamal's forward_headers does.
		rp["trusted_proxies"] = []string{"0.0.0.0/0", "::/0"}
	}
	if p.RequestBuffer > 0 {
		rp["request_buffers"] = p.RequestBuffer
	}
	if p.ResponseBuffer > 0 {
		rp["response_buffers"] = p.ResponseBuffer
	}
	if len(p.PathPrefixes) > 0 && p.StripPathPrefix {
		// One prefix matched; strip whichever it was.
		var strip []any
		for _, pre := range p.PathPrefixes {
			pre = strings.TrimSuffix(pre, "/")
			strip = append(strip, map[string]any{
				"match":  []any{map[string]any{"path": []string{pre, pre + "/*"}}},
				"handle": []any{map[string]any{"handler": "rewrite", "strip_path_prefix": pre}},
			})
		}
		handle = append(handle, map[string]any{"handler": "subroute", "routes": strip})
	}
	handle = append(handle, map[string]any{"handler": "kamal_route", "route": id}, rp)
	route := map[string]any{"@id": id, "handle": handle, "terminal": true}
	if len(match) > 0 {
		route["match"] = []any{match}
	}
	return route
}

// SameRoute says whether Caddy's copy of a route (as the admin API returns it) is route.
func SameRoute(current []byte, route map[string]any) bool {
	want, err := json.Marshal(route)
	if err != nil {
		return false
	}
	var a, b any
	if json.Unmarshal(current, &a) != nil || json.Unmarshal(want, &b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}

// Specific says the route names hosts or paths; a catch-all route goes after all of them.
func (p *Proxy) Specific() bool { return len(p.Hosts) > 0 || len(p.PathPrefixes) > 0 }
