// Package fleetsim simulates a fleet of hosts for scale runs of the controller: each host is a
// real SSH server (golang.org/x/crypto/ssh, its own ed25519 host key, public-key auth) on a
// loopback address, answering over the channels the controller opens what a host answers: the
// Docker Engine API subset the controller calls (direct-streamlocal to the engine's socket),
// the proxy's admin API once the controller runs kamal-proxy (direct-streamlocal to
// proxy.AdminSocket) and the app containers' health checks (direct-tcpip to their addresses).
// Engines keep their state in memory, with configurable pull, start and health delays and
// fault switches.
//
// It measures; it proves nothing about real hosts (test/hosts and test/e2e do). To keep it
// honest, every call it cannot answer is answered 501 and kept in Unknown, which the tests
// require empty, and every call it answers is counted per host by its path template, so a
// scenario's calls can be compared with a real host's.
package fleetsim

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Options shape a simulated fleet.
type Options struct {
	// Hosts is how many hosts to run.
	Hosts int
	// Base is the first host's address (default 127.1.0.1); the others follow, skipping
	// addresses ending in .0 and .255. Linux routes all of 127.0.0.0/8 to lo.
	Base netip.Addr
	// Port is the SSH port of every host (0: a free port per host, see Host.Port).
	Port int
	// AuthorizedKey is the only client key accepted.
	AuthorizedKey ssh.PublicKey
	// Delays are the engine's latencies; they can be changed while the fleet runs.
	Delays Delays
	// APIVersion is the Engine API version the engines announce (default 1.41, Debian
	// bookworm's docker.io).
	APIVersion string
	// Logf, when set, is told about connections that fail.
	Logf func(format string, args ...any)
}

// Delays are the simulated engine's latencies.
type Delays struct {
	// Pull is how long an image pull takes.
	Pull time.Duration `json:"pull"`
	// Start is how long a container start takes.
	Start time.Duration `json:"start"`
	// Health is how long after its start an app container answers its health check (and a
	// container with a Docker healthcheck turns healthy).
	Health time.Duration `json:"health"`
}

// Faults are a host's fault switches.
type Faults struct {
	// Refuse closes new SSH connections at once (an sshd that is down or firewalled).
	Refuse bool `json:"refuse,omitempty"`
	// Slow adds this latency to every Engine API and proxy admin request.
	Slow time.Duration `json:"slow,omitempty"`
	// EngineDown refuses streams to the engine's socket (a stopped dockerd).
	EngineDown bool `json:"engineDown,omitempty"`
}

// Fleet is a running simulated fleet.
type Fleet struct {
	opts  Options
	hosts []*Host

	mu      sync.Mutex
	delays  Delays
	unknown []string

	engine, admin, apps *channelServer
}

// Start runs the fleet's hosts; Close stops them.
func Start(opts Options) (*Fleet, error) {
	if opts.AuthorizedKey == nil {
		return nil, errors.New("fleetsim: no authorized key")
	}
	if !opts.Base.IsValid() {
		opts.Base = netip.MustParseAddr("127.1.0.1")
	}
	if opts.APIVersion == "" {
		opts.APIVersion = "1.41"
	}
	f := &Fleet{opts: opts, delays: opts.Delays}
	f.engine = newChannelServer(f.engineHandler())
	f.admin = newChannelServer(f.adminHandler())
	f.apps = newChannelServer(appHandler())
	addr := opts.Base
	for i := range opts.Hosts {
		for addr.As4()[3] == 0 || addr.As4()[3] == 255 {
			addr = addr.Next()
		}
		h, err := f.startHost(i, addr)
		if err != nil {
			f.Close()
			return nil, err
		}
		f.hosts = append(f.hosts, h)
		addr = addr.Next()
	}
	return f, nil
}

// Hosts are the fleet's hosts, in address order.
func (f *Fleet) Hosts() []*Host { return f.hosts }

// Host returns host i (from 0).
func (f *Fleet) Host(i int) *Host { return f.hosts[i] }

// Delays returns the current delays.
func (f *Fleet) Delays() Delays {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delays
}

// SetDelays changes the delays of every host from now on.
func (f *Fleet) SetDelays(d Delays) {
	f.mu.Lock()
	f.delays = d
	f.mu.Unlock()
}

// unknownCall records a call the simulator cannot answer.
func (f *Fleet) unknownCall(h *Host, what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.unknown) < 1000 {
		f.unknown = append(f.unknown, h.Name+": "+what)
	}
}

// Unknown lists the calls the simulator could not answer (each answered 501): a test fails
// when it is not empty, so the simulator cannot drift from what the controller calls.
func (f *Fleet) Unknown() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.unknown...)
}

// Calls sums the call counts of every host by template.
func (f *Fleet) Calls() map[string]int {
	out := map[string]int{}
	for _, h := range f.hosts {
		for k, n := range h.Calls() {
			out[k] += n
		}
	}
	return out
}

// CallCount is how often one call template was made.
type CallCount struct {
	Call string
	N    int
}

// ByCount orders call counts (as Calls returns them) most first, then by template.
func ByCount(calls map[string]int) []CallCount {
	out := make([]CallCount, 0, len(calls))
	for call, n := range calls {
		out = append(out, CallCount{call, n})
	}
	slices.SortFunc(out, func(a, b CallCount) int {
		if a.N != b.N {
			return b.N - a.N
		}
		return strings.Compare(a.Call, b.Call)
	})
	return out
}

// Conns says how many SSH connections are open on the fleet now, and how many were
// established since it started (each one a dial and handshake by the controller).
func (f *Fleet) Conns() (open, accepted int) {
	for _, h := range f.hosts {
		h.mu.Lock()
		open += len(h.conns)
		accepted += h.accepted
		h.mu.Unlock()
	}
	return open, accepted
}

// Close stops every host.
func (f *Fleet) Close() {
	for _, h := range f.hosts {
		h.close()
	}
	f.engine.close()
	f.admin.close()
	f.apps.close()
}

// HostState is one host as the state file lists it.
type HostState struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	// HostKey is the host's public key in authorized_keys form ("ssh-ed25519 AAAA…"), to pin
	// in a Server's knownHosts.
	HostKey string `json:"hostKey"`
}

// State is what a harness needs to drive the fleet.
type State struct {
	Hosts []HostState `json:"hosts"`
	// Control is the control endpoint's address, when one runs.
	Control string `json:"control,omitempty"`
	Delays  Delays `json:"delays"`
}

// State describes the fleet; control is the control endpoint's address ("" for none).
func (f *Fleet) State(control string) State {
	s := State{Control: control, Delays: f.Delays()}
	for _, h := range f.hosts {
		s.Hosts = append(s.Hosts, HostState{Name: h.Name, Address: h.Address.String(), Port: h.Port, HostKey: h.HostKey()})
	}
	return s
}

// WriteState writes State as JSON to path (through a temporary file, so a harness polling
// for it never reads half of it).
func (f *Fleet) WriteState(path, control string) error {
	b, err := json.MarshalIndent(f.State(control), "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Host is one simulated host.
type Host struct {
	Index   int
	Name    string
	Address netip.Addr
	Port    int

	fleet   *Fleet
	signer  ssh.Signer
	ln      net.Listener
	engine  *engine
	proxy   *proxyState
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	faults  Faults
	calls   map[string]int
	conns   map[*ssh.ServerConn]struct{}
	connsWG sync.WaitGroup
	// accepted counts the SSH connections ever established (handshakes done).
	accepted int
}

// HostKey is the host's public key in authorized_keys form.
func (h *Host) HostKey() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(h.signer.PublicKey())))
}

// PublicKey is the host's public key.
func (h *Host) PublicKey() ssh.PublicKey { return h.signer.PublicKey() }

// SSHAddress is host:port of the host's SSH server.
func (h *Host) SSHAddress() string { return net.JoinHostPort(h.Address.String(), strconv.Itoa(h.Port)) }

// Faults returns the host's fault switches.
func (h *Host) Faults() Faults {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.faults
}

// SetFaults sets the host's fault switches; with Refuse, open connections are closed too.
func (h *Host) SetFaults(fs Faults) {
	h.mu.Lock()
	h.faults = fs
	var drop []*ssh.ServerConn
	if fs.Refuse {
		for c := range h.conns {
			drop = append(drop, c)
		}
	}
	h.mu.Unlock()
	for _, c := range drop {
		_ = c.Close()
	}
}

// record counts one call of template ("GET /containers/{id}/json", "proxy GET /kamal/routes").
func (h *Host) record(template string) {
	h.mu.Lock()
	h.calls[template]++
	h.mu.Unlock()
}

// Calls returns the host's call counts by template.
func (h *Host) Calls() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.calls))
	for k, v := range h.calls {
		out[k] = v
	}
	return out
}

// ResetCalls forgets the host's call counts.
func (h *Host) ResetCalls() {
	h.mu.Lock()
	h.calls = map[string]int{}
	h.mu.Unlock()
}

// Containers lists the names of the host's containers, sorted.
func (h *Host) Containers() []string {
	e := h.engine
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, c := range e.containers {
		out = append(out, c.name)
	}
	sort.Strings(out)
	return out
}

// Running reports whether the host runs a container of that name.
func (h *Host) Running(name string) bool {
	e := h.engine
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.lookup(name)
	return c != nil && c.running()
}

// ContainerImage returns the image of container name.
func (h *Host) ContainerImage(name string) (string, bool) {
	e := h.engine
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.lookup(name); c != nil {
		return c.config.Image, true
	}
	return "", false
}

// Routes returns the upstreams of the host's proxy route table by route id.
func (h *Host) Routes() map[string]string {
	p := h.proxy
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]string{}
	for id, r := range p.routes {
		out[id] = r.Upstream
	}
	return out
}

// KillContainer kills a running container as the kernel's OOM killer or a person would
// (exit 137, events kill and die); it says whether there was one.
func (h *Host) KillContainer(name string) bool {
	return h.engine.kill(name, "SIGKILL", 137)
}

func (h *Host) close() {
	h.cancel()
	if h.ln != nil {
		_ = h.ln.Close()
	}
	h.mu.Lock()
	for c := range h.conns {
		_ = c.Close()
	}
	h.mu.Unlock()
	h.connsWG.Wait()
}

func (h *Host) logf(format string, args ...any) {
	if h.fleet.opts.Logf != nil {
		h.fleet.opts.Logf(h.Name+": "+format, args...)
	}
}

// ClientKey makes an ed25519 client key: its signer (whose public key a fleet authorizes) and
// its private key in OpenSSH PEM form (a Server's ssh-auth Secret).
func ClientKey() (ssh.Signer, []byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, nil, err
	}
	return signer, pem.EncodeToMemory(block), nil
}

func hostName(i int) string { return fmt.Sprintf("sim-%04d", i+1) }
