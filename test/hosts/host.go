package hosts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Host is one test VM: a network namespace with its own address, a mount and UTS namespace held
// by a `sleep infinity` process, and its own dockerd and sshd.
type Host struct {
	env   *Env
	index int
	name  string // "h1"
	netns string // "kamalop-h1"
	addr  string
	jump  *Host
	dir   string

	mu          sync.Mutex
	hostKeys    map[string]string // key type ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa") → "type AAAA…"
	streamLocal bool
	holder      *proc
	dockerd     *proc
	sshd        *proc
}

func execCommand(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"PATH=" + hostPATH, "HOME=/root", "LANG=C.UTF-8"}
	return cmd
}

// Name is "h1", "h2", …; Index is its 1-based number.
func (h *Host) Name() string { return h.name }
func (h *Host) Index() int   { return h.index }

// Hostname is the host's UTS name, e.g. "kamalop-h1"; it is also its netns name.
func (h *Host) Hostname() string { return h.netns }

// Address is the host's IPv4 address, e.g. "10.231.0.11".
func (h *Host) Address() string { return h.addr }

// SSHPort is the port of the host's sshd (22).
func (h *Host) SSHPort() int { return 22 }

// SSHAddress is "address:22".
func (h *Host) SSHAddress() string { return net.JoinHostPort(h.addr, "22") }

// JumpHost is the host through which alone this host is reachable, or nil for a host on the root
// bridge.
func (h *Host) JumpHost() *Host { return h.jump }

// Host key types of every host's sshd, as on a stock Debian or Ubuntu server (rsa 3072 bits,
// ecdsa P-256, ed25519), in the order of HostPublicKeys.
const (
	KeyTypeED25519 = "ssh-ed25519"
	KeyTypeECDSA   = "ecdsa-sha2-nistp256"
	KeyTypeRSA     = "ssh-rsa"
)

// hostKeyFiles are the host key files under the host's ssh folder, by key type, with the
// ssh-keygen arguments that make them.
var hostKeyFiles = []struct {
	typ, file string
	keygen    []string
}{
	{KeyTypeED25519, "ssh_host_ed25519_key", []string{"-t", "ed25519"}},
	{KeyTypeECDSA, "ssh_host_ecdsa_key", []string{"-t", "ecdsa", "-b", "256"}},
	{KeyTypeRSA, "ssh_host_rsa_key", []string{"-t", "rsa", "-b", "3072"}},
}

// HostPublicKey is the host's ed25519 sshd key in authorized_keys format: "ssh-ed25519 AAAA…"
// (what `ssh-keyscan -t ed25519 ADDRESS | cut -d' ' -f2-` prints).
func (h *Host) HostPublicKey() string { return h.HostPublicKeyOfType(KeyTypeED25519) }

// HostPublicKeyRSA is the host's rsa (3072 bits) sshd key: "ssh-rsa AAAA…".
func (h *Host) HostPublicKeyRSA() string { return h.HostPublicKeyOfType(KeyTypeRSA) }

// HostPublicKeyECDSA is the host's ecdsa (P-256) sshd key: "ecdsa-sha2-nistp256 AAAA…".
func (h *Host) HostPublicKeyECDSA() string { return h.HostPublicKeyOfType(KeyTypeECDSA) }

// HostPublicKeyOfType is the host's sshd key of type typ (KeyTypeED25519, KeyTypeECDSA,
// KeyTypeRSA) in authorized_keys format, or "" for a type the host lacks.
func (h *Host) HostPublicKeyOfType(typ string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hostKeys[typ]
}

// HostPublicKeys are all of the host's sshd keys in authorized_keys format: ed25519, ecdsa,
// rsa.
func (h *Host) HostPublicKeys() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var keys []string
	for _, f := range hostKeyFiles {
		if k := h.hostKeys[f.typ]; k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// KnownHostsLine is "address ssh-ed25519 AAAA…", a known_hosts line for this host.
func (h *Host) KnownHostsLine() string { return h.addr + " " + h.HostPublicKey() }

// KnownHostsLines are known_hosts lines for every key of the host ("address TYPE AAAA…"), as
// `ssh-keyscan ADDRESS` prints them.
func (h *Host) KnownHostsLines() []string {
	var lines []string
	for _, k := range h.HostPublicKeys() {
		lines = append(lines, h.addr+" "+k)
	}
	return lines
}

// ClientPrivateKeyPEM is the OpenSSH private key authorized for root on every host.
func (h *Host) ClientPrivateKeyPEM() []byte { return h.env.ClientPrivateKeyPEM() }

// ClientPrivateKeyPath is the file of ClientPrivateKeyPEM.
func (h *Host) ClientPrivateKeyPath() string { return h.env.ClientPrivateKeyPath() }

// DockerSocketPath is the host's /var/run/docker.sock as a path on this machine, for tests that
// talk to the host's dockerd directly.
func (h *Host) DockerSocketPath() string { return filepath.Join(h.dir, "run", "docker.sock") }

// DockerHost is "unix://" + DockerSocketPath(), for DOCKER_HOST.
func (h *Host) DockerHost() string { return "unix://" + h.DockerSocketPath() }

// RegistryAddress is the test registry as this host's dockerd reaches it, "10.231.0.1:5000".
func (h *Host) RegistryAddress() string { return RegistryAddress }

// StateDir is the host's folder on this machine (its /run, /var/lib/docker, /root, logs).
func (h *Host) StateDir() string { return h.dir }

// StreamLocalForwarding reports whether sshd allows direct-streamlocal channels.
func (h *Host) StreamLocalForwarding() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.streamLocal
}

// SSHArgs is an ssh command line (argv) that runs remote on this host as root with the client key
// and strict host key checking against Env.KnownHostsFile; through the jump host for a host
// behind one.
func (h *Host) SSHArgs(remote ...string) []string {
	opts := []string{
		"-i", h.ClientPrivateKeyPath(),
		"-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + h.env.KnownHostsFile(),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=5",
		"-o", "LogLevel=ERROR",
	}
	args := append([]string{"ssh"}, opts...)
	if h.jump != nil {
		args = append(args, "-o", "ProxyCommand="+strings.Join(append(append([]string{"ssh"}, opts...), "-W", "%h:%p", "root@"+h.jump.addr), " "))
	}
	args = append(args, "root@"+h.addr)
	return append(args, remote...)
}

// HolderPID is the PID of the process holding the host's mount and UTS namespaces (0 when the
// host is down): `nsenter --target PID --mount --uts --net` enters the host.
func (h *Host) HolderPID() int {
	pid, _ := h.holderPID()
	return pid
}

func (h *Host) holderPID() (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.holder.running() {
		return 0, fmt.Errorf("host %s is not running", h.name)
	}
	return h.holder.rec.PID, nil
}

// Command returns a command that runs args inside the host's namespaces (mount, UTS, network) as
// root, with PATH, HOME=/root and no DOCKER_HOST: `docker` there talks to the host's dockerd.
func (h *Host) Command(ctx context.Context, args ...string) (*exec.Cmd, error) {
	pid, err := h.holderPID()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--target", strconv.Itoa(pid), "--mount", "--uts", "--net", "--"}, args...)...)
	cmd.Env = []string{"PATH=" + hostPATH, "HOME=/root", "LANG=C.UTF-8"}
	cmd.WaitDelay = 5 * time.Second
	return cmd, nil
}

// Exec runs args inside the host and returns its stdout; a failure's error includes stderr.
func (h *Host) Exec(ctx context.Context, args ...string) ([]byte, error) {
	cmd, err := h.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s: %s: %w: %s", h.name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// KillContainer sends SIGKILL to the host's container name (docker kill).
func (h *Host) KillContainer(ctx context.Context, name string) error {
	_, err := h.Exec(ctx, "docker", "kill", "--signal", "KILL", name)
	return err
}

// outerLink runs ip on the outer end of the host's veth: in the root namespace, or in the jump
// host's namespace for a host behind one.
func (h *Host) outerLink(args ...string) error {
	if h.jump != nil {
		return ip(append([]string{"-n", h.jump.netns}, args...)...)
	}
	return ip(args...)
}

// CutNetwork takes the host off the network (its veth's outer end goes down): packets to and
// from it are dropped, open connections hang.
func (h *Host) CutNetwork(ctx context.Context) error {
	return h.outerLink("link", "set", h.netns, "down")
}

// RestoreNetwork undoes CutNetwork.
func (h *Host) RestoreNetwork(ctx context.Context) error {
	if err := h.outerLink("link", "set", h.netns, "up"); err != nil {
		return err
	}
	// The veth is usable once both ends report carrier; wait for it (bounded).
	return poll(ctx, 5*time.Second, h.name+" link up", func() (bool, error) {
		out, err := runCmd("ip", "-n", h.netns, "-o", "link", "show", "eth0")
		return err == nil && strings.Contains(out, "LOWER_UP"), nil
	})
}

func (h *Host) setupLink() error {
	steps := [][]string{{"netns", "add", h.netns}}
	if h.jump == nil {
		steps = append(steps,
			[]string{"link", "add", h.netns, "type", "veth", "peer", "name", "eth0", "netns", h.netns},
			[]string{"link", "set", h.netns, "master", BridgeName, "up"})
	} else {
		steps = append(steps,
			[]string{"-n", h.jump.netns, "link", "add", h.netns, "type", "veth", "peer", "name", "eth0", "netns", h.netns},
			[]string{"-n", h.jump.netns, "link", "set", h.netns, "master", JumpBridgeName, "up"})
	}
	prefix := "/27"
	gw := BridgeAddress
	if h.jump != nil {
		gw = jumpGW
	}
	steps = append(steps,
		[]string{"-n", h.netns, "link", "set", "lo", "up"},
		[]string{"-n", h.netns, "addr", "add", h.addr + prefix, "dev", "eth0"},
		[]string{"-n", h.netns, "link", "set", "eth0", "up"},
		[]string{"-n", h.netns, "route", "add", "default", "via", gw},
	)
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return nil
}

// setupJumpBridge gives a jump host a second bridge for the hosts behind it and masquerades their
// traffic to the registry. Forwarding is on before its dockerd starts, so Docker leaves the
// FORWARD policy at ACCEPT.
func (h *Host) setupJumpBridge() error {
	if out, _ := runCmd("ip", "-n", h.netns, "-o", "link", "show", JumpBridgeName); out != "" {
		return nil
	}
	for _, s := range [][]string{
		{"-n", h.netns, "link", "add", JumpBridgeName, "type", "bridge"},
		{"-n", h.netns, "addr", "add", jumpGW + "/27", "dev", JumpBridgeName},
		{"-n", h.netns, "link", "set", JumpBridgeName, "up"},
	} {
		if err := ip(s...); err != nil {
			return err
		}
	}
	ns := "--net=/run/netns/" + h.netns
	if _, err := runCmd("nsenter", ns, "--", "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"); err != nil {
		return err
	}
	_, err := runCmd("nsenter", ns, "--", "iptables", "-w", "5", "-t", "nat", "-A", "POSTROUTING",
		"-s", jumpNet, "-d", rootNet, "-o", "eth0", "-j", "MASQUERADE")
	return err
}

func writeFile(path string, data string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(data), mode)
}

func (h *Host) daemonJSON() string {
	pools := []map[string]any{}
	for _, p := range dockerPools {
		pools = append(pools, map[string]any{"base": p, "size": dockerPoolSize})
	}
	b, _ := json.MarshalIndent(map[string]any{
		"data-root":             "/var/lib/docker",
		"exec-root":             "/var/run/docker",
		"pidfile":               "/var/run/docker.pid",
		"hosts":                 []string{"unix:///var/run/docker.sock"},
		"insecure-registries":   []string{RegistryAddress, AuthRegistryAddress},
		"cgroup-parent":         h.netns,
		"bip":                   dockerBIP,
		"default-address-pools": pools,
		"storage-driver":        "overlay2",
		"log-driver":            "json-file",
		"log-opts":              map[string]string{"max-size": "10m", "max-file": "2"},
	}, "", "  ")
	return string(b) + "\n"
}

func (h *Host) sshdConfig() string {
	h.mu.Lock()
	sl := "yes"
	if !h.streamLocal {
		sl = "no"
	}
	h.mu.Unlock()
	return fmt.Sprintf(`# kamal-operator test host %s
Port 22
ListenAddress %s
HostKey %s
HostKey %s
HostKey %s
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthenticationMethods publickey
AuthorizedKeysFile .ssh/authorized_keys
UsePAM no
AllowTcpForwarding yes
AllowStreamLocalForwarding %s
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
PrintMotd no
UseDNS no
LogLevel VERBOSE
Subsystem sftp /usr/lib/openssh/sftp-server
`, h.name, h.addr, filepath.Join(h.dir, "ssh", "ssh_host_rsa_key"), filepath.Join(h.dir, "ssh", "ssh_host_ecdsa_key"),
		filepath.Join(h.dir, "ssh", "ssh_host_ed25519_key"), sl)
}

// boot prepares the host's folders, starts its namespace holder, mounts, dockerd and sshd, and
// waits until both answer.
func (h *Host) boot(ctx context.Context) error {
	d := h.dir
	for _, dir := range []string{"run/sshd", "var-lib-docker", "var-lib-kamal-operator", "etc-docker", "root/.ssh", "ssh", "etc"} {
		if err := os.MkdirAll(filepath.Join(d, dir), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(d, "root"), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(d, "root", ".ssh"), 0o700); err != nil {
		return err
	}
	files := []struct {
		path, data string
		mode       os.FileMode
	}{
		{"root/.ssh/authorized_keys", h.env.ClientPublicKey() + "\n", 0o600},
		{"etc-docker/daemon.json", h.daemonJSON(), 0o644},
		// Names resolve against the bridge address, where nothing answers DNS: lookups fail
		// at once and never leave the test network.
		{"etc/resolv.conf", "nameserver " + BridgeAddress + "\noptions timeout:1 attempts:1\n", 0o644},
		{"etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" + h.addr + "\t" + h.netns + "\n", 0o644},
		{"etc/hostname", h.netns + "\n", 0o644},
		{"ssh/sshd_config", h.sshdConfig(), 0o644},
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(d, f.path), f.data, f.mode); err != nil {
			return err
		}
	}
	if err := h.makeHostKeys(); err != nil {
		return err
	}

	// The holder: a process in the host's netns, in new mount and UTS namespaces whose mounts
	// do not propagate back. Everything else of the host is started inside its namespaces.
	holder, err := spawn("holder", filepath.Join(d, "holder.log"), "nsenter", "--net=/run/netns/"+h.netns, "--",
		"unshare", "--mount", "--uts", "--propagation", "private", "--", "sleep", "infinity")
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.holder = holder
	h.mu.Unlock()
	if err := h.env.save(); err != nil {
		return err
	}
	selfMnt, _ := os.Readlink("/proc/self/ns/mnt")
	pidDir := "/proc/" + strconv.Itoa(holder.rec.PID)
	if err := poll(ctx, 10*time.Second, h.name+" namespace holder", func() (bool, error) {
		if !holder.running() {
			return false, fmt.Errorf("namespace holder exited: %s", tail(filepath.Join(d, "holder.log")))
		}
		mnt, _ := os.Readlink(pidDir + "/ns/mnt")
		exe, _ := os.Readlink(pidDir + "/exe")
		return mnt != "" && mnt != selfMnt && strings.HasSuffix(exe, "/sleep"), nil
	}); err != nil {
		return err
	}
	script := fmt.Sprintf(`set -e
mkdir -p /var/lib/docker /var/lib/kamal-operator /etc/docker
mount --bind %[1]s/run /run
mount --bind %[1]s/var-lib-docker /var/lib/docker
mount --bind %[1]s/var-lib-kamal-operator /var/lib/kamal-operator
mount --bind %[1]s/etc-docker /etc/docker
mount --bind %[1]s/root /root
mount --bind %[1]s/etc/resolv.conf /etc/resolv.conf
mount --bind %[1]s/etc/hosts /etc/hosts
mount --bind %[1]s/etc/hostname /etc/hostname
hostname %[2]s
`, d, h.netns)
	if out, err := execCommand("nsenter", "--target", strconv.Itoa(holder.rec.PID), "--mount", "--uts", "--",
		"sh", "-c", script).CombinedOutput(); err != nil {
		return fmt.Errorf("mounts: %w: %s", err, out)
	}

	errc := make(chan error, 2)
	go func() { errc <- h.StartDockerd(ctx) }()
	go func() { errc <- h.StartSSHD(ctx) }()
	return joinErrs(<-errc, <-errc)
}

// makeHostKeys generates the host's rsa, ecdsa and ed25519 sshd keys (in parallel: rsa takes
// the longest) and records their public halves.
func (h *Host) makeHostKeys() error {
	keys := make([]string, len(hostKeyFiles))
	errs := make([]error, len(hostKeyFiles))
	var wg sync.WaitGroup
	for i, f := range hostKeyFiles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(h.dir, "ssh", f.file)
			args := append([]string{"-q", "-N", "", "-C", "root@" + h.netns, "-f", path}, f.keygen...)
			if _, err := runCmd("ssh-keygen", args...); err != nil {
				errs[i] = err
				return
			}
			pub, err := os.ReadFile(path + ".pub")
			if err != nil {
				errs[i] = err
				return
			}
			fs := strings.Fields(string(pub))
			if len(fs) < 2 || fs[0] != f.typ {
				errs[i] = fmt.Errorf("bad host key %s.pub", path)
				return
			}
			keys[i] = fs[0] + " " + fs[1]
		}()
	}
	wg.Wait()
	if err := joinErrs(errs...); err != nil {
		return err
	}
	h.mu.Lock()
	h.hostKeys = map[string]string{}
	for i, f := range hostKeyFiles {
		h.hostKeys[f.typ] = keys[i]
	}
	h.mu.Unlock()
	return nil
}

func joinErrs(errs ...error) error {
	var msgs []string
	for _, e := range errs {
		if e != nil {
			msgs = append(msgs, e.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

func (h *Host) nsenterArgs(pid int, args ...string) []string {
	return append([]string{"--target", strconv.Itoa(pid), "--mount", "--uts", "--net", "--"}, args...)
}

// StartDockerd starts the host's dockerd (if it is not running) and waits until it answers.
func (h *Host) StartDockerd(ctx context.Context) error {
	pid, err := h.holderPID()
	if err != nil {
		return err
	}
	h.mu.Lock()
	running := h.dockerd.running()
	h.mu.Unlock()
	if !running {
		logPath := filepath.Join(h.dir, "dockerd.log")
		p, err := spawn("dockerd", logPath, "nsenter", h.nsenterArgs(pid, "/usr/sbin/dockerd", "--config-file", "/etc/docker/daemon.json")...)
		if err != nil {
			return err
		}
		h.mu.Lock()
		h.dockerd = p
		h.mu.Unlock()
		if err := h.env.save(); err != nil {
			return err
		}
	}
	h.mu.Lock()
	p := h.dockerd
	h.mu.Unlock()
	c := dockerClient(h.DockerSocketPath(), 2*time.Second)
	return poll(ctx, 60*time.Second, h.name+" dockerd", func() (bool, error) {
		if !p.running() {
			return false, fmt.Errorf("dockerd exited: %s", tail(filepath.Join(h.dir, "dockerd.log")))
		}
		resp, err := c.Get("http://docker/_ping")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == 200, nil
	})
}

// StopDockerd stops the host's dockerd with SIGTERM (Docker then stops the containers, as on a
// VM whose docker service is stopped) and waits for it to exit; past ctx's deadline (or 60s) it
// kills dockerd and its containerd.
func (h *Host) StopDockerd(ctx context.Context) error {
	h.mu.Lock()
	p := h.dockerd
	h.mu.Unlock()
	if !p.running() {
		return nil
	}
	kids := descendants(p.rec.PID)
	p.rec.signal(syscall.SIGTERM)
	wait, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	select {
	case <-p.done:
		return nil
	case <-wait.Done():
	}
	p.rec.signal(syscall.SIGKILL)
	for _, k := range kids {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(k) + "/comm"); err == nil && strings.TrimSpace(string(b)) == "containerd" {
			_ = syscall.Kill(k, syscall.SIGKILL)
		}
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s: dockerd pid %d did not exit", h.name, p.rec.PID)
	}
}

// DockerAPIVersion asks the host's dockerd for its Engine API version (e.g. "1.41").
func (h *Host) DockerAPIVersion(ctx context.Context) (string, error) {
	c := dockerClient(h.DockerSocketPath(), 5*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/version", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct{ ApiVersion, Version string }
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil {
		return "", err
	}
	return v.ApiVersion, nil
}

// StartSSHD starts the host's sshd (if it is not running) with the current stream-local
// forwarding setting and waits until it listens.
func (h *Host) StartSSHD(ctx context.Context) error {
	pid, err := h.holderPID()
	if err != nil {
		return err
	}
	h.mu.Lock()
	running := h.sshd.running()
	h.mu.Unlock()
	if running {
		return nil
	}
	cfg := filepath.Join(h.dir, "ssh", "sshd_config")
	if err := writeFile(cfg, h.sshdConfig(), 0o644); err != nil {
		return err
	}
	logPath := filepath.Join(h.dir, "sshd.log")
	var offset int64
	if fi, err := os.Stat(logPath); err == nil {
		offset = fi.Size()
	}
	p, err := spawn("sshd", logPath, "nsenter", h.nsenterArgs(pid, "/usr/sbin/sshd", "-D", "-e", "-f", cfg)...)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.sshd = p
	h.mu.Unlock()
	if err := h.env.save(); err != nil {
		return err
	}
	want := "Server listening on " + h.addr + " port 22"
	return poll(ctx, 15*time.Second, h.name+" sshd", func() (bool, error) {
		if !p.running() {
			return false, fmt.Errorf("sshd exited: %s", tail(logPath))
		}
		f, err := os.Open(logPath)
		if err != nil {
			return false, nil
		}
		defer f.Close()
		b, _ := io.ReadAll(io.NewSectionReader(f, offset, 1<<20))
		return bytes.Contains(b, []byte(want)), nil
	})
}

// StopSSHD stops the host's sshd and ends its open connections (the clients see them close);
// new connections are refused until StartSSHD.
func (h *Host) StopSSHD(ctx context.Context) error {
	h.mu.Lock()
	p := h.sshd
	h.mu.Unlock()
	if !p.running() {
		return nil
	}
	kids := descendants(p.rec.PID)
	p.rec.signal(syscall.SIGTERM)
	for _, k := range kids {
		_ = syscall.Kill(k, syscall.SIGTERM)
	}
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	select {
	case <-p.done:
	case <-wait.Done():
		p.rec.signal(syscall.SIGKILL)
		<-p.done
	}
	return h.killLeft(kids, 5*time.Second)
}

// DropSSHConnections ends the open SSH connections to the host (their sshd processes) and
// leaves sshd listening, as a network blip would.
func (h *Host) DropSSHConnections(ctx context.Context) error {
	h.mu.Lock()
	p := h.sshd
	h.mu.Unlock()
	if !p.running() {
		return nil
	}
	kids := descendants(p.rec.PID)
	for _, k := range kids {
		_ = syscall.Kill(k, syscall.SIGTERM)
	}
	return h.killLeft(kids, 5*time.Second)
}

// killLeft waits for pids to exit, then SIGKILLs those left; they are checked to be in the host's
// netns first, so a recycled PID is never hit.
func (h *Host) killLeft(pids []int, grace time.Duration) error {
	m := newHostMatcher(h.netns)
	deadline := time.Now().Add(grace)
	for {
		var left []int
		for _, pid := range pids {
			if st, _, err := procStat(pid); err == nil && st != 'Z' && m.match(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			if time.Now().After(deadline.Add(5 * time.Second)) {
				return fmt.Errorf("%s: processes %v did not exit", h.name, left)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SetStreamLocalForwarding restarts sshd with AllowStreamLocalForwarding on or off.
func (h *Host) SetStreamLocalForwarding(ctx context.Context, on bool) error {
	if err := h.StopSSHD(ctx); err != nil {
		return err
	}
	h.mu.Lock()
	h.streamLocal = on
	h.mu.Unlock()
	return h.StartSSHD(ctx)
}
