package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The pool never has more than MaxConcurrentDials dials in flight, and every Get gets its
// turn.
func TestPoolBoundsConcurrentDials(t *testing.T) {
	const limit, hosts = 3, 20
	var inFlight, most atomic.Int32
	gate := make(chan struct{})
	p := NewPool()
	p.MaxConcurrentDials = limit
	p.dial = func(ctx context.Context, _ *Target) (*Conn, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return nil, errors.New("connection refused")
	}
	var wg sync.WaitGroup
	errs := make(chan error, hosts)
	for i := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.Get(context.Background(), fmt.Sprintf("shop/web-%d", i), &Target{Address: fmt.Sprintf("10.0.0.%d", i), Port: 22})
			errs <- err
		}()
	}
	// Wait until the slots are taken, then let the dials end one by one.
	deadline := time.Now().Add(10 * time.Second)
	for inFlight.Load() < limit {
		if time.Now().After(deadline) {
			t.Fatalf("%d dials in flight, want %d", inFlight.Load(), limit)
		}
		time.Sleep(time.Millisecond)
	}
	for range hosts {
		gate <- struct{}{}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil || err.Error() != "connection refused" {
			t.Errorf("Get: %v", err)
		}
	}
	if m := most.Load(); m != limit {
		t.Errorf("%d dials in flight at most, want %d", m, limit)
	}
	if p.Dials() != hosts {
		t.Errorf("%d dials, want %d", p.Dials(), hosts)
	}
}

// A Get whose context ends while every slot is taken fails without dialling, and without
// backing the host off: the host did nothing wrong.
func TestPoolWaitingForADialSlotSetsNoBackoff(t *testing.T) {
	p := NewPool()
	p.MaxConcurrentDials = 1
	release := make(chan struct{})
	started := make(chan struct{})
	p.dial = func(ctx context.Context, _ *Target) (*Conn, error) {
		close(started)
		<-release
		return nil, errors.New("connection refused")
	}
	go func() { _, _ = p.Get(context.Background(), "shop/slow", &Target{Address: "10.0.0.1", Port: 22}) }()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.Get(ctx, "shop/waiting", &Target{Address: "10.0.0.2", Port: 22})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get while the slot is taken: %v", err)
	}
	if d := p.RetryIn("shop/waiting"); d != 0 {
		t.Errorf("backing off %s after waiting for a slot", d)
	}
	if p.Dials() != 1 {
		t.Errorf("%d dials, want 1", p.Dials())
	}
	close(release)
}

// A failed dial backs the host off, doubling up to MaxBackoff, with at most a fifth more.
func TestPoolBacksOffAFailingHost(t *testing.T) {
	p := NewPool()
	p.MinBackoff, p.MaxBackoff = time.Second, 4*time.Second
	p.dial = func(context.Context, *Target) (*Conn, error) { return nil, errors.New("connection refused") }
	tgt := &Target{Address: "10.0.0.1", Port: 22}
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		if _, err := p.Get(context.Background(), "shop/web-1", tgt); err == nil {
			t.Fatal("dial succeeded")
		}
		if d := p.RetryIn("shop/web-1"); d < want-100*time.Millisecond || d > want+want/5 {
			t.Errorf("retry in %s, want %s to %s", d, want, want+want/5)
		}
		// The next Get while backing off answers at once, without a dial.
		n := p.Dials()
		if _, err := p.Get(context.Background(), "shop/web-1", tgt); err == nil || p.Dials() != n {
			t.Errorf("a Get while backing off dialled (%v)", err)
		}
		p.entry("shop/web-1").retryAt = time.Now() // as if the wait were over
	}
}
