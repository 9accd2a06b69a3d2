package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/test/fleetsim"
)

// realOnlyCalls are Engine API calls a real host may get that the simulator never does, with
// why. Empty: every call the scenario makes of a real engine is one the simulator serves.
var realOnlyCalls = map[string]string{}

// TestFleetsimMatchesRealHost runs one small scenario (a Server; a Deployment deployed, then
// its image changed) against a real test host and against a simulated one at the same time,
// and checks that every Engine API call the controller made of the real engine is one the
// simulator serves and was made of it too. The real engine's calls are recorded by a socket
// in front of it (spec.docker.socketPath); the proxy's admin API is not recorded on the real
// host (its socket belongs to the proxy container): the simulator's unknown calls, which must
// stay empty, cover it.
func TestFleetsimMatchesRealHost(t *testing.T) {
	signer, err := ssh.ParsePrivateKey(env.ClientPrivateKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	sim, err := fleetsim.Start(fleetsim.Options{
		Hosts: 1, Base: netip.MustParseAddr("127.1.250.1"), AuthorizedKey: signer.PublicKey(),
		Delays: fleetsim.Delays{Pull: 100 * time.Millisecond, Start: 50 * time.Millisecond, Health: 500 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	h := env.Host(hostThird)
	rec := startRecorder(t, h.DockerSocketPath(), filepath.Join(h.StateDir(), "run", "kamal-e2e-recorder.sock"))

	var realCalls, simCalls map[string]int
	t.Run("scenario", func(t *testing.T) {
		t.Run("real", func(t *testing.T) {
			t.Parallel()
			s := serverFor("", "real-1", h)
			s.Spec.Docker.SocketPath = "/run/kamal-e2e-recorder.sock"
			runScenario(t, s, "cmp-real", env.Image("sampleapp:v1"), env.Image("sampleapp:v2"))
			realCalls = rec.calls()
		})
		t.Run("sim", func(t *testing.T) {
			t.Parallel()
			sh := sim.Host(0)
			s := &kamalv1.Server{
				ObjectMeta: metav1.ObjectMeta{Name: "sim-1", Labels: map[string]string{"tier": "web"}},
				Spec: kamalv1.ServerSpec{Address: sh.Address.String(), Port: int32(sh.Port),
					SSHKeySecretRef: corev1.LocalObjectReference{Name: "deploy-key"}, KnownHosts: []string{sh.HostKey()}},
			}
			runScenario(t, s, "cmp-sim", env.Image("sampleapp:v1"), env.Image("sampleapp:v2"))
			simCalls = sim.Host(0).Calls()
		})
	})
	if t.Failed() {
		return
	}
	if u := sim.Unknown(); len(u) > 0 {
		t.Errorf("calls the simulator could not answer:\n  %s", strings.Join(u, "\n  "))
	}
	var missing, notSimulated []string
	for tmpl := range realCalls {
		switch {
		case strings.HasPrefix(tmpl, "?"):
			notSimulated = append(notSimulated, strings.TrimPrefix(tmpl, "?"))
		case simCalls[tmpl] == 0 && realOnlyCalls[tmpl] == "":
			missing = append(missing, tmpl)
		}
	}
	sort.Strings(missing)
	sort.Strings(notSimulated)
	t.Logf("real engine: %s", formatCalls(realCalls))
	t.Logf("simulator:   %s", formatCalls(simCalls))
	if len(notSimulated) > 0 {
		t.Errorf("the real host got calls the simulator does not serve: %v", notSimulated)
	}
	if len(missing) > 0 {
		t.Errorf("the real host got calls the simulator never got in the same scenario: %v", missing)
	}
}

// runScenario makes a namespace with the key Secret and s, waits until s is Ready, deploys an
// app name (its own host name: claims are cluster-wide) with image v1 on it, then changes it to v2; it returns once v2 is Ready. Everything is
// removed when the test ends.
func runScenario(t *testing.T, s *kamalv1.Server, name, v1, v2 string) {
	ns := newNamespace(t)
	keySecret(t, ns)
	s.Namespace = ns
	createServer(t, s)
	waitReady(t, s)
	d := appDeployment(ns, name, "v1")
	d.Spec.Image = v1
	createDeployment(t, d)
	waitDeployed(t, d)
	update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = v2 })
	waitDeployed(t, d)
	if d.Status.Version != "v2" {
		t.Errorf("version %q after the change", d.Status.Version)
	}
}

// recorder is a unix socket in front of an engine's that records the template of each request
// passing through (fleetsim.EngineTemplate; "?path" for one the simulator does not serve).
type recorder struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	seen     map[string]int
}

func startRecorder(t *testing.T, upstream, path string) *recorder {
	t.Helper()
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln, upstream: upstream, seen: map[string]int{}}
	t.Cleanup(func() { _ = ln.Close(); _ = os.Remove(path) })
	go r.serve()
	return r
}

func (r *recorder) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		go r.relay(c)
	}
}

// relay copies bytes both ways and parses the client's side as HTTP requests on the way: a
// request's bytes reach the engine as they are read, so streams (events, waits) keep working.
func (r *recorder) relay(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("unix", r.upstream)
	if err != nil {
		return
	}
	defer up.Close()
	go func() {
		_, _ = io.Copy(c, up)
		_ = c.Close()
	}()
	br := bufio.NewReader(io.TeeReader(c, up))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_, _ = io.Copy(io.Discard, br) // not HTTP any more (an upgraded stream): relay the rest
			}
			return
		}
		tmpl := fleetsim.EngineTemplate(req.Method, req.URL.Path)
		if tmpl == "" {
			tmpl = "?" + req.Method + " " + req.URL.Path
		}
		r.mu.Lock()
		r.seen[tmpl]++
		r.mu.Unlock()
		_, _ = io.Copy(io.Discard, req.Body)
	}
}

func (r *recorder) calls() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.seen {
		out[k] = v
	}
	return out
}

// formatCalls lists the Engine API templates with their counts, sorted.
func formatCalls(calls map[string]int) string {
	var keys []string
	for k := range calls {
		if strings.HasPrefix(k, "proxy ") || strings.HasPrefix(k, "ssh ") || strings.HasPrefix(k, "app ") {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, calls[k]))
	}
	return strings.Join(parts, ", ")
}
