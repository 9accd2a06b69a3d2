package remote

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// DefaultMaxConcurrentDials is the default bound of dials in flight at once.
const DefaultMaxConcurrentDials = 32

// Pool keeps one connection per key (a Server), redialling a dead one with exponential
// backoff: while backing off, Get returns the last dial error at once instead of hammering
// an unreachable host.
type Pool struct {
	mu      sync.Mutex
	entries map[string]*entry
	// DialTimeout bounds one dial (default 15s), counted once it has a slot.
	DialTimeout time.Duration
	// Backoff bounds (defaults 1s and 1m). Each wait is jittered by up to a fifth, so hosts
	// that failed together (a network partition) are not all redialled in the same instant.
	MinBackoff, MaxBackoff time.Duration
	// MaxConcurrentDials bounds the dials (TCP, SSH handshake) in flight across all keys, as
	// Kamal's max_concurrent_starts bounds its boots: a controller starting with thousands of
	// Servers opens them a few dozen at a time. 0 means no bound. Set it before first use.
	MaxConcurrentDials int
	// OnDial, when set, is told of every dial's outcome and duration (for metrics).
	OnDial func(err error, took time.Duration)
	// dials counts dial attempts, for tests and benchmarks.
	dials int

	slotsOnce sync.Once
	slots     chan struct{}
	// dial dials a target (Dial; replaced in tests).
	dial func(context.Context, *Target) (*Conn, error)
}

type entry struct {
	mu          sync.Mutex
	fingerprint string
	conn        *Conn
	lastErr     error
	retryAt     time.Time
	backoff     time.Duration
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{entries: map[string]*entry{}} }

func (p *Pool) entry(key string) *entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entries[key]
	if e == nil {
		e = &entry{}
		p.entries[key] = e
	}
	return e
}

// Get returns the live connection for key, dialling t when there is none or t changed.
func (p *Pool) Get(ctx context.Context, key string, t *Target) (*Conn, error) {
	e := p.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	fp := t.fingerprint()
	if e.conn != nil && (e.fingerprint != fp || !e.conn.Alive()) {
		_ = e.conn.Close()
		e.conn = nil
	}
	if e.conn != nil {
		return e.conn, nil
	}
	if e.fingerprint == fp && e.lastErr != nil && time.Now().Before(e.retryAt) {
		return nil, e.lastErr
	}
	// Waiting for a slot is no failure of the host: it sets no backoff.
	release, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	timeout := p.DialTimeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p.mu.Lock()
	p.dials++
	dial := p.dial
	p.mu.Unlock()
	if dial == nil {
		dial = Dial
	}
	t0 := time.Now()
	conn, err := dial(dctx, t)
	if p.OnDial != nil {
		p.OnDial(err, time.Since(t0))
	}
	e.fingerprint = fp
	if err != nil {
		minB, maxB := p.MinBackoff, p.MaxBackoff
		if minB == 0 {
			minB = time.Second
		}
		if maxB == 0 {
			maxB = time.Minute
		}
		e.backoff = min(max(e.backoff*2, minB), maxB)
		e.lastErr, e.retryAt = err, time.Now().Add(jitter(e.backoff))
		return nil, err
	}
	e.conn, e.lastErr, e.backoff = conn, nil, 0
	return conn, nil
}

// RetryIn says how long until the next dial to key may be tried (0 when it may now).
func (p *Pool) RetryIn(key string) time.Duration {
	e := p.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lastErr == nil {
		return 0
	}
	return max(time.Until(e.retryAt), 0)
}

// Forget closes and drops key's connection.
func (p *Pool) Forget(key string) {
	p.mu.Lock()
	e := p.entries[key]
	delete(p.entries, key)
	p.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		if e.conn != nil {
			_ = e.conn.Close()
		}
		e.mu.Unlock()
	}
}

// Dials is how many dials the pool has made.
func (p *Pool) Dials() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dials
}

// acquire takes a dial slot, waiting while MaxConcurrentDials dials are in flight, and
// returns what gives it back.
func (p *Pool) acquire(ctx context.Context) (func(), error) {
	p.slotsOnce.Do(func() {
		if p.MaxConcurrentDials > 0 {
			p.slots = make(chan struct{}, p.MaxConcurrentDials)
		}
	})
	if p.slots == nil {
		return func() {}, nil
	}
	select {
	case p.slots <- struct{}{}:
		return func() { <-p.slots }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("not dialled: %d dials to other hosts in flight (--max-concurrent-dials): %w", cap(p.slots), ctx.Err())
	}
}

// jitter is d plus up to a fifth of it.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + rand.N(d/5+1)
}
