package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// proc is a process the harness started; stop ends it by its PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

// startProc runs bin with args, its output in logPath.
func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	// Its own process group: a ^C on the terminal reaches the harness, which stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process ended (and how) before it was stopped.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	defer p.log.Close()
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s (pid %d) did not stop within %s after SIGTERM: killed", p.name, p.pid(), grace)
	}
}

// usage samples a process's resident memory every 200 ms and reads its CPU time.
type usage struct {
	pid  int
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	peakRSS int64 // bytes, the highest VmRSS sampled
}

func sampleUsage(pid int) *usage {
	u := &usage{pid: pid, stop: make(chan struct{})}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, err := statusField(pid, "VmRSS"); err == nil {
				u.mu.Lock()
				u.peakRSS = max(u.peakRSS, rss)
				u.mu.Unlock()
			}
			select {
			case <-u.stop:
				return
			case <-t.C:
			}
		}
	}()
	return u
}

// peak is the highest of the sampled VmRSS and the kernel's VmHWM.
func (u *usage) peak() int64 {
	u.mu.Lock()
	p := u.peakRSS
	u.mu.Unlock()
	if hwm, err := statusField(u.pid, "VmHWM"); err == nil {
		p = max(p, hwm)
	}
	return p
}

func (u *usage) close() {
	close(u.stop)
	u.wg.Wait()
}

// statusField reads a "kB" field of /proc/<pid>/status, in bytes.
func statusField(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// cpuSeconds is utime+stime of /proc/<pid>/stat (clock ticks of 1/100 s, as on every Linux
// this runs on).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it are fixed: state is field 3,
	// utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return float64(ut+st) / 100, nil
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// apiRequests sums apiserver_request_total on the apiserver's /metrics.
func apiRequests(ctx context.Context, cfg *rest.Config) (int64, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("apiserver /metrics: %s", resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return int64(sum), sc.Err()
}

// control talks to the simulator's control endpoint.
type control string

func (c control) do(ctx context.Context, method, path string, out any) error {
	return c.send(ctx, method, path, nil, out)
}

func (c control) send(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+string(c)+path, body)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fleetsim %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("fleetsim %s %s: %s: %s", method, path, resp.Status, b)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

func (c control) calls(ctx context.Context) (map[string]int, error) {
	var m map[string]int
	return m, c.do(ctx, http.MethodGet, "/calls", &m)
}

func (c control) resetCalls(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/calls/reset", nil)
}

// setDelays sets the simulator's pull, start and health delays.
func (c control) setDelays(ctx context.Context, pull, start, health time.Duration) error {
	b, _ := json.Marshal(map[string]string{"pull": pull.String(), "start": start.String(), "health": health.String()})
	return c.send(ctx, http.MethodPut, "/delays", bytes.NewReader(b), nil)
}

func (c control) unknown(ctx context.Context) ([]string, error) {
	var u []string
	return u, c.do(ctx, http.MethodGet, "/unknown", &u)
}

func (c control) conns(ctx context.Context) (open, accepted int, err error) {
	var m struct{ Open, Accepted int }
	err = c.do(ctx, http.MethodGet, "/conns", &m)
	return m.Open, m.Accepted, err
}

// logCounts counts the manager's error lines and "too large" answers in its log.
func logCounts(path string) (errors, tooLarge int) {
	f, err := os.Open(path)
	if err != nil {
		return -1, -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `"level":"error"`) || strings.Contains(line, "\tERROR\t") {
			errors++
		}
		if strings.Contains(strings.ToLower(line), "too large") {
			tooLarge++
		}
	}
	return errors, tooLarge
}

// sum adds a call map's counts.
func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
