package release

import (
	"sort"
	"strings"
	"time"
)

// Claim is one host name and path prefix a role's route asks a proxy for. Host is lowercased
// ("" for a route without hosts, which serves the hosts nobody names); Path has no trailing
// '/' except the root "/", which also stands for a route without paths. Two routes on one
// proxy with an equal Claim cannot both be served: the proxy refuses the second.
type Claim struct {
	Host string
	Path string
}

func (c Claim) String() string {
	host := c.Host
	if host == "" {
		host = "any host"
	}
	if c.Path == "/" {
		return host
	}
	return host + c.Path
}

// Claims are the role's host and path pairs, sorted.
func (p *Proxy) Claims() []Claim {
	hosts := p.Hosts
	if len(hosts) == 0 {
		hosts = []string{""}
	}
	paths := p.PathPrefixes
	if len(paths) == 0 {
		paths = []string{"/"}
	}
	var out []Claim
	seen := map[Claim]bool{}
	for _, h := range hosts {
		for _, pre := range paths {
			c := Claim{Host: strings.ToLower(h), Path: NormalizePath(pre)}
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].Path < out[j].Path
	})
	return out
}

// NormalizePath is a path prefix as routes compare them: no trailing '/', "/" for the root.
func NormalizePath(p string) string {
	p = strings.TrimRight(p, "/")
	if p == "" {
		return "/"
	}
	return p
}

// CatchAll says the route serves requests for hosts no route names.
func (p *Proxy) CatchAll() bool { return len(p.Hosts) == 0 }

// Claimant is a Deployment's claims as the API holds them: every proxy that serves one of its
// routes agrees on who owns a claim because the order comes from the API, never from which
// host saw which deploy first.
type Claimant struct {
	// Key names the claimant, namespace/name.
	Key     string
	Created time.Time
	UID     string
	// Hosts are the proxies (host addresses) the claimant's routes are on.
	Hosts []string
	// Claims of all its proxied roles.
	Claims []Claim
}

// Before orders claimants: the older first, then by UID.
func (c Claimant) Before(o Claimant) bool {
	if !c.Created.Equal(o.Created) {
		return c.Created.Before(o.Created)
	}
	return c.UID < o.UID
}

// Conflict is a claim held by an earlier claimant on a proxy both use.
type Conflict struct {
	Claim Claim
	Owner string
}

// Conflicts returns the claims of self that an earlier claimant sharing one of its hosts holds
// too, sorted; none means self owns every claim it makes. A claimant is earlier by
// Claimant.Before; others may include self, which is skipped. A later claimant never takes a
// claim, so the earliest one keeps serving while the conflict lasts.
func Conflicts(self Claimant, others []Claimant) []Conflict {
	mine := map[Claim]bool{}
	for _, c := range self.Claims {
		mine[c] = true
	}
	hosts := map[string]bool{}
	for _, h := range self.Hosts {
		hosts[h] = true
	}
	owner := map[Claim]Claimant{}
	for _, o := range others {
		if o.Key == self.Key || !o.Before(self) || !sharesHost(o.Hosts, hosts) {
			continue
		}
		for _, c := range o.Claims {
			if !mine[c] {
				continue
			}
			if cur, ok := owner[c]; !ok || o.Before(cur) {
				owner[c] = o
			}
		}
	}
	out := make([]Conflict, 0, len(owner))
	for c, o := range owner {
		out = append(out, Conflict{Claim: c, Owner: o.Key})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Claim.Host != out[j].Claim.Host {
			return out[i].Claim.Host < out[j].Claim.Host
		}
		return out[i].Claim.Path < out[j].Claim.Path
	})
	return out
}

func sharesHost(hosts []string, set map[string]bool) bool {
	for _, h := range hosts {
		if set[h] {
			return true
		}
	}
	return false
}
