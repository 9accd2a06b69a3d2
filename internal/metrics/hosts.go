package metrics

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/kamal-operator/kamal-operator/internal/remote"
)

// SetTargets sets a Deployment's target counts by state; states absent from counts are 0.
// states are every state a target can be in, so none keeps a stale value.
func SetTargets(namespace, name string, states []string, counts map[string]int) {
	for _, s := range states {
		targets.WithLabelValues(namespace, name, s).Set(float64(counts[s]))
	}
}

// serverTracker keeps each Server's Ready status and reason, so that the servers gauge counts
// them by namespace, status and reason without a label per Server.
type serverTracker struct {
	mu     sync.Mutex
	byKey  map[[2]string][3]string // namespace/name -> namespace, status, reason
	counts map[[3]string]int
}

var serverStates = &serverTracker{byKey: map[[2]string][3]string{}, counts: map[[3]string]int{}}

// SetServer records a Server's Ready condition (status True, False or Unknown, and its reason).
func SetServer(namespace, name, status, reason string) {
	serverStates.set([2]string{namespace, name}, &[3]string{namespace, status, reason})
}

// ForgetServer drops a Server that is gone.
func ForgetServer(namespace, name string) {
	serverStates.set([2]string{namespace, name}, nil)
}

func (t *serverTracker) set(key [2]string, to *[3]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.byKey[key]; ok {
		if to != nil && old == *to {
			return
		}
		delete(t.byKey, key)
		if t.counts[old]--; t.counts[old] <= 0 {
			delete(t.counts, old)
			servers.DeleteLabelValues(old[0], old[1], old[2])
		} else {
			servers.WithLabelValues(old[0], old[1], old[2]).Set(float64(t.counts[old]))
		}
	}
	if to == nil {
		return
	}
	t.byKey[key] = *to
	t.counts[*to]++
	servers.WithLabelValues(to[0], to[1], to[2]).Set(float64(t.counts[*to]))
}

// ObserveSSHDial records one SSH dial (remote.Pool's OnDial).
func ObserveSSHDial(err error, took time.Duration) {
	sshDials.WithLabelValues(dialResult(err)).Inc()
	sshDialDuration.WithLabelValues().Observe(took.Seconds())
}

// dialResult classifies a dial's error into a few bounded values.
func dialResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case remote.IsHostKeyMismatch(err):
		return "host_key_rejected"
	case remote.IsAuthFailure(err):
		return "auth_failed"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return "timeout"
	}
	return "error"
}
