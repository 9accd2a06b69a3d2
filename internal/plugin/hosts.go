package plugin

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	dockerclient "github.com/moby/moby/client"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/remote"
	"github.com/kamal-operator/kamal-operator/internal/servertarget"
)

// dialTimeout bounds connecting to one host.
const dialTimeout = 20 * time.Second

// host is one connected Server.
type host struct {
	Server *kamalv1.Server
	// Ref is how the workload names the Server: "name", or "namespace/name" for one of
	// another namespace.
	Ref    string
	Conn   *remote.Conn
	Docker *dockerclient.Client
}

// hosts connects to Servers for one command: one SSH connection per host, kept until Close,
// shared by everything the command does there.
type hosts struct {
	c  client.Reader
	mu sync.Mutex
	// conns by Server namespace/name; a connection is dialled once, by the first caller.
	conns map[string]*hostDial
}

type hostDial struct {
	once sync.Once
	h    *host
	err  error
}

func newHosts(c client.Reader) *hosts { return &hosts{c: c, conns: map[string]*hostDial{}} }

// connect returns the connected host of the Server that objNamespace's workload names ref.
func (hs *hosts) connect(ctx context.Context, objNamespace, ref string) (*host, error) {
	key := servertarget.RefKey(objNamespace, ref)
	hs.mu.Lock()
	d := hs.conns[key.String()]
	if d == nil {
		d = &hostDial{}
		hs.conns[key.String()] = d
	}
	hs.mu.Unlock()
	d.once.Do(func() {
		d.h, d.err = hs.dial(ctx, ref, key.Namespace, key.Name)
	})
	return d.h, d.err
}

func (hs *hosts) dial(ctx context.Context, ref, namespace, name string) (*host, error) {
	srv := &kamalv1.Server{}
	if err := hs.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, srv); err != nil {
		return nil, fmt.Errorf("Server %s/%s: %w", namespace, name, err)
	}
	t, problem, err := servertarget.For(ctx, hs.c, srv, false)
	if err != nil {
		return nil, err
	}
	if problem != nil {
		return nil, fmt.Errorf("Server %s/%s cannot be reached: %s", namespace, name, problem.Message)
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := remote.Dial(dctx, t)
	if err != nil {
		return nil, fmt.Errorf("Server %s/%s (%s): %w", namespace, name, srv.Spec.Address, err)
	}
	cli, err := docker.NewClient(docker.NewDialer(conn, srv.Spec.Docker.SocketPath), new(atomic.Int64))
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return &host{Server: srv, Ref: ref, Conn: conn, Docker: cli}, nil
}

// Close closes every connection.
func (hs *hosts) Close() {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, d := range hs.conns {
		if d.h != nil {
			_ = d.h.Docker.Close()
			_ = d.h.Conn.Close()
		}
	}
}
