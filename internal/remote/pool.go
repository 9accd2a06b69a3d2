package remote

import (
	"context"
	"sync"
	"time"
)

// Pool keeps one connection per key (a Server), redialling a dead one with exponential
// backoff: while backing off, Get returns the last dial error at once instead of hammering
// an unreachable host.
type Pool struct {
	mu      sync.Mutex
	entries map[string]*entry
	// DialTimeout bounds one dial (default 15s).
	DialTimeout time.Duration
	// Backoff bounds (defaults 1s and 1m).
	MinBackoff, MaxBackoff time.Duration
	// OnDial, when set, is told of every dial's outcome and duration (for metrics).
	OnDial func(err error, took time.Duration)
	// dials counts dial attempts, for tests and benchmarks.
	dials int
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
	timeout := p.DialTimeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p.mu.Lock()
	p.dials++
	p.mu.Unlock()
	t0 := time.Now()
	conn, err := Dial(dctx, t)
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
		e.lastErr, e.retryAt = err, time.Now().Add(e.backoff)
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
