// Package controllers holds the reconcilers of Servers, Deployments and Accessories. They are
// thin: they read the cluster, call the planning and host packages under internal/, and report
// in status and events.
package controllers

import (
	"context"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/internal/remote"
	"github.com/kamal-operator/kamal-operator/internal/tenancy"
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
	// Guests is what Deployments and Accessories placed on a Server of another namespace may
	// ask of its host; the zero value allows nothing beyond an ordinary container.
	Guests tenancy.GuestPolicy
	// WatchNamespaces limits the manager's cache, and so the objects reconciled, to these
	// namespaces and Namespace (see ManagerOptions); empty for all.
	WatchNamespaces []string
	// OneOffExitedGrace and OneOffRunningGrace are how long after their creation one-off
	// containers of kubectl kamal (exec without --reuse) are left on a host once exited, and
	// while running, before the controller removes them (oneoff.Default* when 0).
	OneOffExitedGrace, OneOffRunningGrace time.Duration
	// ACME are the settings of automatic certificates (ssl: true without
	// sslCertificateSecretRef); the account key is kept in Secret ACMEAccountSecret of
	// Namespace.
	ACME ACMEOptions
	// DeploymentWorkers, ServerWorkers and AccessoryWorkers are how many objects of each kind
	// are reconciled at once (Default*Workers when 0).
	DeploymentWorkers, ServerWorkers, AccessoryWorkers int
	// DeploymentResync, ServerResync and AccessoryResync are how long after a pass that found
	// nothing to do an object is looked at again, the safety net behind watches and docker
	// events (Default*Resync when 0).
	DeploymentResync, ServerResync, AccessoryResync time.Duration
	// MaxConcurrentDials bounds the SSH connections being opened at once across all hosts
	// (remote.DefaultMaxConcurrentDials when 0; negative: no bound).
	MaxConcurrentDials int
}

func (o Options) namespace() string {
	if o.Namespace == "" {
		return DefaultNamespace
	}
	return o.Namespace
}

// Setup registers the indexes and the three reconcilers with a manager (made with
// ManagerOptions), sharing one fleet of host connections, and returns that fleet.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) (*fleet.Fleet, error) {
	if err := SetupIndexes(ctx, mgr); err != nil {
		return nil, err
	}
	hosts := fleet.New(ctrl.Log.WithName("fleet"))
	if opts.MaxConcurrentDials >= 0 {
		hosts.Pool.MaxConcurrentDials = orDefault(opts.MaxConcurrentDials, remote.DefaultMaxConcurrentDials)
	}
	rec := boundedNotes{mgr.GetEventRecorder(EventSource)}
	// One client for the three: Secrets and ConfigMaps read once per change, not per reconcile.
	c := newRefClient(mgr.GetClient(), mgr.GetCache(), mgr.GetAPIReader())
	images := privateImages{c: c, fresh: mgr.GetAPIReader(), namespace: opts.namespace()}
	if err := (&ServerReconciler{Client: c, APIReader: mgr.GetAPIReader(), Recorder: rec, Fleet: hosts, DefaultProxyImage: opts.DefaultProxyImage,
		KnownHostsNamespace: opts.namespace(), OneOffExitedGrace: opts.OneOffExitedGrace, OneOffRunningGrace: opts.OneOffRunningGrace,
		Workers: opts.ServerWorkers, Resync: opts.ServerResync}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&KeySecretReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&DeploymentReconciler{Client: c, Recorder: rec, Fleet: hosts, privateImages: images, Guests: opts.Guests, watched: cachedNamespaces(opts.WatchNamespaces, opts.namespace()),
		APIReader: mgr.GetAPIReader(), Namespace: opts.namespace(), ACME: opts.ACME, Workers: opts.DeploymentWorkers, Resync: opts.DeploymentResync}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&AccessoryReconciler{Client: c, Recorder: rec, Fleet: hosts, privateImages: images, Guests: opts.Guests, watched: cachedNamespaces(opts.WatchNamespaces, opts.namespace()), DefaultProxyImage: opts.DefaultProxyImage,
		APIReader: mgr.GetAPIReader(), Workers: opts.AccessoryWorkers, Resync: opts.AccessoryResync}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	return hosts, nil
}
