package metrics

import (
	"sync"
	"time"
)

// rolloutTracker remembers, per Deployment, the revision whose rollout this process saw start,
// so that a rollout is counted once however many reconciles and batches it takes, and a deploy
// of a revision already rolled out counts as a drift repair.
//
// It lives in memory: a rollout under way when the controller restarts is counted by neither
// process (the new one does not know when it began), which keeps every count honest.
type rolloutTracker struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[[2]string]*rollout
}

type rollout struct {
	revision string
	started  time.Time // zero: not started by this process
	done     bool      // Ready or halted
	halted   bool
}

var rollouts = &rolloutTracker{now: time.Now, m: map[[2]string]*rollout{}}

// DeploysStarted records that n deploys of a Deployment's targets start toward revision.
// The first batch of a revision starts its rollout; a batch of a revision whose rollout ended
// (Ready) repairs drift. wasReady says whether the Deployment was Ready at its generation before
// this reconcile: it decides for a revision this process has not seen start (after a restart,
// a deploy of a Ready Deployment is a repair).
func DeploysStarted(namespace, name, revision string, n int, wasReady bool) {
	if n <= 0 {
		return
	}
	switch rollouts.deploysStarted(namespace, name, revision, wasReady) {
	case deployRollout:
		rolloutsStarted.WithLabelValues(namespace, name).Inc()
	case deployRepair:
		driftRepairs.WithLabelValues(namespace, name).Add(float64(n))
	}
}

// RolloutReady records that a Deployment is Ready at revision: a rollout of it that this process
// started is complete.
func RolloutReady(namespace, name, revision string) {
	if took, ok := rollouts.ready(namespace, name, revision); ok {
		rolloutsCompleted.WithLabelValues(namespace, name).Inc()
		rolloutDuration.WithLabelValues(namespace, name).Observe(took.Seconds())
	}
}

// RolloutHalted records that the rollout of revision halted; reason is health_check or release.
// A revision halts once: a reconcile that read the Deployment from before its halt was
// recorded decides it again, and is not counted.
func RolloutHalted(namespace, name, revision, reason string) {
	if rollouts.halted(namespace, name, revision) {
		rolloutsHalted.WithLabelValues(namespace, name, reason).Inc()
	}
}

// HealthCheckFailed counts a new container of a Deployment that did not become healthy.
func HealthCheckFailed(namespace, name string) {
	healthCheckFailures.WithLabelValues(namespace, name).Inc()
}

// RouteSwitched counts a switch of a Deployment's route to a new container.
func RouteSwitched(namespace, name string) {
	routeSwitches.WithLabelValues(namespace, name).Inc()
}

type deployKind int

const (
	deployNone    deployKind = iota // more of a rollout under way
	deployRollout                   // the first batch of a rollout
	deployRepair                    // drift repair of a finished rollout
)

func (t *rolloutTracker) deploysStarted(namespace, name, revision string, wasReady bool) deployKind {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := [2]string{namespace, name}
	e := t.m[k]
	switch {
	case e == nil && wasReady:
		t.m[k] = &rollout{revision: revision, done: true}
		return deployRepair
	case e == nil || e.revision != revision:
		t.m[k] = &rollout{revision: revision, started: t.now()}
		return deployRollout
	case e.done:
		return deployRepair
	}
	return deployNone
}

func (t *rolloutTracker) ready(namespace, name, revision string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := [2]string{namespace, name}
	e := t.m[k]
	if e == nil || e.revision != revision {
		// Ready at a revision this process saw no deploy of (it needed none, or it was
		// rolled out before a restart): later deploys of it are repairs.
		t.m[k] = &rollout{revision: revision, done: true}
		return 0, false
	}
	if e.done {
		return 0, false
	}
	e.done = true
	return t.now().Sub(e.started), true
}

// halted marks revision's rollout halted; false when it already was.
func (t *rolloutTracker) halted(namespace, name, revision string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := [2]string{namespace, name}
	if e := t.m[k]; e != nil && e.revision == revision && e.halted {
		return false
	}
	t.m[k] = &rollout{revision: revision, done: true, halted: true}
	return true
}

func (t *rolloutTracker) forget(namespace, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, [2]string{namespace, name})
}
