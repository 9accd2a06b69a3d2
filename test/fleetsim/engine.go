package fleetsim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"

	"github.com/kamal-operator/kamal-operator/internal/proxy"
)

// engine is one host's Docker Engine state, in memory.
type engine struct {
	host *Host

	mu         sync.Mutex
	containers map[string]*ctr  // by ID
	images     map[string]*img  // by reference ("registry/app:tag")
	networks   map[string]*netw // by ID
	volumes    map[string]*volume.Volume
	subs       map[*subscriber]struct{}
	subnets    int
	// changed is closed and replaced on every container state change, for waits.
	changed chan struct{}
}

type ctr struct {
	id, name string
	created  time.Time
	config   container.Config
	host     container.HostConfig
	state    container.ContainerState
	exitCode int
	started  time.Time
	finished time.Time
	networks map[string]*network.EndpointSettings // by network name
	restarts int
	healthy  bool // has a Docker healthcheck
}

func (c *ctr) running() bool { return c.state == container.StateRunning }

type img struct {
	id      string
	ref     string
	created time.Time
}

type netw struct {
	network.Inspect
	subnet netip.Prefix
	next   int
}

type subscriber struct {
	ch     chan events.Message
	filter filters
}

func newEngine(h *Host) *engine {
	e := &engine{host: h, containers: map[string]*ctr{}, images: map[string]*img{}, networks: map[string]*netw{},
		volumes: map[string]*volume.Volume{}, subs: map[*subscriber]struct{}{}, changed: make(chan struct{})}
	// The networks every engine has.
	for _, n := range []struct{ name, driver string }{{"bridge", "bridge"}, {"host", "host"}, {"none", "null"}} {
		e.addNetwork(n.name, n.driver, nil)
	}
	return e
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func imageID(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// lookup finds a container by ID, name or unique ID prefix; e.mu held.
func (e *engine) lookup(ref string) *ctr {
	ref = strings.TrimPrefix(ref, "/")
	if c := e.containers[ref]; c != nil {
		return c
	}
	for _, c := range e.containers {
		if c.name == ref {
			return c
		}
	}
	var found *ctr
	for id, c := range e.containers {
		if len(ref) >= 4 && strings.HasPrefix(id, ref) {
			if found != nil {
				return nil
			}
			found = c
		}
	}
	return found
}

// lookupNetwork finds a network by ID, name or unique ID prefix; e.mu held.
func (e *engine) lookupNetwork(ref string) *netw {
	if n := e.networks[ref]; n != nil {
		return n
	}
	for _, n := range e.networks {
		if n.Name == ref {
			return n
		}
	}
	for id, n := range e.networks {
		if len(ref) >= 4 && strings.HasPrefix(id, ref) {
			return n
		}
	}
	return nil
}

// normalizeRef is a reference as the engine keeps it: familiar (docker.io/library/ dropped, as
// the client adds it on pulls) and tagged latest when it has no tag or digest.
func normalizeRef(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.FamiliarString(reference.TagNameOnly(named))
}

// lookupImage finds an image by reference or ID; e.mu held.
func (e *engine) lookupImage(ref string) *img {
	if i := e.images[normalizeRef(ref)]; i != nil {
		return i
	}
	for _, i := range e.images {
		if i.id == ref || strings.TrimPrefix(i.id, "sha256:") == ref {
			return i
		}
	}
	return nil
}

// addNetwork creates a network with the next free /24 of 172.18.0.0/15 and up; e.mu held.
func (e *engine) addNetwork(name, driver string, labels map[string]string) *netw {
	base := netip.MustParseAddr("172.17.0.0").As4()
	n := e.subnets
	e.subnets++
	base[1] += byte(n / 256)
	base[2] = byte(n % 256)
	subnet := netip.PrefixFrom(netip.AddrFrom4(base), 24)
	if labels == nil {
		labels = map[string]string{}
	}
	nw := &netw{subnet: subnet, next: 2}
	gw := subnet.Addr().Next()
	nw.Inspect = network.Inspect{
		Network: network.Network{
			Name: name, ID: randomID(), Scope: "local", Driver: driver, EnableIPv4: true,
			IPAM:    network.IPAM{Driver: "default", Config: []network.IPAMConfig{{Subnet: subnet, Gateway: gw}}},
			Options: map[string]string{}, Labels: labels,
		},
		Containers: map[string]network.EndpointResource{},
	}
	nw.Created = time.Now()
	e.networks[nw.ID] = nw
	return nw
}

// attach connects c to n; e.mu held.
func (e *engine) attach(c *ctr, n *netw, cfg *network.EndpointSettings) {
	ep := &network.EndpointSettings{}
	if cfg != nil {
		*ep = *cfg
	}
	ep.NetworkID = n.ID
	ep.EndpointID = randomID()
	ep.IPPrefixLen = 24
	if n.Driver == "bridge" {
		ip := n.subnet.Addr()
		for range n.next {
			ip = ip.Next()
		}
		n.next++
		ep.IPAddress = ip
		ep.Gateway = n.subnet.Addr().Next()
	}
	ep.DNSNames = append([]string{c.name, c.id[:12]}, ep.Aliases...)
	c.networks[n.Name] = ep
	n.Containers[c.id] = network.EndpointResource{Name: c.name, EndpointID: ep.EndpointID}
}

// detach disconnects c from every network; e.mu held.
func (e *engine) detachAll(c *ctr) {
	for name := range c.networks {
		if n := e.lookupNetwork(name); n != nil {
			delete(n.Containers, c.id)
		}
	}
}

// emit sends a container event to the subscribers whose filters take it; e.mu held.
func (e *engine) emit(c *ctr, action events.Action, extra map[string]string) {
	now := time.Now()
	attrs := map[string]string{"name": c.name, "image": c.config.Image}
	for k, v := range c.config.Labels {
		attrs[k] = v
	}
	for k, v := range extra {
		attrs[k] = v
	}
	m := events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: c.id, Attributes: attrs},
		Scope: "local", Time: now.Unix(), TimeNano: now.UnixNano()}
	for s := range e.subs {
		if !s.filter.matchEvent(m) {
			continue
		}
		select {
		case s.ch <- m:
		default: // a reader that does not keep up loses events, as with a real engine's slow client
		}
	}
	close(e.changed)
	e.changed = make(chan struct{})
}

// stop makes a running container exit; e.mu held.
func (e *engine) stopLocked(c *ctr, code int, killSignal string) {
	if !c.running() {
		return
	}
	if killSignal != "" {
		e.emit(c, events.ActionKill, map[string]string{"signal": killSignal})
	}
	c.state, c.exitCode, c.finished = container.StateExited, code, time.Now()
	e.emit(c, events.ActionDie, map[string]string{"exitCode": fmt.Sprint(code)})
}

func (e *engine) kill(ref, signal string, code int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.lookup(ref)
	if c == nil || !c.running() {
		return false
	}
	e.stopLocked(c, code, signal)
	return true
}

// proxyRunning says whether the host runs the proxy, so its admin socket answers.
func (e *engine) proxyRunning() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.lookup(proxy.ContainerName)
	return c != nil && c.running() && proxy.IsProxy(c.config.Labels)
}

// answering returns the name of the running container with address ip that has been up for
// health, "" when there is none.
func (e *engine) answering(ip netip.Addr, health time.Duration) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.containers {
		if !c.running() || time.Since(c.started) < health {
			continue
		}
		for _, ep := range c.networks {
			if ep.IPAddress == ip {
				return c.name
			}
		}
	}
	return ""
}

// answeringName is answering for a name on one of the networks of the proxy.
func (e *engine) answeringName(name string, health time.Duration) (bool, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.lookup(proxy.ContainerName)
	var c *ctr
	for _, x := range e.containers {
		if x.name == name {
			c = x
			break
		}
		for _, ep := range x.networks {
			for _, a := range ep.Aliases {
				if a == name && c == nil {
					c = x
				}
			}
		}
	}
	if c == nil || p == nil {
		return false, fmt.Sprintf("dial tcp: lookup %s: no such host", name)
	}
	shared := false
	for n := range c.networks {
		if _, ok := p.networks[n]; ok {
			shared = true
		}
	}
	switch {
	case !shared:
		return false, fmt.Sprintf("dial tcp: lookup %s: no such host", name)
	case !c.running() || time.Since(c.started) < health:
		return false, "dial tcp: connect: connection refused"
	}
	return true, ""
}

// status is the listing's status line of c.
func (c *ctr) status(health time.Duration) string {
	switch c.state {
	case container.StateRunning:
		s := "Up " + humanDuration(time.Since(c.started))
		if c.healthy {
			if time.Since(c.started) >= health {
				s += " (healthy)"
			} else {
				s += " (health: starting)"
			}
		}
		return s
	case container.StateExited:
		return fmt.Sprintf("Exited (%d) %s ago", c.exitCode, humanDuration(time.Since(c.finished)))
	}
	return "Created"
}

func humanDuration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	case s < 3600:
		return fmt.Sprintf("%d minutes", s/60)
	default:
		return fmt.Sprintf("%d hours", s/3600)
	}
}

// names sorts a set of strings.
func names(m map[string]*network.EndpointSettings) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
