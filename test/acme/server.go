package acmeserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options configure Start. The zero value serves on loopback with Pebble validating HTTP-01 on
// port 80 and DNS answering 127.0.0.1 for every name.
type Options struct {
	// Addr is where the ACME directory listens (host:port; port 0 picks one). Default
	// 127.0.0.1:0.
	Addr string
	// HTTPPort is the port Pebble connects to for HTTP-01 validation. Default 80.
	HTTPPort int
	// TLSPort is the port for TLS-ALPN-01 validation. Default 443.
	TLSPort int
	// DNSAddr is where the DNS test server listens (UDP and TCP) and which Pebble resolves
	// with (host:port; port 0 picks one). Default 127.0.0.1:0.
	DNSAddr string
	// DefaultIPv4 is the A record for names without one of their own (SetA). Default
	// 127.0.0.1. No AAAA records are served: Pebble would connect to those first.
	DefaultIPv4 string
	// Validity is the lifetime of issued certificates. Default Pebble's, 90 days.
	Validity time.Duration
	// NonceReject is the percentage of good nonces Pebble rejects as bad, which a client must
	// retry. Default 0.
	NonceReject int
	// AuthzReuse is the percentage of orders for which Pebble reuses a valid authorization
	// instead of validating again. Default 0: every order proves control of its names anew.
	AuthzReuse int
	// Logf, if set, hears about a first build of the binaries.
	Logf func(string, ...any)
}

// Server is a running Pebble with its DNS test server. Its ACME directory is served through a
// proxy in this process that counts orders.
type Server struct {
	// DirectoryURL is the ACME directory.
	DirectoryURL string
	// CABundle is the PEM of the CA that signed the directory's serving certificate.
	CABundle []byte
	// DNSAddr is where the DNS test server answers.
	DNSAddr string

	dir       string
	pebbleURL string // Pebble's own listener, on loopback
	mgmtURL   string // Pebble's management interface
	chalURL   string // the DNS test server's management interface
	client    *http.Client
	front     *http.Server
	orders    atomic.Int64
	procs     []*process
	closeOnce sync.Once
}

type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// Start builds (or reuses) the binaries and starts Pebble and its DNS server. The processes end
// with Close, and with the test process should it die first.
func Start(ctx context.Context, o Options) (_ *Server, err error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = 80
	}
	if o.TLSPort == 0 {
		o.TLSPort = 443
	}
	if o.DefaultIPv4 == "" {
		o.DefaultIPv4 = "127.0.0.1"
	}
	bins, err := Build(ctx, o.Logf)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("Addr: %w", err)
	}
	if o.DNSAddr == "" {
		o.DNSAddr = "127.0.0.1:0"
	}
	if dnsHost, dnsPort, err := net.SplitHostPort(o.DNSAddr); err != nil {
		return nil, fmt.Errorf("DNSAddr: %w", err)
	} else if dnsPort == "0" {
		port, err := freePort(dnsHost, "udp")
		if err != nil {
			return nil, err
		}
		o.DNSAddr = net.JoinHostPort(dnsHost, strconv.Itoa(port))
	}

	dir, err := os.MkdirTemp("", "acmeserver-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, DNSAddr: o.DNSAddr}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	ca, err := newServingCA(dir, []string{"localhost", "127.0.0.1", host})
	if err != nil {
		return nil, err
	}
	s.CABundle = ca.caPEM
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.caPEM)
	s.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	var ports [3]int
	for i := range ports {
		if ports[i], err = freePort("127.0.0.1", "tcp"); err != nil {
			return nil, err
		}
	}
	pebbleAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	mgmtAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	chalAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2]))
	s.pebbleURL, s.mgmtURL, s.chalURL = "https://"+pebbleAddr, "https://"+mgmtAddr, "http://"+chalAddr

	if err := s.startProcess("pebble-challtestsrv", bins.ChallTestSrv, nil,
		"-dnsserver", o.DNSAddr, "-management", chalAddr,
		"-defaultIPv4", o.DefaultIPv4, "-defaultIPv6", "",
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", ""); err != nil {
		return nil, err
	}

	config, err := pebbleConfig(o, pebbleAddr, mgmtAddr, ca)
	if err != nil {
		return nil, err
	}
	configPath := filepath.Join(dir, "pebble-config.json")
	if err := os.WriteFile(configPath, config, 0o600); err != nil {
		return nil, err
	}
	env := []string{
		"PEBBLE_VA_NOSLEEP=1",
		"PEBBLE_WFE_NONCEREJECT=" + strconv.Itoa(o.NonceReject),
		"PEBBLE_AUTHZREUSE=" + strconv.Itoa(o.AuthzReuse),
	}
	if err := s.startProcess("pebble", bins.Pebble, env,
		"-config", configPath, "-dnsserver", o.DNSAddr); err != nil {
		return nil, err
	}

	if err := s.waitReady(ctx, s.pebbleURL+"/dir"); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, s.mgmtURL+"/roots/0"); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, s.chalURL+"/dns-request-history"); err != nil {
		return nil, err
	}
	if err := s.startFront(o.Addr, ca); err != nil {
		return nil, err
	}
	return s, nil
}

func pebbleConfig(o Options, addr, mgmtAddr string, ca *servingCA) ([]byte, error) {
	type profile struct {
		Description    string `json:"description"`
		ValidityPeriod uint64 `json:"validityPeriod,omitempty"`
	}
	var c struct {
		Pebble struct {
			ListenAddress           string             `json:"listenAddress"`
			ManagementListenAddress string             `json:"managementListenAddress"`
			Certificate             string             `json:"certificate"`
			PrivateKey              string             `json:"privateKey"`
			HTTPPort                int                `json:"httpPort"`
			TLSPort                 int                `json:"tlsPort"`
			KeyAlgorithm            string             `json:"keyAlgorithm"`
			Profiles                map[string]profile `json:"profiles"`
			RetryAfter              struct {
				Authz int `json:"authz"`
				Order int `json:"order"`
			} `json:"retryAfter"`
		} `json:"pebble"`
	}
	p := &c.Pebble
	p.ListenAddress, p.ManagementListenAddress = addr, mgmtAddr
	p.Certificate, p.PrivateKey = ca.certFile, ca.keyFile
	p.HTTPPort, p.TLSPort = o.HTTPPort, o.TLSPort
	p.KeyAlgorithm = "ecdsa"
	// Validity in whole seconds, at least one; 0 leaves Pebble's default.
	var secs uint64
	if o.Validity > 0 {
		secs = uint64((o.Validity + time.Second - 1) / time.Second)
	}
	p.Profiles = map[string]profile{"default": {Description: "kamal-operator tests", ValidityPeriod: secs}}
	// Clients poll authorizations and orders this often (seconds).
	p.RetryAfter.Authz, p.RetryAfter.Order = 1, 1
	return json.MarshalIndent(c, "", "  ")
}

// startProcess starts a child whose output goes to a log file in the work directory; it is
// killed should this process die (Pdeathsig) and ended by PID on Close.
func (s *Server) startProcess(name, bin string, env []string, args ...string) error {
	logPath := filepath.Join(s.dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	s.procs = append(s.procs, p)
	return nil
}

// waitReady polls url until it answers (any status below 500: the DNS server's endpoints
// answer a GET with 400), a process exits, or 30 s pass.
func (s *Server) waitReady(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last error
	for {
		for _, p := range s.procs {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited (%v): %s", p.name, p.cmd.ProcessState, tail(p.log))
			default:
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		res, err := s.client.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode < 500 {
				return nil
			}
			err = fmt.Errorf("%s", res.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %v (%w); logs: %s", url, last, ctx.Err(), s.Logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startFront serves the ACME API on addr as a proxy to Pebble, counting the orders created.
// Pebble builds its URLs from the Host header, so they all point back here.
func (s *Server) startFront(addr string, ca *servingCA) error {
	cert, err := tls.LoadX509KeyPair(ca.certFile, ca.keyFile)
	if err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		return err
	}
	target, _ := url.Parse(s.pebbleURL)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		Transport: s.client.Transport,
		ModifyResponse: func(res *http.Response) error {
			if res.Request.Method == http.MethodPost && res.Request.URL.Path == "/order-plz" && res.StatusCode == http.StatusCreated {
				s.orders.Add(1)
			}
			return nil
		},
	}
	s.front = &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go s.front.Serve(ln)
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	s.DirectoryURL = "https://" + net.JoinHostPort(host, port) + "/dir"
	return nil
}

// Orders is the number of orders the server has created.
func (s *Server) Orders() int { return int(s.orders.Load()) }

// IssuerRoots is the PEM of the root that issued certificates chain to. Pebble makes a new one
// each time it starts.
func (s *Server) IssuerRoots(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.mgmtURL+"/roots/0", nil)
	if err != nil {
		return nil, err
	}
	res, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /roots/0: %s", res.Status)
	}
	return b, nil
}

// SetA makes the DNS server answer host's A queries with ips.
func (s *Server) SetA(host string, ips ...string) error {
	return s.manage("/add-a", map[string]any{"host": host, "addresses": ips})
}

// ClearA removes host's own A records; it gets DefaultIPv4 again.
func (s *Server) ClearA(host string) error {
	return s.manage("/clear-a", map[string]any{"host": host})
}

// SetDefaultA sets the A answer for names without records of their own ("" for none).
func (s *Server) SetDefaultA(ip string) error {
	return s.manage("/set-default-ipv4", map[string]any{"ip": ip})
}

func (s *Server) manage(path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	res, err := s.client.Post(s.chalURL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return fmt.Errorf("DNS test server %s: %s %s", path, res.Status, msg)
	}
	return nil
}

// Logs are the ends of the processes' output, for a failing test to show.
func (s *Server) Logs() string {
	var b bytes.Buffer
	for _, p := range s.procs {
		fmt.Fprintf(&b, "--- %s\n%s\n", p.name, tail(p.log))
	}
	return b.String()
}

// Close stops the proxy and ends the processes (SIGTERM, SIGKILL after 5 s) and removes the
// work directory.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.front != nil {
			s.front.Close()
		}
		for _, p := range s.procs {
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range s.procs {
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		os.RemoveAll(s.dir)
	})
}

// freePort returns a port that was free on host a moment ago. The child binding it later may
// race with another process; tests run few enough servers that this does not happen in practice.
func freePort(host, network string) (int, error) {
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	default:
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port, nil
	}
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
