package release

import (
	"fmt"

	"github.com/kamal-operator/kamal-operator/internal/proxy"
)

// RouteID is the id of a role's route in a host's proxy: namespace/deployment/role. Each part
// is a DNS label, so no two roles share an id (the proxy accepts '/' in ids for this).
func RouteID(namespace, deployment, role string) string {
	return namespace + "/" + deployment + "/" + role
}

// LegacyRouteID is the id older controllers gave the route (ambiguous: namespace "team-a" with
// Deployment "web" and namespace "team" with Deployment "a-web" share it). A route still under
// it is taken over by RouteID in the same change that writes the new one.
func LegacyRouteID(namespace, deployment, role string) string {
	return "kamal-" + namespace + "-" + deployment + "-" + role
}

// RouteOwner is the owner a Deployment's routes carry in the proxy's table.
func RouteOwner(namespace, deployment string) string { return namespace + "/" + deployment }

// Upstream is how the proxy dials a container: by name (unique per host) on the container's
// namespace network, to which the proxy is attached.
func (p *Proxy) Upstream(container string) string {
	return fmt.Sprintf("%s:%d", container, p.AppPort)
}

// Route is the role's entry in the proxy's route table, sending to upstream.
func (p *Proxy) Route(upstream, owner string) proxy.Route {
	r := proxy.Route{
		Hosts:           p.Hosts,
		Upstream:        upstream,
		MaxRequestBody:  p.MaxRequestBody,
		ForwardHeaders:  p.ForwardHeaders,
		RedirectHTTPS:   p.SSLRedirect,
		RequestBuffers:  p.RequestBuffer,
		ResponseBuffers: p.ResponseBuffer,
		Owner:           owner,
	}
	// As given: the proxy compares prefixes without their trailing '/', and strips the one that
	// matched.
	r.Paths = append(r.Paths, p.PathPrefixes...)
	if len(r.Paths) > 0 {
		r.StripPathPrefix = p.StripPathPrefix
	}
	if p.ResponseTimeout > 0 {
		r.ResponseTimeout = p.ResponseTimeout.String()
	}
	return r
}
