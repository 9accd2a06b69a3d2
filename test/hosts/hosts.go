// Package hosts brings up real test "VMs" on this machine for kamal-operator's end-to-end tests:
// each host is a network namespace with its own address, plus a mount and UTS namespace in which
// /run, /var/lib/docker, /etc/docker and /root are the host's own folders, running its own
// dockerd (Debian's docker.io) and sshd (Debian's openssh-server). One Docker registry (Debian's
// docker-registry) serves all hosts from the bridge address, with the fixture images of
// test/images pushed to it.
//
// Addresses (all inside 10.231.0.0/16; nothing is routed outside it):
//
//	10.231.0.0/27    root bridge kamalop0: .1 this machine (registry :5000), .11-.30 hosts 1-20
//	10.231.0.32/27   behind a jump host: .33 the jump host's bridge kamalopj0, .41-.60 hosts 1-20
//	10.231.0.64/27   docker0 inside every host
//	10.231.128.0/17  Docker's address pools inside every host (user networks): 128 networks of
//	                 /24, one per namespace a host serves plus the shared "kamal" network
//
// Docker's own default pools hold about 30 networks; each namespace on a host has one, so the
// test hosts get more (as docs/api.md tells operators to). The root namespace does not forward
// packets, and an unreachable route covers the /16, so no packet from a host or a container
// reaches any address but these. Hosts behind a jump host
// reach the registry through the jump host, which masquerades them.
//
// Start and Close (and Teardown, for what an interrupted run left behind) hold a lock file, so
// test binaries that run at the same time take turns.
package hosts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kamal-operator/kamal-operator/test/images"
)

// Names and addresses shared by every Env.
const (
	Prefix          = "kamalop"         // of every netns, link and cgroup this package makes
	BridgeName      = "kamalop0"        // root-namespace bridge
	JumpBridgeName  = "kamalopj0"       // bridge inside a jump host
	Subnet          = "10.231.0.0/16"   // every address used
	BridgeAddress   = "10.231.0.1"      // this machine on the bridge
	RegistryAddress = "10.231.0.1:5000" // the test registry (plain HTTP, insecure in every dockerd)
	// AuthRegistryAddress is a second, empty registry that asks for a password (htpasswd basic
	// auth over plain HTTP, insecure in every dockerd): pushes and pulls with credentials.
	AuthRegistryAddress = "10.231.0.1:5001"
	AuthRegistryUser    = "kamal"
	DefaultStateDir     = "/tmp/kamalop-hosts" // per-run state: keys, configs, logs, Docker data
	LockPath            = "/tmp/kamalop-hosts.lock"
	MaxHosts            = 20

	rootNet   = "10.231.0.0/27"
	jumpNet   = "10.231.0.32/27"
	jumpGW    = "10.231.0.33"
	dockerBIP = "10.231.0.65/27"
	hostPATH  = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// dockerPools are Docker's address pools inside every host (the same on each: they never leave
// it), split into networks of dockerPoolSize.
var dockerPools = []string{"10.231.128.0/17"}

const dockerPoolSize = 24

// HostOptions sets up one host.
type HostOptions struct {
	// Behind is the 1-based index of the host through which alone this host is reachable (its
	// jump host, which must itself be on the root bridge); 0 puts the host on the root bridge.
	Behind int
	// NoStreamLocalForwarding starts sshd with AllowStreamLocalForwarding no, so that clients
	// must fall back to `docker system dial-stdio`.
	NoStreamLocalForwarding bool
}

// Options of Start.
type Options struct {
	// N hosts on the root bridge; used when Hosts is empty (0 means 1).
	N int
	// Hosts lays the hosts out one by one (host i+1 is Hosts[i]); it overrides N.
	Hosts []HostOptions
	// StateDir holds keys, configs, logs and the hosts' Docker data; default DefaultStateDir.
	// It is deleted by Close.
	StateDir string
	// NoImages skips building and pushing the fixture images.
	NoImages bool
	// Logf receives progress lines (nil: silent).
	Logf func(format string, args ...any)
}

// Env is a set of running hosts and the registry. Close tears everything down.
type Env struct {
	Hosts    []*Host
	stateDir string
	logf     func(string, ...any)

	mu        sync.Mutex
	saveMu    sync.Mutex // serializes writes of state.json
	registry  *proc
	authReg   *proc
	authPass  string
	lock      *os.File
	closed    bool
	clientKey []byte
	clientPub string
	images    []images.Result
	timings   map[string]time.Duration
}

func hostName(i int) string  { return "h" + strconv.Itoa(i) }
func netnsName(i int) string { return Prefix + "-" + hostName(i) }

// Start brings up the hosts of opts in parallel, with the registry and the fixture images, after
// clearing what an earlier, interrupted run left behind. It installs missing Debian packages.
// On error everything started is torn down.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	if os.Geteuid() != 0 {
		return nil, errNotRoot
	}
	layout := opts.Hosts
	if len(layout) == 0 {
		n := opts.N
		if n <= 0 {
			n = 1
		}
		layout = make([]HostOptions, n)
	}
	if len(layout) > MaxHosts {
		return nil, fmt.Errorf("hosts: at most %d hosts", MaxHosts)
	}
	for i, h := range layout {
		if h.Behind == 0 {
			continue
		}
		if h.Behind < 1 || h.Behind > len(layout) || h.Behind == i+1 || layout[h.Behind-1].Behind != 0 {
			return nil, fmt.Errorf("hosts: host %d: Behind=%d must name another host on the root bridge", i+1, h.Behind)
		}
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	stateDir := opts.StateDir
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	tl := time.Now()
	lock, err := acquireLock(ctx, logf)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	e := &Env{stateDir: stateDir, logf: logf, lock: lock, timings: map[string]time.Duration{"lock-wait": t0.Sub(tl)}}
	defer func() {
		if err != nil {
			if cerr := e.Close(); cerr != nil {
				logf("teardown after failed start: %v", cerr)
			}
		}
	}()
	if err := EnsurePackages(ctx, logf); err != nil {
		return nil, err
	}
	e.timings["packages"] = time.Since(t0)
	t1 := time.Now()
	if err := teardown(stateDir, logf); err != nil {
		return nil, fmt.Errorf("hosts: clearing an earlier run: %w", err)
	}
	e.timings["clear-leftovers"] = time.Since(t1)
	t1 = time.Now()
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, err
	}
	for i, ho := range layout {
		h := &Host{env: e, index: i + 1, name: hostName(i + 1), netns: netnsName(i + 1),
			dir: filepath.Join(stateDir, hostName(i+1)), streamLocal: !ho.NoStreamLocalForwarding}
		if ho.Behind == 0 {
			h.addr = "10.231.0." + strconv.Itoa(10+i+1)
		} else {
			h.addr = "10.231.0." + strconv.Itoa(40+i+1)
		}
		e.Hosts = append(e.Hosts, h)
	}
	for i, ho := range layout {
		if ho.Behind != 0 {
			e.Hosts[i].jump = e.Hosts[ho.Behind-1]
		}
	}
	if err := e.save(); err != nil {
		return nil, err
	}
	if err := e.makeClientKey(); err != nil {
		return nil, err
	}
	if err := e.setupNetwork(); err != nil {
		return nil, err
	}
	if err := e.startRegistry(ctx); err != nil {
		return nil, err
	}
	if err := e.startAuthRegistry(ctx); err != nil {
		return nil, err
	}
	e.timings["network+registry"] = time.Since(t1)

	imgDone := make(chan error, 1)
	if opts.NoImages {
		imgDone <- nil
	} else {
		go func() {
			t := time.Now()
			res, err := images.EnsureFixtures(ctx, images.Registry{Addr: RegistryAddress}, logf)
			e.mu.Lock()
			e.images = res
			e.timings["images"] = time.Since(t)
			e.mu.Unlock()
			imgDone <- err
		}()
	}

	t1 = time.Now()
	errs := make([]error, len(e.Hosts))
	var wg sync.WaitGroup
	for i, h := range e.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.boot(ctx); err != nil {
				errs[i] = fmt.Errorf("host %s (%s): %w", h.name, h.addr, err)
			}
		}()
	}
	wg.Wait()
	e.mu.Lock()
	e.timings["hosts"] = time.Since(t1)
	e.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		<-imgDone
		return nil, err
	}
	if err := e.writeKnownHosts(); err != nil {
		<-imgDone
		return nil, err
	}
	if err := <-imgDone; err != nil {
		return nil, fmt.Errorf("hosts: fixture images: %w", err)
	}
	e.mu.Lock()
	e.timings["total"] = time.Since(t0)
	e.mu.Unlock()
	if err := e.save(); err != nil {
		return nil, err
	}
	logf("%d hosts up in %s", len(e.Hosts), time.Since(t0).Round(time.Millisecond))
	return e, nil
}

func acquireLock(ctx context.Context, logf func(string, ...any)) (*os.File, error) {
	f, err := os.OpenFile(LockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	waitStart := time.Now()
	for i := 0; ; i++ {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			// The holder's PID, for the message of whoever waits next.
			_ = f.Truncate(0)
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			if i > 0 {
				logf("got %s after %s", LockPath, time.Since(waitStart).Round(time.Second))
			}
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if i%150 == 0 { // at once, then every 30s
			holder, _ := os.ReadFile(LockPath)
			logf("waiting for %s: test hosts are in use by pid %s", LockPath, strings.TrimSpace(string(holder)))
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("hosts: waiting for %s (test hosts in use by another process): %w", LockPath, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Close tears down everything Start made: it kills the processes it started (by their recorded
// PIDs) and those in the hosts' namespaces and container cgroups, deletes the namespaces, links,
// bridge, route and cgroups, and removes the state folder. It can be called more than once.
// With KAMALOP_KEEP_HOSTS=1 in the environment it leaves everything running, for a look after a
// failed test; the next Start (or `testhosts down`) removes it.
func (e *Env) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	t := time.Now()
	_ = e.save()
	if os.Getenv("KAMALOP_KEEP_HOSTS") == "1" {
		e.logf("KAMALOP_KEEP_HOSTS=1: leaving the hosts running (state in %s; remove with `go run ./test/hosts/cmd/testhosts down`)", e.stateDir)
		if e.lock != nil {
			e.lock.Close()
		}
		return nil
	}
	err := teardown(e.stateDir, e.logf)
	// Reap what we started (the goroutines waiting on them end once they die).
	for _, p := range e.allProcs() {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
	e.mu.Lock()
	e.timings["teardown"] = time.Since(t)
	e.mu.Unlock()
	if e.lock != nil {
		e.lock.Close()
	}
	return err
}

func (e *Env) allProcs() []*proc {
	var ps []*proc
	e.mu.Lock()
	if e.registry != nil {
		ps = append(ps, e.registry)
	}
	if e.authReg != nil {
		ps = append(ps, e.authReg)
	}
	e.mu.Unlock()
	for _, h := range e.Hosts {
		h.mu.Lock()
		for _, p := range []*proc{h.holder, h.dockerd, h.sshd} {
			if p != nil {
				ps = append(ps, p)
			}
		}
		h.mu.Unlock()
	}
	return ps
}

// Host returns host i (1-based), or nil.
func (e *Env) Host(i int) *Host {
	if i < 1 || i > len(e.Hosts) {
		return nil
	}
	return e.Hosts[i-1]
}

// StateDir is the folder with this run's keys, configs, logs and Docker data.
func (e *Env) StateDir() string { return e.stateDir }

// RegistryAddress is host:port of the test registry, e.g. "10.231.0.1:5000".
func (e *Env) RegistryAddress() string { return RegistryAddress }

// AuthRegistry is the registry that asks for a password: its address, user and this run's
// password (random, so that a search for it on a host finds only copies of this run's).
func (e *Env) AuthRegistry() (addr, user, password string) {
	return AuthRegistryAddress, AuthRegistryUser, e.authPass
}

// Image returns the registry reference of a fixture image: Image("sampleapp:v1") is
// "10.231.0.1:5000/sampleapp:v1".
func (e *Env) Image(nameTag string) string { return RegistryAddress + "/" + nameTag }

// ProxyImage is the reference of the Caddy proxy image.
func (e *Env) ProxyImage() string { return e.Image(images.ProxyRepo + ":" + images.ProxyTag) }

// Images tells what Start built and pushed.
func (e *Env) Images() []images.Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]images.Result(nil), e.images...)
}

// Timings of Start's phases and of Close ("lock-wait", "packages", "clear-leftovers",
// "network+registry", "images", "hosts", "total" (without lock-wait), "teardown").
func (e *Env) Timings() map[string]time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := map[string]time.Duration{}
	for k, v := range e.timings {
		m[k] = v
	}
	return m
}

// ClientPrivateKeyPEM is the OpenSSH-format ed25519 private key that every host authorizes for root.
func (e *Env) ClientPrivateKeyPEM() []byte { return append([]byte(nil), e.clientKey...) }

// ClientPrivateKeyPath is the file of ClientPrivateKeyPEM (mode 0600), for `ssh -i`.
func (e *Env) ClientPrivateKeyPath() string { return filepath.Join(e.stateDir, "client", "id_ed25519") }

// ClientPublicKey is the authorized key, "ssh-ed25519 AAAA… kamalop-client".
func (e *Env) ClientPublicKey() string { return e.clientPub }

// KnownHostsFile is a known_hosts file with every host's key under its address.
func (e *Env) KnownHostsFile() string { return filepath.Join(e.stateDir, "known_hosts") }

func (e *Env) makeClientKey() error {
	dir := filepath.Join(e.stateDir, "client")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key := filepath.Join(dir, "id_ed25519")
	if _, err := runCmd("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kamalop-client", "-f", key); err != nil {
		return err
	}
	priv, err := os.ReadFile(key)
	if err != nil {
		return err
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return err
	}
	e.clientKey, e.clientPub = priv, strings.TrimSpace(string(pub))
	return nil
}

func (e *Env) writeKnownHosts() error {
	var b strings.Builder
	for _, h := range e.Hosts {
		for _, l := range h.KnownHostsLines() {
			fmt.Fprintf(&b, "%s\n", l)
		}
	}
	return os.WriteFile(e.KnownHostsFile(), []byte(b.String()), 0o644)
}

// ip runs `ip args...` in the root network namespace.
func ip(args ...string) error {
	_, err := runCmd("ip", args...)
	return err
}

func (e *Env) setupNetwork() error {
	steps := [][]string{
		{"link", "add", BridgeName, "type", "bridge"},
		{"addr", "add", BridgeAddress + "/27", "dev", BridgeName},
		{"link", "set", BridgeName, "up"},
		// Anything in the /16 that is not on the bridge is unreachable from here, never sent
		// to the default route.
		{"route", "add", "unreachable", Subnet},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	// Jump hosts first: their bridges must exist before the hosts behind them.
	for _, h := range e.Hosts {
		if h.jump != nil {
			continue
		}
		if err := h.setupLink(); err != nil {
			return err
		}
	}
	for _, h := range e.Hosts {
		if h.jump == nil {
			continue
		}
		if err := h.jump.setupJumpBridge(); err != nil {
			return err
		}
		if err := h.setupLink(); err != nil {
			return err
		}
	}
	return nil
}

const registryConfig = `version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: kamal-operator-test-registry
`

func (e *Env) startRegistry(ctx context.Context) error {
	dir := filepath.Join(e.stateDir, "registry")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return err
	}
	// The file name identifies this package's registry process in its command line.
	cfg := filepath.Join(dir, "kamalop-registry.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(registryConfig, filepath.Join(dir, "data"), RegistryAddress)), 0o644); err != nil {
		return err
	}
	p, err := spawn("registry", filepath.Join(dir, "registry.log"), "/usr/bin/docker-registry", "serve", cfg)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.registry = p
	e.mu.Unlock()
	if err := e.save(); err != nil {
		return err
	}
	reg := images.Registry{Addr: RegistryAddress, Client: &http.Client{Timeout: 2 * time.Second}}
	return poll(ctx, 30*time.Second, "registry at "+RegistryAddress, func() (bool, error) {
		if !p.running() {
			return false, fmt.Errorf("registry exited: %s", tail(filepath.Join(dir, "registry.log")))
		}
		return reg.Ping(ctx) == nil, nil
	})
}

// authRegistryConfig is registryConfig with htpasswd basic auth.
const authRegistryConfig = registryConfig + `auth:
  htpasswd:
    realm: kamalop-auth-registry
    path: %s
`

// startAuthRegistry starts the registry with htpasswd auth, its password new for each run.
func (e *Env) startAuthRegistry(ctx context.Context) error {
	dir := filepath.Join(e.stateDir, "auth-registry")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return err
	}
	rnd := make([]byte, 16)
	if _, err := rand.Read(rnd); err != nil {
		return err
	}
	pass := "pw-" + hex.EncodeToString(rnd)
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(AuthRegistryUser+":"+string(hash)+"\n"), 0o600); err != nil {
		return err
	}
	cfg := filepath.Join(dir, authRegistryConfigName)
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(authRegistryConfig, filepath.Join(dir, "data"), AuthRegistryAddress, htpasswd)), 0o644); err != nil {
		return err
	}
	p, err := spawn("auth-registry", filepath.Join(dir, "registry.log"), "/usr/bin/docker-registry", "serve", cfg)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.authReg, e.authPass = p, pass
	e.mu.Unlock()
	if err := e.save(); err != nil {
		return err
	}
	// Up is when /v2/ answers at all: without credentials it says 401.
	hc := &http.Client{Timeout: 2 * time.Second}
	return poll(ctx, 30*time.Second, "registry at "+AuthRegistryAddress, func() (bool, error) {
		if !p.running() {
			return false, fmt.Errorf("registry exited: %s", tail(filepath.Join(dir, "registry.log")))
		}
		resp, err := hc.Get("http://" + AuthRegistryAddress + "/v2/")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized, nil
	})
}

// poll calls cond every 50ms until it reports true, fails, ctx ends or timeout passes.
func poll(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return "\n--- " + path + " ---\n" + string(b)
}

// spawn starts a long-lived process in its own process group (a Ctrl-C of the test or CLI does
// not reach it) with output appended to logPath, and reaps it when it exits.
func spawn(role, logPath string, name string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := execCommand(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	_, start, err := procStat(cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{rec: procRecord{Role: role, PID: cmd.Process.Pid, Start: start}, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// record is the state file (state.json) from which Teardown, Status and the next Start learn what
// a run started.
type record struct {
	StateDir string          `json:"stateDir"`
	OwnerPID int             `json:"ownerPID"`
	Registry *procRecord     `json:"registry,omitempty"`
	AuthReg  *procRecord     `json:"authRegistry,omitempty"`
	Hosts    []hostRecord    `json:"hosts"`
	Images   []images.Result `json:"images,omitempty"`
}

type hostRecord struct {
	Name                  string       `json:"name"`
	NetNS                 string       `json:"netns"`
	Address               string       `json:"address"`
	Behind                string       `json:"behind,omitempty"`
	StreamLocalForwarding bool         `json:"streamLocalForwarding"`
	Dir                   string       `json:"dir"`
	DockerSocket          string       `json:"dockerSocket"`
	HostPublicKey         string       `json:"hostPublicKey,omitempty"`  // ed25519
	HostPublicKeys        []string     `json:"hostPublicKeys,omitempty"` // ed25519, ecdsa, rsa
	Procs                 []procRecord `json:"procs"`
}

func (e *Env) save() error {
	e.saveMu.Lock()
	defer e.saveMu.Unlock()
	r := record{StateDir: e.stateDir, OwnerPID: os.Getpid()}
	e.mu.Lock()
	if e.registry != nil {
		rr := e.registry.rec
		r.Registry = &rr
	}
	if e.authReg != nil {
		ar := e.authReg.rec
		r.AuthReg = &ar
	}
	r.Images = append(r.Images, e.images...)
	e.mu.Unlock()
	for _, h := range e.Hosts {
		h.mu.Lock()
		hr := hostRecord{Name: h.name, NetNS: h.netns, Address: h.addr, StreamLocalForwarding: h.streamLocal,
			Dir: h.dir, DockerSocket: h.DockerSocketPath(), HostPublicKey: h.hostKeys[KeyTypeED25519]}
		for _, f := range hostKeyFiles {
			if k := h.hostKeys[f.typ]; k != "" {
				hr.HostPublicKeys = append(hr.HostPublicKeys, k)
			}
		}
		if h.jump != nil {
			hr.Behind = h.jump.name
		}
		for _, p := range []*proc{h.holder, h.dockerd, h.sshd} {
			if p != nil {
				hr.Procs = append(hr.Procs, p.rec)
			}
		}
		h.mu.Unlock()
		r.Hosts = append(r.Hosts, hr)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(e.stateDir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(e.stateDir, ".state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(e.stateDir, "state.json"))
}

// dockerClient is an HTTP client for a Docker socket.
func dockerClient(sock string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			DisableKeepAlives: true,
		},
	}
}
