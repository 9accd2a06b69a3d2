package fleetsim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
)

// startHost makes host i's key and engine and starts its SSH server on addr.
func (f *Fleet) startHost(i int, addr netip.Addr) (*Host, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Host{Index: i, Name: hostName(i), Address: addr, fleet: f, signer: signer, ctx: ctx, cancel: cancel,
		calls: map[string]int{}, conns: map[*ssh.ServerConn]struct{}{}}
	h.engine = newEngine(h)
	h.proxy = newProxyState()
	ln, err := net.Listen("tcp", net.JoinHostPort(addr.String(), strconv.Itoa(f.opts.Port)))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("fleetsim: host %s: %w", h.Name, err)
	}
	h.ln = ln
	h.Port = ln.Addr().(*net.TCPAddr).Port
	authorized := f.opts.AuthorizedKey.Marshal()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), authorized) {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("key not authorized")
		},
		ServerVersion: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3 fleetsim",
	}
	cfg.AddHostKey(signer)
	go h.serve(cfg)
	return h, nil
}

func (h *Host) serve(cfg *ssh.ServerConfig) {
	for {
		raw, err := h.ln.Accept()
		if err != nil {
			return
		}
		if h.Faults().Refuse {
			_ = raw.Close()
			continue
		}
		h.connsWG.Add(1)
		go func() {
			defer h.connsWG.Done()
			h.handle(raw, cfg)
		}()
	}
}

func (h *Host) handle(raw net.Conn, cfg *ssh.ServerConfig) {
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(raw, cfg)
	if err != nil {
		_ = raw.Close()
		h.logf("handshake: %v", err)
		return
	}
	_ = raw.SetDeadline(time.Time{})
	h.mu.Lock()
	if h.ctx.Err() != nil {
		h.mu.Unlock()
		_ = sc.Close()
		return
	}
	h.conns[sc] = struct{}{}
	h.accepted++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.conns, sc)
		h.mu.Unlock()
		_ = sc.Close()
	}()
	// Global requests (keepalive@openssh.com) are answered "failure", as OpenSSH answers them.
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		switch nc.ChannelType() {
		case "direct-streamlocal@openssh.com":
			h.openUnix(nc)
		case "direct-tcpip":
			h.openTCP(nc)
		case "session":
			go h.session(nc)
		default:
			h.record("ssh channel " + nc.ChannelType())
			h.fleet.unknownCall(h, "ssh channel "+nc.ChannelType())
			_ = nc.Reject(ssh.UnknownChannelType, "unknown channel type")
		}
	}
}

// openUnix answers a stream to a unix socket: the engine's, the proxy's admin socket while the
// proxy runs; anything else is refused as sshd refuses a socket nobody listens on.
func (h *Host) openUnix(nc ssh.NewChannel) {
	var p struct {
		Path      string
		Reserved0 string
		Reserved1 uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "bad request")
		return
	}
	var srv *channelServer
	switch p.Path {
	case docker.DefaultSocket, "/run/docker.sock":
		if !h.Faults().EngineDown {
			srv = h.fleet.engine
		}
	case proxy.AdminSocket:
		if h.engine.proxyRunning() {
			srv = h.fleet.admin
		}
	default:
		h.fleet.unknownCall(h, "stream to unix socket "+p.Path)
	}
	if srv == nil {
		_ = nc.Reject(ssh.ConnectionFailed, "open failed")
		return
	}
	h.accept(nc, srv, "unix "+p.Path)
}

// openTCP answers a stream to an address on the host: an app container's, once it is up long
// enough to answer (Delays.Health); before, and for any other address, the connection is
// refused as the kernel refuses it.
func (h *Host) openTCP(nc ssh.NewChannel) {
	var p struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "bad request")
		return
	}
	h.record("ssh direct-tcpip {container}:{port}")
	ip, err := netip.ParseAddr(p.Host)
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "Connection refused")
		return
	}
	c := h.engine.answering(ip, h.fleet.Delays().Health)
	if c == "" {
		_ = nc.Reject(ssh.ConnectionFailed, "Connection refused")
		return
	}
	h.accept(nc, h.fleet.apps, c)
}

func (h *Host) accept(nc ssh.NewChannel, srv *channelServer, what string) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	srv.serve(&channelConn{Channel: ch, host: h, what: what})
}

// session answers the commands the controller may run. It runs none: a stream to the engine's
// socket always works here, so `docker system dial-stdio` (the fallback where sshd refuses
// stream forwarding) is never needed; any command is answered as a host without it answers
// (exit 127), and recorded as unknown.
func (h *Host) session(nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "exec":
			var p struct{ Command string }
			_ = ssh.Unmarshal(req.Payload, &p)
			h.record("ssh exec " + p.Command)
			h.fleet.unknownCall(h, "ssh exec "+p.Command)
			_ = req.Reply(true, nil)
			_, _ = fmt.Fprintf(ch.Stderr(), "sh: 1: %s: not found\n", p.Command)
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{127}))
			return
		case "env", "pty-req":
			_ = req.Reply(true, nil)
		default:
			h.record("ssh session " + req.Type)
			h.fleet.unknownCall(h, "ssh session request "+req.Type)
			_ = req.Reply(false, nil)
			return
		}
	}
}

// channelConn is an accepted SSH channel as a net.Conn, carrying its host.
type channelConn struct {
	ssh.Channel
	host *Host
	what string
}

func (c *channelConn) LocalAddr() net.Addr              { return chanAddr(c.what) }
func (c *channelConn) RemoteAddr() net.Addr             { return chanAddr(c.host.Name) }
func (c *channelConn) SetDeadline(time.Time) error      { return nil }
func (c *channelConn) SetReadDeadline(time.Time) error  { return nil }
func (c *channelConn) SetWriteDeadline(time.Time) error { return nil }

type chanAddr string

func (a chanAddr) Network() string { return "ssh" }
func (a chanAddr) String() string  { return string(a) }

type hostKey struct{}

// hostOf is the host a request came from.
func hostOf(r *http.Request) *Host { return r.Context().Value(hostKey{}).(*Host) }

// channelServer serves HTTP on the channels of every host: one http.Server per kind of
// endpoint, not per host, so thousands of hosts cost only their state.
type channelServer struct {
	srv   *http.Server
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newChannelServer(h http.Handler) *channelServer {
	s := &channelServer{conns: make(chan net.Conn), done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: time.Minute,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if cc, ok := c.(*channelConn); ok {
				return context.WithValue(ctx, hostKey{}, cc.host)
			}
			return ctx
		},
	}
	go func() { _ = s.srv.Serve(s) }()
	return s
}

func (s *channelServer) serve(c net.Conn) {
	select {
	case s.conns <- c:
	case <-s.done:
		_ = c.Close()
	}
}

// Accept, Close and Addr make channelServer the http.Server's listener.
func (s *channelServer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

func (s *channelServer) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *channelServer) Addr() net.Addr { return chanAddr("fleetsim") }

func (s *channelServer) close() {
	_ = s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	_ = s.srv.Close()
}
