package hosts

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procRecord identifies a process this package started: its PID and its start time (field 22
// of /proc/PID/stat), so that a recycled PID is never mistaken for it.
type procRecord struct {
	Role  string `json:"role"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// proc is a running process started by this Env (reaped by a goroutine waiting on it).
type proc struct {
	rec  procRecord
	done chan struct{}
}

func (p *proc) running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// procStat returns the state letter and start time of pid.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0][0], start, err
}

func procPPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return -1
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// alive reports whether the recorded process still runs (same PID and start time, not a zombie).
func (r procRecord) alive() bool {
	if r.PID <= 1 {
		return false
	}
	st, start, err := procStat(r.PID)
	return err == nil && start == r.Start && st != 'Z' && st != 'X'
}

// signal sends sig to the recorded process if it is still that process.
func (r procRecord) signal(sig syscall.Signal) {
	if r.alive() {
		_ = syscall.Kill(r.PID, sig)
	}
}

func allPIDs() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 1 && n != os.Getpid() {
			pids = append(pids, n)
		}
	}
	return pids
}

func nsInode(path string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	return st.Ino
}

// hostMatcher finds the processes of one test host: those in its network namespace (holder,
// dockerd, containerd, shims, docker-proxy, sshd and its sessions, host-network containers) and
// those in its containers' cgroups (Docker's cgroup parent is the host's name).
type hostMatcher struct {
	netnsIno uint64
	cgroup   string // "/kamalop-h1/"
}

func newHostMatcher(netns string) hostMatcher {
	return hostMatcher{
		netnsIno: nsInode(filepath.Join("/run/netns", netns)),
		cgroup:   "/" + netns + "/",
	}
}

func (m hostMatcher) match(pid int) bool {
	p := "/proc/" + strconv.Itoa(pid)
	if m.netnsIno != 0 && nsInode(p+"/ns/net") == m.netnsIno {
		return true
	}
	b, err := os.ReadFile(p + "/cgroup")
	return err == nil && strings.Contains(string(b), m.cgroup)
}

// livePIDs returns the live (non-zombie) processes matching any of ms.
func livePIDs(ms []hostMatcher) []int {
	var out []int
	for _, pid := range allPIDs() {
		st, _, err := procStat(pid)
		if err != nil || st == 'Z' || st == 'X' {
			continue
		}
		for _, m := range ms {
			if m.match(pid) {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// killMatching SIGKILLs every process matching ms until none is left, for at most timeout.
func killMatching(ms []hostMatcher, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for i := 0; ; i++ {
		pids := livePIDs(ms)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) || i > 200 {
			return fmt.Errorf("processes %v still running after %s", pids, timeout)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// descendants returns the live descendants of pid (children first found by PPID).
func descendants(pid int) []int {
	children := map[int][]int{}
	for _, p := range allPIDs() {
		if pp := procPPID(p); pp > 0 {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 && len(out) < 10000 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// waitGone waits until none of the recorded processes is alive, for at most timeout.
func waitGone(recs []procRecord, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		any := false
		for _, r := range recs {
			if r.alive() {
				any = true
			}
		}
		if !any {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runCmd runs a short command and returns its stdout; the error carries stderr.
func runCmd(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

var errNotRoot = errors.New("hosts: needs root (network and mount namespaces, dockerd)")
