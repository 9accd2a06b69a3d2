package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/conditions"
	"github.com/kamal-operator/kamal-operator/internal/metrics"
)

// targetStates are every state a target can show, so that the gauge of each is kept, 0 included.
var targetStates = []string{
	string(kamalv1.TargetPending), string(kamalv1.TargetPulling), string(kamalv1.TargetStarting),
	string(kamalv1.TargetHealthChecking), string(kamalv1.TargetRunning), string(kamalv1.TargetFailed),
	string(kamalv1.TargetUnreachable),
}

// observeTargets sets the Deployment's targets-by-state gauge from every target of a reconcile.
func observeTargets(d *kamalv1.Deployment, targets []kamalv1.TargetStatus) {
	counts := map[string]int{}
	for _, t := range targets {
		counts[string(t.State)]++
	}
	metrics.SetTargets(d.Namespace, d.Name, targetStates, counts)
}

// observeDeploys records n deploys started toward the scope's revision: the first batch of a
// rollout, or drift repairs of one that finished.
func observeDeploys(s *deploymentScope, n int) {
	d := s.d
	metrics.DeploysStarted(d.Namespace, d.Name, s.revision, n, conditions.IsReady(d.Status.Conditions, d.Generation))
}

// observeServer records a Server's Ready condition once its reconcile has set it.
func observeServer(srv *kamalv1.Server) {
	status, reason := "Unknown", ""
	if c := meta.FindStatusCondition(srv.Status.Conditions, kamalv1.ConditionReady); c != nil {
		status, reason = string(c.Status), c.Reason
	}
	metrics.SetServer(srv.Namespace, srv.Name, status, reason)
}
