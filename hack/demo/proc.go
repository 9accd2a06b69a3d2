package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procID identifies a process: its PID and start time (field 22 of /proc/PID/stat), so that a
// recycled PID is never taken for it.
type procID struct {
	Name  string `json:"name,omitempty"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

func procStat(pid int) (state byte, ppid int, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, 0, 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	ppid, _ = strconv.Atoi(f[1])
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0][0], ppid, start, err
}

func idOf(name string, pid int) (procID, error) {
	_, _, start, err := procStat(pid)
	return procID{Name: name, PID: pid, Start: start}, err
}

// alive: the same process still runs (not a zombie).
func (p procID) alive() bool {
	if p.PID <= 1 {
		return false
	}
	st, _, start, err := procStat(p.PID)
	return err == nil && start == p.Start && st != 'Z' && st != 'X'
}

// signal sends sig only if p is still the recorded process.
func (p procID) signal(sig syscall.Signal) bool {
	if !p.alive() {
		return false
	}
	return syscall.Kill(p.PID, sig) == nil
}

// waitGone polls until p has exited or timeout passes.
func (p procID) waitGone(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for p.alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// stop sends SIGTERM, then SIGKILL after grace.
func (p procID) stop(grace time.Duration) {
	if !p.signal(syscall.SIGTERM) {
		return
	}
	if !p.waitGone(grace) {
		p.signal(syscall.SIGKILL)
		p.waitGone(5 * time.Second)
	}
}

func cmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// childrenOf lists the live processes whose parent is pid.
func childrenOf(pid int) []procID {
	ents, _ := os.ReadDir("/proc")
	var out []procID
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ppid, start, err := procStat(n)
		if err != nil || ppid != pid || st == 'Z' {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		out = append(out, procID{Name: strings.TrimSpace(string(comm)), PID: n, Start: start})
	}
	return out
}

// flock takes an exclusive lock on path, telling once who holds it while it waits.
func flock(ctx context.Context, path string, say func(string, ...any)) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for i := 0; ; i++ {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			_ = f.Truncate(0)
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if i%300 == 0 && say != nil {
			holder, _ := os.ReadFile(path)
			say("waiting for %s (held by pid %s)", path, strings.TrimSpace(string(holder)))
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
