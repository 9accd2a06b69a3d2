package hosts_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kamal-operator/kamal-operator/test/hosts"
	"github.com/kamal-operator/kamal-operator/test/images"
)

// These tests start real hosts (namespaces, dockerd, sshd): they run only with KAMAL_E2E=1, as
// root.
func needE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("KAMAL_E2E") != "1" {
		t.Skip("set KAMAL_E2E=1 to run the end-to-end tests (as root)")
	}
	if os.Geteuid() != 0 {
		t.Skip("the end-to-end tests need root")
	}
}

func start(t *testing.T, ctx context.Context, opts hosts.Options) *hosts.Env {
	t.Helper()
	opts.Logf = t.Logf
	env, err := hosts.Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if os.Getenv("KAMALOP_KEEP_HOSTS") == "1" {
			return
		}
		t.Logf("teardown took %s", env.Timings()["teardown"].Round(time.Millisecond))
		if _, err := os.Stat(env.StateDir()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("state folder %s left after Close (%v)", env.StateDir(), err)
		}
		for _, h := range env.Hosts {
			if _, err := os.Stat("/run/netns/" + h.Hostname()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("netns %s left after Close", h.Hostname())
			}
		}
		if st, err := hosts.Status(""); err == nil && (len(st.LeftoverLinks) > 0 || len(st.LeftoverNetns) > 0) {
			t.Errorf("left after Close: links %v, namespaces %v", st.LeftoverLinks, st.LeftoverNetns)
		}
	})
	for k, v := range env.Timings() {
		t.Logf("start timing %-18s %s", k, v.Round(time.Millisecond))
	}
	return env
}

// eventually polls f every 100ms until it returns nil; past timeout it fails with f's last error.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var httpc = &http.Client{Timeout: 3 * time.Second}

func get(url string) (int, string, error) {
	resp, err := httpc.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

func wantBody(url, want string) func() error {
	return func() error {
		code, body, err := get(url)
		if err != nil {
			return err
		}
		if code != 200 || body != want {
			return fmt.Errorf("GET %s: %d %q, want 200 %q", url, code, body, want)
		}
		return nil
	}
}

// sshBanner dials the host's sshd from this (root) namespace and reads its banner.
func sshBanner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("banner %q", line)
	}
	return nil
}

func sshRun(ctx context.Context, h *hosts.Host, stdin string, remote ...string) (string, error) {
	args := h.SSHArgs(remote...)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%v: %s", err, stderr.String())
	}
	return string(out), nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// forward runs `ssh -N -L 127.0.0.1:PORT:target` to h (target is host:port or a socket path on
// h) and returns the local port; the ssh process ends with the test.
func forward(t *testing.T, ctx context.Context, h *hosts.Host, target string) int {
	t.Helper()
	port := freePort(t)
	args := h.SSHArgs()
	args = append(args[:len(args)-1], "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", "127.0.0.1:"+strconv.Itoa(port)+":"+target, args[len(args)-1])
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("ssh -L %s: %s", target, stderr.String())
		}
	})
	eventually(t, 10*time.Second, "ssh -L listening", func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	return port
}

func dockerPing(sock string) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	_, body, err := getWith(c, "http://docker/_ping")
	if err == nil && body != "OK" {
		err = fmt.Errorf("ping answered %q", body)
	}
	return err
}

func getWith(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

func TestThreeHosts(t *testing.T) {
	needE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	t0 := time.Now()
	env := start(t, ctx, hosts.Options{N: 3})
	t.Logf("3 hosts started in %s", time.Since(t0).Round(time.Millisecond))
	if len(env.Hosts) != 3 {
		t.Fatalf("%d hosts", len(env.Hosts))
	}

	t.Run("ssh and docker on every host", func(t *testing.T) {
		for _, h := range env.Hosts {
			if err := sshBanner(h.SSHAddress()); err != nil {
				t.Fatalf("%s: sshd: %v", h.Name(), err)
			}
			if !strings.HasPrefix(h.HostPublicKey(), "ssh-ed25519 AAAA") {
				t.Fatalf("%s: host key %q", h.Name(), h.HostPublicKey())
			}
			// Like a stock server: rsa, ecdsa and ed25519 keys, each presented when asked for.
			scan, err := exec.CommandContext(ctx, "ssh-keyscan", "-T", "5", "-t", "rsa,ecdsa,ed25519", h.Address()).Output()
			if err != nil {
				t.Fatalf("%s: ssh-keyscan: %v", h.Name(), err)
			}
			for _, k := range []string{h.HostPublicKey(), h.HostPublicKeyECDSA(), h.HostPublicKeyRSA()} {
				if !strings.Contains(string(scan), h.Address()+" "+k+"\n") {
					t.Fatalf("%s: ssh-keyscan does not show %q:\n%s", h.Name(), k, scan)
				}
			}
			if !strings.HasPrefix(h.HostPublicKeyRSA(), "ssh-rsa AAAA") || !strings.HasPrefix(h.HostPublicKeyECDSA(), "ecdsa-sha2-nistp256 AAAA") || len(h.HostPublicKeys()) != 3 {
				t.Fatalf("%s: host keys %q", h.Name(), h.HostPublicKeys())
			}
			known, err := os.ReadFile(env.KnownHostsFile())
			if err != nil || !strings.Contains(string(known), h.Address()+" "+h.HostPublicKey()) {
				t.Fatalf("known_hosts lacks %s: %v", h.Name(), err)
			}
			out, err := sshRun(ctx, h, "", "hostname; docker version --format '{{.Server.APIVersion}}'")
			if err != nil {
				t.Fatalf("%s: ssh docker version: %v", h.Name(), err)
			}
			f := strings.Fields(out)
			if len(f) != 2 || f[0] != h.Hostname() || !strings.HasPrefix(f[1], "1.") {
				t.Fatalf("%s: ssh printed %q", h.Name(), out)
			}
			t.Logf("%s %s: hostname %s, docker API %s", h.Name(), h.Address(), f[0], f[1])
			if err := dockerPing(h.DockerSocketPath()); err != nil {
				t.Fatalf("%s: docker socket from the root namespace: %v", h.Name(), err)
			}
		}
		// The client key in PEM form is what the controller gets.
		if !bytes.HasPrefix(env.ClientPrivateKeyPEM(), []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
			t.Fatalf("client key is not an OpenSSH private key")
		}
	})

	t.Run("a wrong host key is refused", func(t *testing.T) {
		h := env.Hosts[0]
		bad := filepath.Join(t.TempDir(), "known_hosts")
		// host 2's key under host 1's address
		if err := os.WriteFile(bad, []byte(h.Address()+" "+env.Hosts[1].HostPublicKey()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		args := h.SSHArgs("true")
		for i, a := range args {
			if strings.HasPrefix(a, "UserKnownHostsFile=") {
				args[i] = "UserKnownHostsFile=" + bad
			}
		}
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err == nil {
			t.Fatalf("ssh with a wrong host key succeeded: %s", out)
		}
	})

	t.Run("registry has the fixture images", func(t *testing.T) {
		reg := images.Registry{Addr: env.RegistryAddress()}
		want := map[string][]string{
			images.SampleAppRepo: {"v1", "v2", "broken"},
			images.ProxyRepo:     {images.ProxyTag},
		}
		for repo, tags := range want {
			have, err := reg.Tags(ctx, repo)
			if err != nil {
				t.Fatal(err)
			}
			for _, tag := range tags {
				if !strings.Contains(","+strings.Join(have, ",")+",", ","+tag+",") {
					t.Fatalf("registry lacks %s:%s (has %v)", repo, tag, have)
				}
			}
		}
	})

	t.Run("sampleapp runs and answers from the root namespace", func(t *testing.T) {
		h1, h2 := env.Hosts[0], env.Hosts[1]
		if _, err := h1.Exec(ctx, "docker", "run", "-d", "--name", "app", "-p", "8080:80", env.Image("sampleapp:v1")); err != nil {
			t.Fatal(err)
		}
		base := "http://" + h1.Address() + ":8080"
		eventually(t, 30*time.Second, "sampleapp:v1 /version", wantBody(base+"/version", "v1"))
		eventually(t, 10*time.Second, "sampleapp:v1 /up", wantBody(base+"/up", "ok"))
		if _, err := h1.Exec(ctx, "docker", "run", "-d", "--name", "app-env", "-p", "8081:80", "-e", "SECRET_X=s3cret", env.Image("sampleapp:v2")); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "sampleapp:v2 /env", wantBody("http://"+h1.Address()+":8081/env?name=SECRET_X", "s3cret"))
		eventually(t, 10*time.Second, "sampleapp:v2 /version", wantBody("http://"+h1.Address()+":8081/version", "v2"))

		// broken: answers, but /up never 200
		if _, err := h2.Exec(ctx, "docker", "run", "-d", "--name", "broken", "-p", "8080:80", env.Image("sampleapp:broken")); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "sampleapp:broken /up 503", func() error {
			code, _, err := get("http://" + h2.Address() + ":8080/up")
			if err != nil {
				return err
			}
			if code != http.StatusServiceUnavailable {
				return fmt.Errorf("/up answered %d", code)
			}
			return nil
		})

		// the proxy image runs and its admin API answers on the container network, from the host
		if _, err := h2.Exec(ctx, "docker", "run", "-d", "--name", "kamal-proxy", "-p", "8090:80", env.ProxyImage()); err != nil {
			t.Fatal(err)
		}
		ipOut, err := h2.Exec(ctx, "docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "kamal-proxy")
		if err != nil {
			t.Fatal(err)
		}
		adminIP := strings.TrimSpace(string(ipOut))
		eventually(t, 30*time.Second, "caddy admin API", func() error {
			// an HTTP/1.0 request with bash from the host's namespace
			out, err := h2.Exec(ctx, "timeout", "5", "bash", "-c",
				`exec 3<>/dev/tcp/`+adminIP+`/2019 && printf 'GET /config/ HTTP/1.0\r\nHost: x\r\n\r\n' >&3 && cat <&3`)
			if err != nil {
				return err
			}
			if !strings.HasPrefix(string(out), "HTTP/1.0 200") || !strings.HasSuffix(strings.TrimSpace(string(out)), "null") {
				return fmt.Errorf("admin answered %q", out)
			}
			return nil
		})

		// KillContainer: the app stops answering and Docker says it is not running
		if err := h1.KillContainer(ctx, "app"); err != nil {
			t.Fatal(err)
		}
		out, err := h1.Exec(ctx, "docker", "inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", "app")
		if err != nil || strings.TrimSpace(string(out)) != "false 137" {
			t.Fatalf("after KillContainer: %q %v", out, err)
		}
		if _, _, err := get(base + "/version"); err == nil {
			t.Fatalf("killed app still answers")
		}
	})

	t.Run("graceful shutdown finishes in-flight requests", func(t *testing.T) {
		h := env.Hosts[2]
		if _, err := h.Exec(ctx, "docker", "run", "-d", "--name", "slow", "-p", "8080:80", env.Image("sampleapp:v3")); err != nil {
			t.Fatal(err)
		}
		base := "http://" + h.Address() + ":8080"
		eventually(t, 30*time.Second, "sampleapp:v3", wantBody(base+"/version", "v3"))
		type res struct {
			body string
			err  error
		}
		done := make(chan res, 1)
		go func() {
			_, body, err := get(base + "/slow?ms=1500")
			done <- res{body, err}
		}()
		eventually(t, 5*time.Second, "slow request in flight", wantBody(base+"/inflight", "1"))
		if _, err := h.Exec(ctx, "docker", "stop", "-t", "10", "slow"); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil || !strings.HasPrefix(r.body, "slept 1500 ms") {
			t.Fatalf("in-flight request during stop: %q %v", r.body, r.err)
		}
		out, err := h.Exec(ctx, "docker", "inspect", "-f", "{{.State.ExitCode}}", "slow")
		if err != nil || strings.TrimSpace(string(out)) != "0" {
			t.Fatalf("exit code after SIGTERM: %q %v", out, err)
		}
	})

	t.Run("stream-local forwarding to the docker socket", func(t *testing.T) {
		h := env.Hosts[0]
		port := forward(t, ctx, h, "/var/run/docker.sock")
		eventually(t, 10*time.Second, "docker API through ssh -L", wantBody("http://127.0.0.1:"+strconv.Itoa(port)+"/_ping", "OK"))
	})

	t.Run("fault helpers", func(t *testing.T) {
		h2, h3 := env.Hosts[1], env.Hosts[2]
		if err := h2.StopSSHD(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "sshd down", func() error {
			if sshBanner(h2.SSHAddress()) == nil {
				return errors.New("sshd still answers")
			}
			return nil
		})
		if err := h2.StartSSHD(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "sshd back", func() error { return sshBanner(h2.SSHAddress()) })
		if out, err := sshRun(ctx, h2, "", "echo", "back"); err != nil || strings.TrimSpace(out) != "back" {
			t.Fatalf("ssh after StartSSHD: %q %v", out, err)
		}

		// DropSSHConnections ends an open session; sshd keeps listening.
		args := h2.SSHArgs("echo ready; sleep 60")
		sess := exec.CommandContext(ctx, args[0], args[1:]...)
		stdout, err := sess.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			ready <- line
		}()
		select {
		case line := <-ready:
			if strings.TrimSpace(line) != "ready" {
				t.Fatalf("session printed %q", line)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ssh session not open within 10s")
		}
		exited := make(chan error, 1)
		go func() { exited <- sess.Wait() }()
		if err := h2.DropSSHConnections(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			if err == nil {
				t.Fatal("dropped session exited 0")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("session still open 10s after DropSSHConnections")
		}
		if err := sshBanner(h2.SSHAddress()); err != nil {
			t.Fatalf("sshd gone after DropSSHConnections: %v", err)
		}

		if err := h3.CutNetwork(ctx); err != nil {
			t.Fatal(err)
		}
		if err := sshBanner(h3.SSHAddress()); err == nil {
			t.Fatalf("sshd of a cut-off host answers")
		}
		if err := h3.RestoreNetwork(ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "network restored", func() error { return sshBanner(h3.SSHAddress()) })

		if err := h2.StopDockerd(ctx); err != nil {
			t.Fatal(err)
		}
		if err := dockerPing(h2.DockerSocketPath()); err == nil {
			t.Fatalf("dockerd answers after StopDockerd")
		}
		if _, err := h2.Exec(ctx, "docker", "ps"); err == nil {
			t.Fatalf("docker ps works after StopDockerd")
		}
		if err := h2.StartDockerd(ctx); err != nil {
			t.Fatal(err)
		}
		out, err := h2.Exec(ctx, "docker", "ps", "-a", "--format", "{{.Names}}")
		if err != nil || !strings.Contains(string(out), "broken") {
			t.Fatalf("docker ps -a after StartDockerd: %q %v", out, err)
		}
	})
}

func TestJumpHostAndDialStdio(t *testing.T) {
	needE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	env := start(t, ctx, hosts.Options{Hosts: []hosts.HostOptions{{}, {Behind: 1, NoStreamLocalForwarding: true}}})
	jump, hidden := env.Hosts[0], env.Hosts[1]
	if hidden.JumpHost() != jump {
		t.Fatalf("JumpHost = %v", hidden.JumpHost())
	}

	// Not reachable from here …
	if c, err := net.DialTimeout("tcp", hidden.SSHAddress(), 2*time.Second); err == nil {
		c.Close()
		t.Fatalf("host behind the jump host is reachable from the root namespace")
	}
	// … but from the jump host, and through it over SSH.
	if _, err := jump.Exec(ctx, "timeout", "5", "bash", "-c", "exec 3<>/dev/tcp/"+hidden.Address()+"/22 && head -c 8 <&3"); err != nil {
		t.Fatalf("jump host cannot reach the hidden host: %v", err)
	}
	out, err := sshRun(ctx, hidden, "", "hostname")
	if err != nil || strings.TrimSpace(out) != hidden.Hostname() {
		t.Fatalf("ssh through the jump host: %q %v", out, err)
	}

	// The hidden host pulls from the registry (through the jump host) and serves.
	if _, err := hidden.Exec(ctx, "docker", "run", "-d", "--name", "app", "-p", "8080:80", env.Image("sampleapp:v2")); err != nil {
		t.Fatal(err)
	}
	port := forward(t, ctx, jump, hidden.Address()+":8080")
	eventually(t, 30*time.Second, "app behind the jump host", wantBody("http://127.0.0.1:"+strconv.Itoa(port)+"/version", "v2"))

	// Stream-local forwarding is refused there; docker system dial-stdio works.
	if hidden.StreamLocalForwarding() {
		t.Fatal("StreamLocalForwarding() = true")
	}
	sock := forward(t, ctx, hidden, "/var/run/docker.sock")
	if code, body, err := get("http://127.0.0.1:" + strconv.Itoa(sock) + "/_ping"); err == nil {
		t.Fatalf("stream-local forwarding was allowed: %d %q", code, body)
	}
	out, err = sshRun(ctx, hidden, "GET /_ping HTTP/1.0\r\n\r\n", "docker", "system", "dial-stdio")
	if err != nil || !strings.Contains(out, "Api-Version:") || !strings.HasSuffix(strings.TrimSpace(out), "OK") {
		t.Fatalf("dial-stdio: %q %v", out, err)
	}

	// Turning it on restarts sshd with forwarding allowed.
	if err := hidden.SetStreamLocalForwarding(ctx, true); err != nil {
		t.Fatal(err)
	}
	sock = forward(t, ctx, hidden, "/var/run/docker.sock")
	eventually(t, 10*time.Second, "docker API through ssh -L", wantBody("http://127.0.0.1:"+strconv.Itoa(sock)+"/_ping", "OK"))
}
