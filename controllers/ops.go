package controllers

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
)

// recoverInto turns a panic of the calling goroutine into an error in *err, with the stack in
// the log: a goroutine the controller starts itself is outside controller-runtime's panic
// recovery, and no object's input may crash the process.
func recoverInto(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("internal error: %v", r)
		ctrl.Log.WithName("recover").Error(*err, "recovered a panic", "stack", string(debug.Stack()))
	}
}

// goSafe runs fn in a goroutine with recoverInto; done gets fn's error or the panic's.
func goSafe(fn func() error, done func(error)) {
	go func() {
		var err error
		defer func() { done(err) }()
		defer recoverInto(&err)
		err = fn()
	}()
}

// opKey names one role on one server of one Deployment.
type opKey struct{ Namespace, Deployment, Role, Server string }

// opStep is what a running operation is doing, for status.
type opStep string

// targetOp is one background deploy of a target to the spec hash it was started for.
type targetOp struct {
	hash    string
	started time.Time
	cancel  context.CancelFunc

	mu       sync.Mutex
	step     opStep
	done     bool
	err      error
	finished time.Time
	// fails counts consecutive failed attempts at this hash, for the retry backoff.
	fails int
}

func (o *targetOp) setStep(s opStep) {
	o.mu.Lock()
	o.step = s
	o.mu.Unlock()
}

// opState is a snapshot of an operation.
type opState struct {
	Hash     string
	Step     opStep
	Running  bool
	Err      error
	Finished time.Time
	Fails    int
}

// targetOps runs deploys in the background, one per target at most, so a reconcile starts a
// batch and returns: it never waits for a rollout, other Deployments' drift repair is never
// held up, and status is written while a batch runs. What must survive a restart is on the
// hosts (the containers and routes a deploy leaves are idempotent steps) and in status; an
// operation lost with the process is simply started again.
type targetOps struct {
	log  logr.Logger
	base context.Context
	stop context.CancelFunc
	// ended is told when an operation ends (with its error), to reconcile its Deployment.
	ended func(key opKey, err error)

	mu  sync.Mutex
	ops map[opKey]*targetOp
}

func newTargetOps(log logr.Logger, ended func(key opKey, err error)) *targetOps {
	ctx, cancel := context.WithCancel(context.Background())
	return &targetOps{log: log, base: ctx, stop: cancel, ended: ended, ops: map[opKey]*targetOp{}}
}

// Start runs fn for key toward hash unless an operation for key is already running. A
// finished one of the same hash is replaced, keeping its failure count.
func (t *targetOps) Start(key opKey, hash string, fn func(ctx context.Context, step func(opStep)) error) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	fails := 0
	if o := t.ops[key]; o != nil {
		o.mu.Lock()
		running, ofails, ohash := !o.done, o.fails, o.hash
		o.mu.Unlock()
		if running {
			return false
		}
		if ohash == hash {
			fails = ofails
		}
	}
	if t.base.Err() != nil {
		return false
	}
	ctx, cancel := context.WithCancel(t.base)
	o := &targetOp{hash: hash, started: time.Now(), cancel: cancel, fails: fails}
	t.ops[key] = o
	goSafe(func() error { return fn(ctx, o.setStep) }, func(err error) {
		cancel()
		o.mu.Lock()
		o.done, o.err, o.finished = true, err, time.Now()
		if err != nil {
			o.fails++
		} else {
			o.fails = 0
		}
		o.mu.Unlock()
		if err != nil {
			t.log.V(1).Info("deploy ended with an error", "deployment", key.Namespace+"/"+key.Deployment, "role", key.Role, "server", key.Server, "error", err.Error())
		}
		if t.ended != nil {
			t.ended(key, err)
		}
	})
	return true
}

// Get returns the state of key's operation.
func (t *targetOps) Get(key opKey) (opState, bool) {
	t.mu.Lock()
	o := t.ops[key]
	t.mu.Unlock()
	if o == nil {
		return opState{}, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return opState{Hash: o.hash, Step: o.step, Running: !o.done, Err: o.err, Finished: o.finished, Fails: o.fails}, true
}

// Cancel stops key's operation if it runs toward another hash than hash ("" cancels any).
func (t *targetOps) Cancel(key opKey, unlessHash string) {
	t.mu.Lock()
	o := t.ops[key]
	t.mu.Unlock()
	if o != nil && (unlessHash == "" || o.hash != unlessHash) {
		o.cancel()
	}
}

// Forget drops key's finished operation.
func (t *targetOps) Forget(key opKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if o := t.ops[key]; o != nil {
		o.mu.Lock()
		done := o.done
		o.mu.Unlock()
		if done {
			delete(t.ops, key)
		}
	}
}

// Running counts the running operations of a Deployment (of one role, when role is set).
func (t *targetOps) Running(namespace, deployment, role string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, o := range t.ops {
		if k.Namespace != namespace || k.Deployment != deployment || (role != "" && k.Role != role) {
			continue
		}
		o.mu.Lock()
		if !o.done {
			n++
		}
		o.mu.Unlock()
	}
	return n
}

// CancelAll stops every operation of a Deployment (deletion, suspension) and drops the
// finished ones.
func (t *targetOps) CancelAll(namespace, deployment string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, o := range t.ops {
		if k.Namespace == namespace && k.Deployment == deployment {
			o.cancel()
		}
	}
}

// Close stops every operation; the manager calls it when it stops.
func (t *targetOps) Close() { t.stop() }

// retryBackoff is how long a target whose deploy failed (not its health check) waits before
// the next attempt: 2 s, doubling, at most a minute.
func retryBackoff(fails int) time.Duration {
	d := 2 * time.Second
	for i := 1; i < fails && d < time.Minute; i++ {
		d *= 2
	}
	return min(d, time.Minute)
}
