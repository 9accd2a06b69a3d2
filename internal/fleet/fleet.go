// Package fleet holds the controller's live hosts: per Server one SSH connection (from the
// remote pool), an Engine API client and a proxy admin client on top of it, and a docker events
// stream that tells the controllers about drift within seconds.
package fleet

import (
	"context"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/metrics"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/internal/remote"
)

// Host is one connected Server.
type Host struct {
	Key    string
	Conn   *remote.Conn
	Dialer *docker.Dialer
	Docker *client.Client
	Proxy  *proxy.Admin
	// Requests counts Engine API and proxy admin requests made to this host (the events
	// stream counts once).
	Requests *atomic.Int64
}

// Event is a container event on a host, for a container the controller manages.
type Event struct {
	Key     string
	Message events.Message
}

// Fleet is the set of connected hosts.
type Fleet struct {
	Pool *remote.Pool
	Log  logr.Logger

	mu        sync.Mutex
	hosts     map[string]*Host
	listeners []func(Event)
	// troubleListeners are told when a host's connection dies or its engine stops streaming
	// events, so its Server is reconciled at once.
	troubleListeners []func(key string)
}

// New returns an empty fleet.
func New(log logr.Logger) *Fleet {
	pool := remote.NewPool()
	pool.OnDial = metrics.ObserveSSHDial
	return &Fleet{Pool: pool, Log: log, hosts: map[string]*Host{}}
}

// OnEvent registers fn for every managed-container event of every host.
func (f *Fleet) OnEvent(fn func(Event)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listeners = append(f.listeners, fn)
}

// OnTrouble registers fn for hosts whose connection died or whose engine stopped answering.
func (f *Fleet) OnTrouble(fn func(key string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.troubleListeners = append(f.troubleListeners, fn)
}

// Connect returns the host for key, reusing its connection and clients while they live.
func (f *Fleet) Connect(ctx context.Context, key string, t *remote.Target, socket string) (*Host, error) {
	conn, err := f.Pool.Get(ctx, key, t)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if h := f.hosts[key]; h != nil && h.Conn == conn {
		return h, nil
	}
	if old := f.hosts[key]; old != nil {
		_ = old.Docker.Close()
	}
	d := docker.NewDialer(conn, socket)
	requests := new(atomic.Int64)
	if old := f.hosts[key]; old != nil {
		requests = old.Requests // one count per host across reconnects
	}
	cli, err := docker.NewClient(d, requests, metrics.EngineClientOptions()...)
	if err != nil {
		return nil, err
	}
	h := &Host{
		Key: key, Conn: conn, Dialer: d, Docker: cli, Requests: requests,
		Proxy: proxy.NewAdmin(func(ctx context.Context) (net.Conn, error) { return conn.DialUnix(ctx, proxy.AdminSocket) }),
	}
	h.Proxy.Requests = requests
	f.hosts[key] = h
	go f.watch(h)
	return h, nil
}

// Cached returns the host for key if it is connected, without dialling.
func (f *Fleet) Cached(key string) *Host {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h := f.hosts[key]; h != nil && h.Conn.Alive() {
		return h
	}
	return nil
}

// Lost reports whether key had a connection that has died (keepalives unanswered, the host
// closed it) and no new one replaced it yet.
func (f *Fleet) Lost(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hosts[key]
	return h != nil && !h.Conn.Alive()
}

// Forget drops key's host and closes its connection.
func (f *Fleet) Forget(key string) {
	f.mu.Lock()
	h := f.hosts[key]
	delete(f.hosts, key)
	f.mu.Unlock()
	if h != nil {
		_ = h.Docker.Close()
	}
	f.Pool.Forget(key)
}

// watch streams the host's events for managed containers until its connection dies,
// reopening the stream (with backoff) when only the engine went away.
func (f *Fleet) watch(h *Host) {
	defer func() {
		// No host's answer may crash the process; the host is redialled and watched anew.
		if r := recover(); r != nil {
			f.Log.Error(fmt.Errorf("%v", r), "recovered a panic watching docker events", "server", h.Key, "stack", string(debug.Stack()))
			_ = h.Conn.Close()
			f.trouble(h)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-h.Conn.Done()
		cancel()
	}()
	log := f.Log.WithValues("server", h.Key)
	backoff := time.Second
	for ctx.Err() == nil {
		res := h.Docker.Events(ctx, client.EventsListOptions{Filters: client.Filters{}.
			Add("type", string(events.ContainerEventType)).
			Add("label", kamalv1.LabelManagedBy+"="+kamalv1.ManagerName)})
		started := time.Now()
	stream:
		for {
			select {
			case m := <-res.Messages:
				f.dispatch(Event{Key: h.Key, Message: m})
			case err := <-res.Err:
				if ctx.Err() == nil {
					log.V(1).Info("docker events stream ended", "error", err)
					f.trouble(h)
				}
				break stream
			case <-ctx.Done():
				break stream
			}
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
			backoff = min(backoff*2, 30*time.Second)
		}
	}
	f.trouble(h)
}

// trouble tells the listeners about h, unless h was already replaced or forgotten.
func (f *Fleet) trouble(h *Host) {
	f.mu.Lock()
	current := f.hosts[h.Key] == h
	ls := append([]func(string){}, f.troubleListeners...)
	f.mu.Unlock()
	if current {
		for _, fn := range ls {
			fn(h.Key)
		}
	}
}

func (f *Fleet) dispatch(e Event) {
	f.mu.Lock()
	ls := append([]func(Event){}, f.listeners...)
	f.mu.Unlock()
	for _, fn := range ls {
		fn(e)
	}
}

// Close drops every host and closes its connection.
func (f *Fleet) Close() {
	f.mu.Lock()
	keys := make([]string, 0, len(f.hosts))
	for k := range f.hosts {
		keys = append(keys, k)
	}
	f.mu.Unlock()
	for _, k := range keys {
		f.Forget(k)
	}
}
