package hosts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func readRecord(stateDir string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, "state.json"))
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s/state.json: %w", stateDir, err)
	}
	return &r, nil
}

// Teardown removes whatever a run left in stateDir ("" means DefaultStateDir) and on this
// machine: the processes recorded in its state.json and those in any kamalop-* network namespace
// or container cgroup, the namespaces, links, bridge, route and cgroups, and the folder. Start does
// the same before it begins; the CLI's `down` calls it.
func Teardown(ctx context.Context, stateDir string, logf func(string, ...any)) error {
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	lock, err := acquireLock(ctx, logf)
	if err != nil {
		return err
	}
	defer lock.Close()
	return teardown(stateDir, logf)
}

var hostNetnsRE = regexp.MustCompile(`^` + Prefix + `-h[0-9]+$`)

func ourNetns() []string {
	ents, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range ents {
		if hostNetnsRE.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// ourLinks lists the root namespace's links named kamalop*.
func ourLinks() []string {
	out, _ := runCmd("ip", "-o", "link", "show")
	var links []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.SplitN(line, ": ", 3)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(f[1], "@")
		if strings.HasPrefix(name, Prefix) {
			links = append(links, name)
		}
	}
	return links
}

// authRegistryConfigName names the config of the registry with auth; like kamalop-registry.yml
// it identifies this package's process.
const authRegistryConfigName = "kamalop-registry-auth.yml"

// registryPIDs finds docker-registry processes serving a kamalop-registry.yml or
// kamalop-registry-auth.yml (this package's).
func registryPIDs() []int {
	var pids []int
	for _, pid := range allPIDs() {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) >= 3 && filepath.Base(args[0]) == "docker-registry" && args[1] == "serve" &&
			(filepath.Base(args[2]) == "kamalop-registry.yml" || filepath.Base(args[2]) == authRegistryConfigName) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func teardown(stateDir string, logf func(string, ...any)) error {
	var errs []error
	rec, err := readRecord(stateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		logf("ignoring unreadable state: %v", err)
	}
	names := map[string]bool{}
	for _, n := range ourNetns() {
		names[n] = true
	}
	var recorded []procRecord
	if rec != nil {
		if rec.Registry != nil {
			recorded = append(recorded, *rec.Registry)
		}
		if rec.AuthReg != nil {
			recorded = append(recorded, *rec.AuthReg)
		}
		for _, h := range rec.Hosts {
			if hostNetnsRE.MatchString(h.NetNS) {
				names[h.NetNS] = true
			}
			recorded = append(recorded, h.Procs...)
		}
	}
	var matchers []hostMatcher
	for n := range names {
		matchers = append(matchers, newHostMatcher(n))
	}
	// Processes: the recorded ones (PID and start time must match), this package's registry,
	// then everything in the hosts' namespaces and container cgroups, until none is left.
	for _, r := range recorded {
		r.signal(syscall.SIGKILL)
	}
	for _, pid := range registryPIDs() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := killMatching(matchers, 15*time.Second); err != nil {
		errs = append(errs, err)
	}
	if !waitGone(recorded, 5*time.Second) {
		errs = append(errs, errors.New("recorded processes still alive"))
	}

	// Links (deleting one end of a veth deletes both), namespaces, the route.
	for _, l := range ourLinks() {
		if err := ip("link", "del", l); err != nil && !strings.Contains(err.Error(), "Cannot find") {
			errs = append(errs, err)
		}
	}
	for n := range names {
		if _, err := os.Stat(filepath.Join("/run/netns", n)); err == nil {
			if err := ip("netns", "del", n); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for i := 0; i < 100 && len(ourLinks()) > 0; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if l := ourLinks(); len(l) > 0 {
		errs = append(errs, fmt.Errorf("links still present: %v", l))
	}
	if out, _ := runCmd("ip", "route", "show", "type", "unreachable", Subnet); strings.TrimSpace(out) != "" {
		if err := ip("route", "del", "unreachable", Subnet); err != nil {
			errs = append(errs, err)
		}
	}

	if err := removeCgroups(); err != nil {
		errs = append(errs, err)
	}
	if err := unmountUnder(stateDir); err != nil {
		errs = append(errs, err)
	}
	var rmErr error
	for i := 0; i < 10; i++ {
		if rmErr = os.RemoveAll(stateDir); rmErr == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rmErr != nil {
		errs = append(errs, rmErr)
	}
	return errors.Join(errs...)
}

// cgroupMounts lists the mount points of the cgroup (v1) and cgroup2 file systems.
func cgroupMounts() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) >= 5 && len(qf) >= 1 && (qf[0] == "cgroup" || qf[0] == "cgroup2") {
			out = append(out, pf[4])
		}
	}
	return out
}

// removeCgroups removes the (empty) cgroups that the hosts' dockerd made for their containers,
// named kamalop-hN after the host, wherever they are in each hierarchy (up to 4 levels deep).
func removeCgroups() error {
	var found []string
	var walk func(dir string, depth int)
	walk = func(dir string, depth int) {
		if depth > 4 {
			return
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if hostNetnsRE.MatchString(e.Name()) {
				found = append(found, p)
				continue
			}
			walk(p, depth+1)
		}
	}
	for _, m := range cgroupMounts() {
		walk(m, 0)
	}
	var errs []error
	for _, root := range found {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			var err error
			for i := 0; i < 50; i++ {
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// unmountUnder detaches any mount at or below dir in this mount namespace (there should be none:
// the hosts' mounts live in their own namespaces), so that removing dir never reaches into one.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mps = append(mps, f[4])
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	var errs []error
	for _, mp := range mps {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("umount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// HostStatus is what Status finds of one host.
type HostStatus struct {
	Name, NetNS, Address, Behind, DockerSocket, HostPublicKey string   // HostPublicKey: the ed25519 key
	HostPublicKeys                                            []string // ed25519, ecdsa, rsa
	StreamLocalForwarding                                     bool
	Procs                                                     map[string]int // role → PID, alive ones only
	Dead                                                      []string       // roles whose process is gone
}

// EnvStatus is what Status finds of a run.
// Processes lists the host's processes as "holder=PID dockerd=PID sshd=PID", "role=down" for
// dead ones.
func (h HostStatus) Processes() string {
	var procs []string
	for _, role := range []string{"holder", "dockerd", "sshd"} {
		if pid, ok := h.Procs[role]; ok {
			procs = append(procs, fmt.Sprintf("%s=%d", role, pid))
		}
	}
	for _, d := range h.Dead {
		procs = append(procs, d+"=down")
	}
	return strings.Join(procs, " ")
}

type EnvStatus struct {
	StateDir       string
	RegistryPID    int // 0 if not running
	Hosts          []HostStatus
	LeftoverNetns  []string // kamalop-* namespaces on this machine
	LeftoverLinks  []string // kamalop* links in the root namespace
	KnownHostsFile string
	ClientKeyFile  string
}

// Status reads the state of the run in stateDir ("" means DefaultStateDir) and checks which of
// its processes are alive. It starts nothing and takes no lock.
func Status(stateDir string) (*EnvStatus, error) {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	st := &EnvStatus{StateDir: stateDir, LeftoverNetns: ourNetns(), LeftoverLinks: ourLinks(),
		KnownHostsFile: filepath.Join(stateDir, "known_hosts"), ClientKeyFile: filepath.Join(stateDir, "client", "id_ed25519")}
	rec, err := readRecord(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if rec.Registry != nil && rec.Registry.alive() {
		st.RegistryPID = rec.Registry.PID
	}
	for _, h := range rec.Hosts {
		hs := HostStatus{Name: h.Name, NetNS: h.NetNS, Address: h.Address, Behind: h.Behind,
			DockerSocket: h.DockerSocket, HostPublicKey: h.HostPublicKey, HostPublicKeys: h.HostPublicKeys,
			StreamLocalForwarding: h.StreamLocalForwarding, Procs: map[string]int{}}
		for _, p := range h.Procs {
			if p.alive() {
				hs.Procs[p.Role] = p.PID
			} else {
				hs.Dead = append(hs.Dead, p.Role)
			}
		}
		st.Hosts = append(st.Hosts, hs)
	}
	return st, nil
}
