// Package remote keeps one SSH connection per host, reused and multiplexed by everything the
// controller does there: the Docker Engine API, the proxy's admin API and health checks. Host
// keys are always verified. Every operation takes a context; dead connections are detected by
// keepalives and redialled with backoff.
package remote

import (
	"context"
	"errors"
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
	// HostKeys are the accepted keys; only their types are asked for (HostKeyAlgorithms).
	// Empty with TrustOnFirstUse accepts the first key seen, ed25519 preferred.
	HostKeys        []ssh.PublicKey
	TrustOnFirstUse bool
	// Jump, when set, is dialled first and the connection to this Target goes through it.
	Jump *Target
	// KeepAlive is the interval of keepalive requests (default DefaultKeepAlive), and
	// KeepAliveCountMax how many may go unanswered in a row before the connection is closed
	// (default DefaultKeepAliveCountMax).
	KeepAlive         time.Duration
	KeepAliveCountMax int
}

func (t *Target) addr() string { return net.JoinHostPort(t.Address, strconv.Itoa(t.Port)) }

// fingerprint identifies a Target's settings; a changed Target gets a new connection.
func (t *Target) fingerprint() string {
	s := fmt.Sprintf("%s@%s|%v|%s|%d", t.User, t.addr(), t.TrustOnFirstUse, t.KeepAlive, t.KeepAliveCountMax)
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

// dialRaw opens the TCP stream to t: directly, or from its jump host (dialled and verified
// first). The jump connection, when there is one, must be closed with the stream.
func dialRaw(ctx context.Context, t *Target) (net.Conn, *Conn, error) {
	if t.Jump == nil {
		var d net.Dialer
		raw, err := d.DialContext(ctx, "tcp", t.addr())
		return raw, nil, err
	}
	jump, err := Dial(ctx, t.Jump)
	if err != nil {
		return nil, nil, fmt.Errorf("jump host %s: %w", t.Jump.addr(), err)
	}
	raw, err := jump.DialTCP(ctx, t.addr())
	if err != nil {
		_ = jump.Close()
		return nil, nil, err
	}
	return raw, jump, nil
}

// handshake runs the SSH handshake of cfg on raw within ctx: the handshake does not watch ctx
// itself, so the socket is closed when ctx ends first.
func handshake(ctx context.Context, raw net.Conn, addr string, cfg *ssh.ClientConfig) (ssh.Conn, <-chan ssh.NewChannel, <-chan *ssh.Request, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
		cfg.Timeout = time.Until(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer stop()
	return ssh.NewClientConn(raw, addr, cfg)
}

// errScanned ends a handshake as soon as the host has shown its key.
var errScanned = errors.New("host key scanned")

// ScanHostKey learns the key a host presents, as ssh-keyscan does: the key exchange runs (the
// host proves it holds the key) and the connection is closed before authentication, so
// nothing is sent to an unverified host. It asks for ed25519 first (HostKeyAlgorithms with no
// keys); t's HostKeys and TrustOnFirstUse are ignored. A jump host is dialled and verified as
// usual.
func ScanHostKey(ctx context.Context, t *Target) (ssh.PublicKey, error) {
	raw, jump, err := dialRaw(ctx, t)
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = raw.Close()
		if jump != nil {
			_ = jump.Close()
		}
	}()
	var seen ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: t.User,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			seen = key
			return errScanned
		},
		HostKeyAlgorithms: HostKeyAlgorithms(nil),
	}
	_, _, _, err = handshake(ctx, raw, t.addr(), cfg)
	if seen != nil {
		return seen, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("ssh %s: %w", t.addr(), ctx.Err())
	}
	return nil, fmt.Errorf("ssh %s: %w", t.addr(), err)
}

// Dial opens a connection to t, verifying host keys, within ctx.
func Dial(ctx context.Context, t *Target) (*Conn, error) {
	raw, jump, err := dialRaw(ctx, t)
	if err != nil {
		return nil, err
	}
	var seen ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User:            t.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(t.Signer)},
		HostKeyCallback: hostKeyCallback(t.HostKeys, t.TrustOnFirstUse, &seen),
		// Ask for the pinned keys' types: left to x/crypto's default preference, a host with
		// several keys would present its ecdsa key even when its ed25519 key is the pinned one.
		HostKeyAlgorithms: HostKeyAlgorithms(t.HostKeys),
	}
	sc, chans, reqs, err := handshake(ctx, raw, t.addr(), cfg)
	if err != nil {
		_ = raw.Close()
		if jump != nil {
			_ = jump.Close()
		}
		if len(t.HostKeys) > 0 {
			err = noAcceptedKeyType(t.addr(), err)
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
	go c.keepAlive(t.KeepAlive, t.KeepAliveCountMax)
	return c, nil
}

// Keepalive defaults: a host that stops answering is noticed within about
// (DefaultKeepAliveCountMax+1) × DefaultKeepAlive, 12 s.
const (
	DefaultKeepAlive         = 3 * time.Second
	DefaultKeepAliveCountMax = 3
)

// keepAlive sends a keepalive request every interval and closes the connection when
// countMax intervals in a row pass without an answer (ssh's ServerAliveInterval and
// ServerAliveCountMax), so the controller learns of a lost host in seconds and the next
// operation redials instead of hanging.
func (c *Conn) keepAlive(every time.Duration, countMax int) {
	if every <= 0 {
		every = DefaultKeepAlive
	}
	if countMax <= 0 {
		countMax = DefaultKeepAliveCountMax
	}
	t := time.NewTicker(every)
	defer t.Stop()
	answered := make(chan error, 1)
	pending, missed := false, 0
	for {
		select {
		case <-c.done:
			return
		case err := <-answered:
			pending, missed = false, 0
			if err != nil {
				_ = c.Close()
				return
			}
		case <-t.C:
			if pending {
				if missed++; missed >= countMax {
					_ = c.Close()
					return
				}
				continue
			}
			pending = true
			go func() {
				_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
				answered <- err
			}()
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

// CloseWrite ends the command's stdin: dial-stdio passes the half-close on to the engine (an
// attached command's stdin ends).
func (s *sessionConn) CloseWrite() error { return s.in.Close() }

func (s *sessionConn) LocalAddr() net.Addr              { return stdioAddr{} }
func (s *sessionConn) RemoteAddr() net.Addr             { return stdioAddr{} }
func (s *sessionConn) SetDeadline(time.Time) error      { return nil }
func (s *sessionConn) SetReadDeadline(time.Time) error  { return nil }
func (s *sessionConn) SetWriteDeadline(time.Time) error { return nil }

type stdioAddr struct{}

func (stdioAddr) Network() string { return "ssh-stdio" }
func (stdioAddr) String() string  { return "ssh-stdio" }
