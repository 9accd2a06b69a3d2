// Package docker drives a host's Docker Engine through its SSH connection: a stream to the
// engine's socket (direct-streamlocal), or `docker system dial-stdio` where sshd refuses stream
// forwarding. Requests are typed Engine API calls; nothing is pasted into a shell.
package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"

	"github.com/kamal-operator/kamal-operator/internal/remote"
)

// DefaultSocket is where the engine listens on most hosts.
const DefaultSocket = "/var/run/docker.sock"

// dialStdio is the fallback command. It is a constant: no user input reaches the host's shell.
const dialStdio = "docker system dial-stdio"

// Dialer opens streams to the engine over one SSH connection.
type Dialer struct {
	conn   *remote.Conn
	socket string

	mu        sync.Mutex
	useStdio  bool
	lastProbe time.Time
}

// socketProbeEvery is how often a dialer on the dial-stdio fallback tries the socket again:
// sshd says "open failed" both when it refuses forwarding and when the engine is down, so
// a fallback taken during an engine restart must not stick.
const socketProbeEvery = time.Minute

// NewDialer returns a Dialer for the engine at socket on conn's host.
func NewDialer(conn *remote.Conn, socket string) *Dialer {
	if socket == "" {
		socket = DefaultSocket
	}
	return &Dialer{conn: conn, socket: socket}
}

// ViaStdio reports whether the dialer uses `docker system dial-stdio`.
func (d *Dialer) ViaStdio() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.useStdio
}

// PreferSocket makes the next dial try the engine's socket again, for a dialer that fell back
// to dial-stdio while the engine was down.
func (d *Dialer) PreferSocket() {
	d.mu.Lock()
	d.lastProbe = time.Time{}
	d.mu.Unlock()
}

// DialContext opens one stream to the engine; the HTTP client pools them.
func (d *Dialer) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	d.mu.Lock()
	trySocket := !d.useStdio || time.Since(d.lastProbe) > socketProbeEvery
	if d.useStdio && trySocket {
		d.lastProbe = time.Now()
	}
	d.mu.Unlock()
	if trySocket {
		c, err := d.conn.DialUnix(ctx, d.socket)
		if err == nil {
			d.mu.Lock()
			d.useStdio = false
			d.mu.Unlock()
			return c, nil
		}
		var oce *ssh.OpenChannelError
		if !errors.As(err, &oce) {
			return nil, fmt.Errorf("docker socket %s: %w", d.socket, err)
		}
		if d.socket != DefaultSocket {
			// dial-stdio would reach the default engine, not this one.
			return nil, fmt.Errorf("docker socket %s: %w (dial-stdio reaches only %s)", d.socket, err, DefaultSocket)
		}
	}
	c, err := d.conn.DialCommand(ctx, dialStdio)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if !d.useStdio {
		d.useStdio, d.lastProbe = true, time.Now()
	}
	d.mu.Unlock()
	return c, nil
}

// NewClient returns an Engine API client that negotiates the API version with the host, so
// Debian bookworm's engine (API 1.41) and newer ones both work. Each request adds one to
// requests, when given, so the controller's load on a host can be measured; extra options (such
// as the metrics' hooks) are applied last.
func NewClient(d *Dialer, requests *atomic.Int64, extra ...client.Opt) (*client.Client, error) {
	opts := []client.Opt{
		client.WithHost("unix://" + DefaultSocket),
		client.WithDialContext(d.DialContext),
		client.WithAPIVersionNegotiation(),
	}
	if requests != nil {
		opts = append(opts, client.WithHTTPRequestHook(func(*http.Request) error { requests.Add(1); return nil }))
	}
	return client.New(append(opts, extra...)...)
}

// IsNotFound reports whether err says the object does not exist.
func IsNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// IsConflict reports whether err says the object already exists or is in use.
func IsConflict(err error) bool { return cerrdefs.IsConflict(err) }
