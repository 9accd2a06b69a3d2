package metrics

import (
	"testing"
	"time"
)

func TestRolloutTracker(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := &rolloutTracker{now: func() time.Time { return now }, m: map[[2]string]*rollout{}}

	// A first batch starts the rollout; later batches and retries of it count nothing.
	if k := tr.deploysStarted("ns", "app", "r1", false); k != deployRollout {
		t.Fatalf("first batch: %v, want rollout", k)
	}
	now = now.Add(20 * time.Second)
	if k := tr.deploysStarted("ns", "app", "r1", false); k != deployNone {
		t.Fatalf("second batch: %v, want none", k)
	}
	now = now.Add(10 * time.Second)
	took, ok := tr.ready("ns", "app", "r1")
	if !ok || took != 30*time.Second {
		t.Fatalf("ready: %v %v, want 30s true", took, ok)
	}
	// Ready again (every resync) completes nothing more.
	if _, ok := tr.ready("ns", "app", "r1"); ok {
		t.Fatal("second ready counted")
	}
	// A container of r1 died: its deploy is a repair.
	if k := tr.deploysStarted("ns", "app", "r1", true); k != deployRepair {
		t.Fatalf("after ready: %v, want repair", k)
	}
	// A new revision starts a new rollout, even while Ready (a Secret's value changed).
	if k := tr.deploysStarted("ns", "app", "r2", true); k != deployRollout {
		t.Fatalf("new revision: %v, want rollout", k)
	}
	if !tr.halted("ns", "app", "r2") {
		t.Fatal("first halt not counted")
	}
	if tr.halted("ns", "app", "r2") {
		t.Fatal("the same revision halted twice")
	}
	if _, ok := tr.ready("ns", "app", "r2"); ok {
		t.Fatal("a halted rollout completed")
	}
	// Another Deployment is separate.
	if k := tr.deploysStarted("ns", "other", "r1", false); k != deployRollout {
		t.Fatalf("other deployment: %v, want rollout", k)
	}
}

// After a restart the tracker knows nothing: a deploy of a Ready Deployment is a repair, and a
// rollout it did not see start is never completed or timed.
func TestRolloutTrackerAfterRestart(t *testing.T) {
	tr := &rolloutTracker{now: time.Now, m: map[[2]string]*rollout{}}
	if k := tr.deploysStarted("ns", "app", "r1", true); k != deployRepair {
		t.Fatalf("deploy of a Ready Deployment: %v, want repair", k)
	}
	tr.forget("ns", "app")
	if _, ok := tr.ready("ns", "app", "r1"); ok {
		t.Fatal("ready of an unseen rollout counted")
	}
	if k := tr.deploysStarted("ns", "app", "r1", false); k != deployRepair {
		t.Fatalf("deploy after ready: %v, want repair", k)
	}
}
