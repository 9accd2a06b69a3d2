// Package controllers holds the reconcilers of Servers, Deployments and Accessories. They are
// thin: they read the cluster, call the planning and host packages under internal/, and report
// in status and events.
package controllers

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
)

// EventSource names the controller in the events it records.
const EventSource = "kamal-operator"

// Setup registers the indexes and the three reconcilers with a manager.
func Setup(ctx context.Context, mgr ctrl.Manager) error {
	if err := SetupIndexes(ctx, mgr); err != nil {
		return err
	}
	rec := mgr.GetEventRecorder(EventSource)
	if err := (&ServerReconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&DeploymentReconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&AccessoryReconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(mgr)
}
