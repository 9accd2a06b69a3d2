// Package controllers holds the reconcilers of Servers, Deployments and Accessories. They are
// thin: they read the cluster, call the planning and host packages under internal/, and report
// in status and events.
package controllers

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kamal-operator/kamal-operator/internal/fleet"
)

// EventSource names the controller in the events it records.
const EventSource = "kamal-operator"

// DefaultNamespace is the controller's namespace when Options.Namespace is empty (as
// config/default installs it).
const DefaultNamespace = "kamal-operator-system"

// Options configure the controllers.
type Options struct {
	// DefaultProxyImage runs on Servers whose spec names no proxy image.
	DefaultProxyImage string
	// Namespace is the controller's own namespace (DefaultNamespace when empty). It holds the
	// known-hosts store, the ConfigMap KnownHostsConfigMap of host keys trusted on first use,
	// so it must exist before a TrustOnFirstUse Server is first connected.
	Namespace string
}

// Setup registers the indexes and the three reconcilers with a manager, sharing one fleet of
// host connections, and returns that fleet.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) (*fleet.Fleet, error) {
	if err := SetupIndexes(ctx, mgr); err != nil {
		return nil, err
	}
	hosts := fleet.New(ctrl.Log.WithName("fleet"))
	rec := mgr.GetEventRecorder(EventSource)
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if err := (&ServerReconciler{Client: mgr.GetClient(), Recorder: rec, Fleet: hosts, DefaultProxyImage: opts.DefaultProxyImage,
		KnownHostsNamespace: opts.Namespace, APIReader: mgr.GetAPIReader()}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&KeySecretReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&DeploymentReconciler{Client: mgr.GetClient(), Recorder: rec, Fleet: hosts}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&AccessoryReconciler{Client: mgr.GetClient(), Recorder: rec, Fleet: hosts, DefaultProxyImage: opts.DefaultProxyImage,
		APIReader: mgr.GetAPIReader()}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	return hosts, nil
}
