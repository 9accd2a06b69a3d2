// Package remote keeps one SSH connection per host, reused and multiplexed by everything the
// controller does there: the Docker Engine API, the proxy's admin API and health checks. Host
// keys are always verified. Every operation takes a context; dead connections are detected by
// keepalives and redialled with backoff.
package remote

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Target says how to reach one host.
type Target struct {
	Address string
	Port    int
	User    string
	Signer  ssh.Signer
	// HostKeys are the accepted keys. Empty with TrustOnFirstUse accepts the first key seen.
	HostKeys        []ssh.PublicKey
	TrustOnFirstUse bool
	// Jump, when set, is dialled first and the connection to this Target goes through it.
	Jump *Target
	// KeepAlive is the interval of keepalive requests (default 30s).
	KeepAlive time.Duration
}

func (t *Target) addr() string { return net.JoinHostPort(t.Address, strconv.Itoa(t.Port)) }

// fingerprint identifies a Target's settings; a changed Target gets a new connection.
func (t *Target) fingerprint() string {
	s := fmt.Sprintf("%s@%s|%v|%s", t.User, t.addr(), t.TrustOnFirstUse, t.KeepAlive)
	if t.Signer != nil {
		s += "|" + ssh.FingerprintSHA256(t.Signer.PublicKey())
	}
	for _, k := range t.HostKeys {
		s += "|" + ssh.FingerprintSHA256(k)
	}
	if t.Jump != nil {
		s += "|via:" + t.Jump.fingerprint()
	}
	return s
}

// Conn is an open SSH connection to a host.
type Conn struct {
	client  *ssh.Client
	jump    *Conn
	hostKey ssh.PublicKey
	done    chan struct{}
	once    sync.Once
}

// HostKey is the key the host presented.
func (c *Conn) HostKey() ssh.PublicKey { return c.hostKey }

// Done is closed when the connection has died or was closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Alive reports whether the connection is still usable.
func (c *Conn) Alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// Close closes the connection (and its jump connection).
func (c *Conn) Close() error {
	c.once.Do(func() { close(c.done) })
	err := c.client.Close()
	if c.jump != nil {
		_ = c.jump.Close()
	}
	return err
}

// Dial opens a connection to t, verifying host keys, within ctx.
func Dial(ctx context.Context, t *Target) (*Conn, error) {
	var jump *Conn
	var raw net.Conn
	var err error
	if t.Jump != nil {
		if jump, err = Dial(ctx, t.Jump); err != nil {
			return nil, fmt.Errorf("jump host %s: %w", t.Jump.addr(), err)
		}
		raw, err = jump.DialTCP(ctx, t.addr())
	} else {
		var d net.Dialer
		raw, err = d.DialContext(ctx, "tcp", t.addr())
	}
	if err != nil {
		if jump != nil {
			_ = jump.Close()
		}
		return nil, err
	}
	var seen ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User:            t.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(t.Signer)},
		HostKeyCallback: hostKeyCallback(t.HostKeys, t.TrustOnFirstUse, &seen),
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
		cfg.Timeout = time.Until(dl)
	}
	// The handshake does not watch ctx itself: close the socket when ctx ends first.
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(raw, t.addr(), cfg)
	stop()
	if err != nil {
		_ = raw.Close()
		if jump != nil {
			_ = jump.Close()
		}
		if ctx.Err() != nil && !IsHostKeyMismatch(err) {
			return nil, fmt.Errorf("ssh %s: %w", t.addr(), ctx.Err())
		}
		return nil, fmt.Errorf("ssh %s: %w", t.addr(), err)
	}
	_ = raw.SetDeadline(time.Time{})
	c := &Conn{client: ssh.NewClient(sc, chans, reqs), jump: jump, hostKey: seen, done: make(chan struct{})}
	go func() {
		_ = c.client.Wait()
		c.once.Do(func() { close(c.done) })
	}()
	go c.keepAlive(t.KeepAlive)
	return c, nil
}

// keepAlive closes the connection when the host stops answering keepalive requests, so the
// next operation redials instead of hanging.
func (c *Conn) keepAlive(every time.Duration) {
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		select {
		case err := <-answered:
			if err != nil {
				_ = c.Close()
				return
			}
		case <-time.After(every):
			_ = c.Close()
			return
		case <-c.done:
			return
		}
	}
}

// withContext runs open (which may block on the network) and gives up when ctx ends; a
// connection that arrives late is closed.
func withContext(ctx context.Context, open func() (net.Conn, error)) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := open()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.conn, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.conn != nil {
				_ = r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// DialTCP opens a TCP stream from the host to addr (direct-tcpip), e.g. to a container on the
// host's Docker network.
func (c *Conn) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	return withContext(ctx, func() (net.Conn, error) { return c.client.Dial("tcp", addr) })
}

// DialUnix opens a stream to a unix socket on the host (direct-streamlocal@openssh.com).
func (c *Conn) DialUnix(ctx context.Context, path string) (net.Conn, error) {
	return withContext(ctx, func() (net.Conn, error) { return c.client.Dial("unix", path) })
}

// DialCommand runs a fixed command on the host and returns its stdin and stdout as a stream;
// used for `docker system dial-stdio` when stream forwarding is refused. The command is a
// constant of the caller, never user input.
func (c *Conn) DialCommand(ctx context.Context, command string) (net.Conn, error) {
	return withContext(ctx, func() (net.Conn, error) {
		sess, err := c.client.NewSession()
		if err != nil {
			return nil, err
		}
		stdin, err := sess.StdinPipe()
		if err != nil {
			_ = sess.Close()
			return nil, err
		}
		stdout, err := sess.StdoutPipe()
		if err != nil {
			_ = sess.Close()
			return nil, err
		}
		if err := sess.Start(command); err != nil {
			_ = sess.Close()
			return nil, err
		}
		return &sessionConn{sess: sess, in: stdin, out: stdout}, nil
	})
}

// sessionConn adapts an SSH session's stdio to net.Conn.
type sessionConn struct {
	sess *ssh.Session
	in   io.WriteCloser
	out  io.Reader
}

func (s *sessionConn) Read(p []byte) (int, error)  { return s.out.Read(p) }
func (s *sessionConn) Write(p []byte) (int, error) { return s.in.Write(p) }
func (s *sessionConn) Close() error {
	_ = s.in.Close()
	return s.sess.Close()
}
func (s *sessionConn) LocalAddr() net.Addr              { return stdioAddr{} }
func (s *sessionConn) RemoteAddr() net.Addr             { return stdioAddr{} }
func (s *sessionConn) SetDeadline(time.Time) error      { return nil }
func (s *sessionConn) SetReadDeadline(time.Time) error  { return nil }
func (s *sessionConn) SetWriteDeadline(time.Time) error { return nil }

type stdioAddr struct{}

func (stdioAddr) Network() string { return "ssh-stdio" }
func (stdioAddr) String() string  { return "ssh-stdio" }
