package controllers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
)

func waitDone(t *testing.T, ops *targetOps, key opKey) opState {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if st, ok := ops.Get(key); ok && !st.Running {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("operation %v did not end", key)
	return opState{}
}

func TestTargetOpsRecoverPanicsIntoErrors(t *testing.T) {
	woken := make(chan string, 4)
	ops := newTargetOps(logr.Discard(), func(key opKey, _ error) { woken <- key.Namespace + "/" + key.Deployment })
	defer ops.Close()
	key := opKey{"team-a", "app", "web", "web-1"}
	var nilMap map[string]int
	ops.Start(key, "h1", func(context.Context, func(opStep)) error {
		nilMap["boom"] = 1 // panics: assignment to a nil map
		return nil
	})
	st := waitDone(t, ops, key)
	if st.Err == nil || !strings.Contains(st.Err.Error(), "internal error") {
		t.Fatalf("err = %v, want the panic as an internal error", st.Err)
	}
	if st.Fails != 1 {
		t.Errorf("fails = %d, want 1", st.Fails)
	}
	select {
	case got := <-woken:
		if got != "team-a/app" {
			t.Errorf("woke %q", got)
		}
	case <-time.After(time.Second):
		t.Error("the Deployment was not woken when its operation ended")
	}
}

func TestTargetOpsRunOnePerTargetAndCancelOnSpecChange(t *testing.T) {
	ops := newTargetOps(logr.Discard(), nil)
	defer ops.Close()
	key := opKey{"ns", "app", "web", "web-1"}
	release := make(chan struct{})
	started := ops.Start(key, "h1", func(ctx context.Context, step func(opStep)) error {
		step(stepChecking)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if !started {
		t.Fatal("first Start did not start")
	}
	if ops.Start(key, "h1", func(context.Context, func(opStep)) error { return nil }) {
		t.Fatal("a second operation started while the first runs")
	}
	if n := ops.Running("ns", "app", "web"); n != 1 {
		t.Fatalf("running = %d, want 1", n)
	}
	deadline := time.Now().Add(time.Second)
	for st, _ := ops.Get(key); st.Step != stepChecking && time.Now().Before(deadline); st, _ = ops.Get(key) {
		time.Sleep(time.Millisecond)
	}
	if st, _ := ops.Get(key); st.Step != stepChecking {
		t.Errorf("step = %q, want %q", st.Step, stepChecking)
	}
	ops.Cancel(key, "h1") // same hash: keeps running
	if st, _ := ops.Get(key); !st.Running {
		t.Fatal("cancelled although the spec did not change")
	}
	ops.Cancel(key, "h2") // the spec moved on
	st := waitDone(t, ops, key)
	if !errors.Is(st.Err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", st.Err)
	}
	close(release)
	ops.Forget(key)
	if _, ok := ops.Get(key); ok {
		t.Error("a finished operation was not forgotten")
	}
}

func TestTargetOpsKeepTheFailureCountOfTheSameHash(t *testing.T) {
	ops := newTargetOps(logr.Discard(), nil)
	defer ops.Close()
	key := opKey{"ns", "app", "web", "web-1"}
	fail := func(context.Context, func(opStep)) error { return errors.New("engine said no") }
	for i := 1; i <= 3; i++ {
		ops.Start(key, "h1", fail)
		if st := waitDone(t, ops, key); st.Fails != i {
			t.Fatalf("attempt %d: fails = %d", i, st.Fails)
		}
	}
	ops.Start(key, "h2", fail)
	if st := waitDone(t, ops, key); st.Fails != 1 {
		t.Errorf("a new hash starts counting again: fails = %d, want 1", st.Fails)
	}
	if b := retryBackoff(1); b != 2*time.Second {
		t.Errorf("retryBackoff(1) = %s", b)
	}
	if b := retryBackoff(3); b != 8*time.Second {
		t.Errorf("retryBackoff(3) = %s", b)
	}
	if b := retryBackoff(50); b != time.Minute {
		t.Errorf("retryBackoff(50) = %s, want the 1m cap", b)
	}
}

func TestTargetOpsStopWithTheManager(t *testing.T) {
	ops := newTargetOps(logr.Discard(), nil)
	key := opKey{"ns", "app", "web", "web-1"}
	ops.Start(key, "h1", func(ctx context.Context, _ func(opStep)) error {
		<-ctx.Done()
		return ctx.Err()
	})
	ops.Close()
	if st := waitDone(t, ops, key); !errors.Is(st.Err, context.Canceled) {
		t.Fatalf("err = %v", st.Err)
	}
	if ops.Start(key, "h1", func(context.Context, func(opStep)) error { return nil }) {
		t.Error("an operation started after Close")
	}
}

func TestRunPhasesStopsAtTheFirstResult(t *testing.T) {
	var ran []string
	step := func(name string, res *ctrl.Result, err error) phase[*[]string] {
		return func(_ context.Context, s *[]string) (*ctrl.Result, error) {
			*s = append(*s, name)
			return res, err
		}
	}
	res, err := runPhases(context.Background(), &ran,
		step("a", nil, nil),
		step("b", &ctrl.Result{RequeueAfter: time.Second}, nil),
		step("c", nil, nil))
	if err != nil || res.RequeueAfter != time.Second || strings.Join(ran, "") != "ab" {
		t.Fatalf("ran %v, result %+v, err %v", ran, res, err)
	}
	ran = nil
	boom := errors.New("boom")
	if _, err := runPhases(context.Background(), &ran, step("a", nil, boom), step("b", nil, nil)); !errors.Is(err, boom) || len(ran) != 1 {
		t.Fatalf("an error did not end the phases: ran %v, err %v", ran, err)
	}
}

func TestPullErrorsThatRetryingCannotFixStall(t *testing.T) {
	for msg, permanent := range map[string]bool{
		"on web-1: pulling r/app:nope: Error response from daemon: manifest unknown":           true,
		"on web-1: pulling r/app:v1: Error response from daemon: unauthorized: authentication": true,
		"on web-1: pulling r/app:v1: context deadline exceeded":                                false,
		"on web-1: pulling r/app:v1: connection reset by peer":                                 false,
	} {
		p := pullProblem(classifyPull(errors.New(msg)))
		if (p != nil) != permanent {
			t.Errorf("%q: stalled = %v, want %v", msg, p != nil, permanent)
		}
	}
}

func TestCheckHealthPath(t *testing.T) {
	for path, ok := range map[string]bool{
		"/up": true, "/health/ready?full=1": true, "/a%2Fb": true,
		"/%zz": false, "/a%2": false, "up": false, "/{http.request.host}": false, "/a b": false,
	} {
		if err := checkHealthPath(path); (err == nil) != ok {
			t.Errorf("checkHealthPath(%q) = %v, want ok=%v", path, err, ok)
		}
	}
}
