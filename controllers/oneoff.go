package controllers

import (
	"context"
	"time"

	dockerclient "github.com/moby/moby/client"
	corev1 "k8s.io/api/core/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/internal/oneoff"
)

// collectOneOffs removes the one-off containers kubectl-kamal left on the host (a plugin killed
// before it could remove its exec container) once their grace period has passed, and returns
// when the next one expires (zero for none). Failures are events: what runs keeps running.
func (r *ServerReconciler) collectOneOffs(ctx context.Context, srv *kamalv1.Server, host *fleet.Host) time.Time {
	opCtx, cancel := context.WithTimeout(ctx, hostOpTimeout)
	defer cancel()
	res, err := host.Docker.ContainerList(opCtx, dockerclient.ContainerListOptions{All: true, Filters: oneoff.Filters()})
	if err != nil {
		r.Recorder.Eventf(srv, nil, corev1.EventTypeWarning, "OneOffCleanupFailed", "Cleanup", "listing one-off containers: %v", err)
		return time.Now().Add(networksRetry)
	}
	exited, running := r.oneOffGrace()
	ids, next := oneoff.Expired(res.Items, time.Now(), exited, running)
	if len(res.Items) > 0 {
		logf.FromContext(ctx).V(1).Info("one-off containers on the host", "found", len(res.Items), "expired", len(ids), "nextExpiry", next)
	}
	removed := 0
	for _, id := range ids {
		_, err := host.Docker.ContainerRemove(opCtx, id, dockerclient.ContainerRemoveOptions{Force: true})
		switch {
		case err == nil || docker.IsNotFound(err):
			removed++
		default:
			r.Recorder.Eventf(srv, nil, corev1.EventTypeWarning, "OneOffCleanupFailed", "Cleanup", "removing one-off container %.12s: %v", id, err)
			next = time.Now().Add(networksRetry)
		}
	}
	if removed > 0 {
		r.Recorder.Eventf(srv, nil, corev1.EventTypeNormal, "OneOffsRemoved", "Cleanup",
			"removed %d one-off containers of kubectl kamal left on the host past their grace period", removed)
	}
	return next
}

// oneOffGrace is how long exited and running one-off containers are left alone.
func (r *ServerReconciler) oneOffGrace() (exited, running time.Duration) {
	exited, running = r.OneOffExitedGrace, r.OneOffRunningGrace
	if exited <= 0 {
		exited = oneoff.DefaultExitedGrace
	}
	if running <= 0 {
		running = oneoff.DefaultRunningGrace
	}
	return exited, running
}

// isOneOffEvent says whether a host event is a one-off container's, which may make it collectable.
func isOneOffEvent(e fleet.Event) bool {
	return e.Message.Actor.Attributes[kamalv1.LabelOneOff] != ""
}
