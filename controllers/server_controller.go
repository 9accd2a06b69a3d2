package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/conditions"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/internal/metrics"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/internal/remote"
)

// ServerFinalizer lets the controller remove the proxy from a host before its Server goes.
const ServerFinalizer = "kamal.operator.dev/server"

// DefaultProxyImage is the proxy built from images/kamal-proxy (`make proxy-image-build`); set
// --proxy-image to where you pushed it. Stock Caddy lacks its module (kamal_router).
const DefaultProxyImage = "kamal-proxy:caddy-2.11.9"

// Timings of the Server controller.
const (
	serverResync     = 5 * time.Minute
	hostOpTimeout    = 60 * time.Second
	proxyReadyWithin = 15 * time.Second
)

// ServerReconciler keeps each Server connected, with the proxy and the namespace networks.
type ServerReconciler struct {
	client.Client
	// APIReader reads from the API server, not the cache: the known-hosts store is read
	// there before it is written, and a Server being deleted is read past the cache (see
	// stillFinalizing).
	APIReader         client.Reader
	Recorder          events.EventRecorder
	Fleet             *fleet.Fleet
	DefaultProxyImage string
	// KnownHostsNamespace holds the known-hosts store (KnownHostsConfigMap) of the keys trusted
	// on first use: the controller's own namespace.
	KnownHostsNamespace string
	// OneOffExitedGrace and OneOffRunningGrace are how long after their creation exited and
	// running one-off containers of kubectl kamal are left on a host (oneoff.Default* when 0).
	OneOffExitedGrace, OneOffRunningGrace time.Duration
	// Workers reconcile Servers at once (DefaultServerWorkers when 0); Resync is the
	// safety-net period of a converged one (DefaultServerResync when 0).
	Workers int
	Resync  time.Duration

	wake chan event.GenericEvent
}

// +kubebuilder:rbac:groups=kamal.operator.dev,resources=servers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=kamal.operator.dev,resources=servers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=kamal.operator.dev,resources=servers/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets;configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

var serverStatus = statusOf[*kamalv1.Server]{
	conditions: func(s *kamalv1.Server) *[]metav1.Condition { return &s.Status.Conditions },
	status:     func(s *kamalv1.Server) any { return s.Status },
}

// serverScope is what the phases of one reconcile share.
type serverScope struct {
	srv  *kamalv1.Server
	host *fleet.Host
	// networksFailed: the host's namespace networks did not converge (an event says why).
	networksFailed bool
	// nextOneOff is when the next one-off container on the host expires (zero: none).
	nextOneOff time.Time
}

// Reconcile connects to a Server's host and converges its network and proxy.
func (r *ServerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	srv := &kamalv1.Server{}
	if err := r.Get(ctx, req.NamespacedName, srv); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone: a connection another controller opened while it was going is closed too.
			r.Fleet.Forget(req.Namespace + "/" + req.Name)
			metrics.ForgetServer(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !srv.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, srv) // server_delete.go
	}
	defer observeServer(srv)
	return reconcileWithStatus(ctx, r.Client, r.Recorder, srv, ServerFinalizer, serverStatus, func(ctx context.Context) (ctrl.Result, error) {
		srv.Status.ObservedGeneration = srv.Generation
		reportInert(r.Recorder, srv, &srv.Status.Conditions, srv.Generation, inertServerFields(&srv.Spec))
		return runPhases(ctx, &serverScope{srv: srv},
			func(ctx context.Context, s *serverScope) (*ctrl.Result, error) {
				forgetStaleFingerprint(s.srv)
				return r.checkHostOwner(ctx, s.srv) // by address, before any dial
			},
			func(ctx context.Context, s *serverScope) (*ctrl.Result, error) {
				host, res, err := r.connect(ctx, s.srv)
				if host == nil {
					return &res, err
				}
				s.host = host
				return nil, nil
			},
			func(ctx context.Context, s *serverScope) (*ctrl.Result, error) {
				return r.checkHostOwner(ctx, s.srv) // by host key, before anything runs
			},
			func(ctx context.Context, s *serverScope) (*ctrl.Result, error) {
				return r.reconcileDocker(ctx, s.srv, s.host)
			},
			func(ctx context.Context, s *serverScope) (*ctrl.Result, error) {
				return r.reconcileProxy(ctx, s.srv, s.host)
			},
			func(ctx context.Context, s *serverScope) (*ctrl.Result, error) {
				s.networksFailed = r.reconcileNetworks(ctx, s.srv, s.host)
				return nil, nil
			},
			func(ctx context.Context, s *serverScope) (*ctrl.Result, error) {
				s.nextOneOff = r.collectOneOffs(ctx, s.srv, s.host) // oneoff.go
				return nil, nil
			},
			func(_ context.Context, s *serverScope) (*ctrl.Result, error) {
				conditions.MarkReady(&s.srv.Status.Conditions, s.srv.Generation, kamalv1.ReasonReconciled, "connected, Docker and proxy ready")
				after := orDefault(r.Resync, serverResync)
				if s.networksFailed {
					after = networksRetry
				}
				if !s.nextOneOff.IsZero() {
					after = min(after, max(time.Until(s.nextOneOff), time.Second))
				}
				return done(ctrl.Result{RequeueAfter: after})
			},
		)
	})
}

// connect opens (or reuses) the SSH connection and records the host key.
func (r *ServerReconciler) connect(ctx context.Context, srv *kamalv1.Server) (*fleet.Host, ctrl.Result, error) {
	gen := srv.Generation
	if problem, err := checkRefs(ctx, r.Client, srv.Namespace, refsOf(srv)); err != nil || problem != nil {
		if problem != nil {
			r.markUnreachable(srv, problem.Reason, problem.Message)
			conditions.MarkStalled(&srv.Status.Conditions, gen, problem.Reason, problem.Message)
		}
		return nil, ctrl.Result{}, err
	}
	// Only this controller trusts a host key on first use, and only once the known-hosts store
	// keeps it: the store decides for a Server whose status lost the key.
	target, problem, err := targetFor(ctx, r.Client, srv, true)
	var fu *firstUse
	if err == nil && problem == nil && srv.Spec.HostKeyPolicy == kamalv1.HostKeyTrustOnFirstUse && len(srv.Spec.KnownHosts) == 0 {
		fu, problem, err = trustFromStore(ctx, knownHostsStore{c: r.Client, fresh: r.APIReader, namespace: r.KnownHostsNamespace}, srv, target)
	}
	if err != nil || problem != nil {
		if problem != nil {
			r.markUnreachable(srv, problem.Reason, problem.Message)
			if problem.Reason == kamalv1.ReasonJumpHostNotReady {
				// The jump Server's status, once its key is recorded, wakes this one.
				conditions.MarkNotReady(&srv.Status.Conditions, gen, problem.Reason, problem.Message)
				return nil, ctrl.Result{}, nil
			}
			conditions.MarkStalled(&srv.Status.Conditions, gen, problem.Reason, problem.Message)
			if problem.Reason == kamalv1.ReasonHostKeyMismatch {
				return nil, ctrl.Result{RequeueAfter: afterMismatch(srv)}, err
			}
		}
		return nil, ctrl.Result{}, err
	}
	key := serverKey(srv)
	if r.Fleet.Lost(key) && meta.IsStatusConditionTrue(srv.Status.Conditions, kamalv1.ConditionReachable) {
		// Say at once that the connection died; the redial, which may wait out a dial timeout
		// on a cut network, comes with the next reconcile.
		msg := fmt.Sprintf("connection to %s@%s lost (keepalives unanswered or closed by the host); reconnecting", target.User, srv.Spec.Address)
		r.markUnreachable(srv, kamalv1.ReasonUnreachable, msg)
		conditions.MarkNotReady(&srv.Status.Conditions, gen, kamalv1.ReasonUnreachable, msg)
		r.Recorder.Eventf(srv, nil, corev1.EventTypeWarning, kamalv1.ReasonUnreachable, "Connect", "%s", msg)
		return nil, ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	opCtx, cancel := context.WithTimeout(ctx, hostOpTimeout)
	defer cancel()
	if target.TrustOnFirstUse {
		// First use: learn the key before authenticating, keep it in the store (which refuses
		// to overwrite a key recorded meanwhile) and in status, then connect pinned to it.
		hk, err := fu.trustFirstKey(opCtx, target)
		if err != nil {
			if p := fu.mismatch(err, hk); p != nil {
				return r.refuseKey(srv, p)
			}
			msg := "trusting the host key on first use: " + err.Error()
			r.markUnreachable(srv, kamalv1.ReasonUnreachable, msg)
			conditions.MarkNotReady(&srv.Status.Conditions, gen, kamalv1.ReasonUnreachable, msg)
			return nil, ctrl.Result{RequeueAfter: 10 * time.Second}, nil
		}
		srv.Status.TrustedHostKey = remote.FormatKey(hk)
		r.Recorder.Eventf(srv, nil, corev1.EventTypeWarning, "HostKeyTrusted", "Connect",
			"trusted host key %s of %s on first use, kept in status.trustedHostKey and the known-hosts store %s; only it is accepted from now on",
			ssh.FingerprintSHA256(hk), fu.entry, fu.store.name())
		target.HostKeys, target.TrustOnFirstUse = []ssh.PublicKey{hk}, false
	}
	host, err := r.Fleet.Connect(opCtx, key, target, srv.Spec.Docker.SocketPath)
	if err != nil {
		var mismatch *remote.HostKeyMismatchError
		switch {
		case errors.As(err, &mismatch):
			return r.refuseKey(srv, &refProblem{Reason: kamalv1.ReasonHostKeyMismatch,
				Message: fmt.Sprintf("%s is not accepted: refusing to connect (%s)", mismatch.Presented(), fu.mismatchHint())})
		case remote.IsAuthFailure(err):
			msg := fmt.Sprintf("the host refused the key of Secret %q for user %q: %v", srv.Spec.SSHKeySecretRef.Name, target.User, err)
			r.markUnreachable(srv, kamalv1.ReasonAuthFailed, msg)
			conditions.MarkStalled(&srv.Status.Conditions, gen, kamalv1.ReasonAuthFailed, msg)
			return nil, ctrl.Result{}, nil
		}
		msg := err.Error()
		r.markUnreachable(srv, kamalv1.ReasonUnreachable, msg)
		conditions.MarkNotReady(&srv.Status.Conditions, gen, kamalv1.ReasonUnreachable, msg)
		return nil, ctrl.Result{RequeueAfter: max(r.Fleet.Pool.RetryIn(key), time.Second)}, nil
	}

	hk := host.Conn.HostKey()
	srv.Status.HostKeyFingerprint = ssh.FingerprintSHA256(hk)
	if fu != nil {
		// A key known from status only is kept in the store too; one known from the store only
		// (the Server was recreated) goes back into status.
		if err := fu.keep(opCtx, hk); err != nil {
			r.Fleet.Forget(key)
			if p := fu.mismatch(err, hk); p != nil {
				return r.refuseKey(srv, p)
			}
			msg := "keeping the host key in the known-hosts store: " + err.Error()
			r.markUnreachable(srv, kamalv1.ReasonPending, msg)
			conditions.MarkNotReady(&srv.Status.Conditions, gen, kamalv1.ReasonPending, msg)
			return nil, ctrl.Result{RequeueAfter: 10 * time.Second}, nil
		}
		if srv.Status.TrustedHostKey == "" {
			srv.Status.TrustedHostKey = remote.FormatKey(hk)
			r.Recorder.Eventf(srv, nil, corev1.EventTypeNormal, "HostKeyRestored", "Connect",
				"accepted only host key %s, the one the known-hosts store %s keeps for %s, and recorded it in status.trustedHostKey",
				srv.Status.HostKeyFingerprint, fu.store.name(), fu.entry)
		}
	}
	if !meta.IsStatusConditionTrue(srv.Status.Conditions, kamalv1.ConditionReachable) {
		r.Recorder.Eventf(srv, nil, corev1.EventTypeNormal, kamalv1.ReasonConnected, "Connect", "connected to %s@%s (host key %s)", target.User, srv.Spec.Address, srv.Status.HostKeyFingerprint)
		ctrl.LoggerFrom(ctx).Info("connected", "server", key, "hostKey", srv.Status.HostKeyFingerprint)
	}
	conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionReachable, metav1.ConditionTrue, kamalv1.ReasonConnected, "SSH session open, host key verified")
	return host, ctrl.Result{}, nil
}

// refuseKey stalls a Server whose host presented a key that is not accepted; nothing ran on
// the host. A trust-on-first-use Server looks again later (see afterMismatch).
func (r *ServerReconciler) refuseKey(srv *kamalv1.Server, p *refProblem) (*fleet.Host, ctrl.Result, error) {
	r.markUnreachable(srv, p.Reason, p.Message)
	conditions.MarkStalled(&srv.Status.Conditions, srv.Generation, p.Reason, p.Message)
	return nil, ctrl.Result{RequeueAfter: afterMismatch(srv)}, nil
}

// markUnreachable sets Reachable and the conditions that depend on it to False.
func (r *ServerReconciler) markUnreachable(srv *kamalv1.Server, reason, msg string) {
	gen := srv.Generation
	conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionReachable, metav1.ConditionFalse, reason, msg)
	conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionDockerReady, metav1.ConditionUnknown, reason, "host not reachable")
	conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyReady, metav1.ConditionUnknown, reason, "host not reachable")
}

// reconcileDocker reads the engine's facts; nil result means continue.
func (r *ServerReconciler) reconcileDocker(ctx context.Context, srv *kamalv1.Server, host *fleet.Host) (*ctrl.Result, error) {
	gen := srv.Generation
	opCtx, cancel := context.WithTimeout(ctx, hostOpTimeout)
	defer cancel()
	facts, err := docker.Facts(opCtx, host.Docker)
	if err != nil {
		msg := "Docker engine does not answer: " + err.Error()
		conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionDockerReady, metav1.ConditionFalse, kamalv1.ReasonDockerUnavailable, msg)
		conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyReady, metav1.ConditionUnknown, kamalv1.ReasonDockerUnavailable, "Docker not available")
		conditions.MarkNotReady(&srv.Status.Conditions, gen, kamalv1.ReasonDockerUnavailable, msg)
		return &ctrl.Result{RequeueAfter: 5 * time.Second}, nil
	}
	srv.Status.Facts = &facts
	how := "through the socket"
	if host.Dialer.ViaStdio() {
		how = "through docker system dial-stdio"
	}
	conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionDockerReady, metav1.ConditionTrue, kamalv1.ReasonDockerAvailable,
		fmt.Sprintf("Docker %s (API %s) %s", facts.DockerVersion, facts.APIVersion, how))
	return nil, nil
}

// reconcileProxy runs the proxy and checks its admin API; nil result means continue.
func (r *ServerReconciler) reconcileProxy(ctx context.Context, srv *kamalv1.Server, host *fleet.Host) (*ctrl.Result, error) {
	gen := srv.Generation
	if srv.Spec.Proxy.Enabled != nil && !*srv.Spec.Proxy.Enabled {
		opCtx, cancel := context.WithTimeout(ctx, hostOpTimeout)
		defer cancel()
		if err := proxy.Remove(opCtx, host.Docker); err != nil {
			return r.proxyFailed(srv, "removing the disabled proxy: "+err.Error())
		}
		srv.Status.ProxyImage = ""
		r.forgetProxyRollout(srv)
		conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyReady, metav1.ConditionTrue, kamalv1.ReasonProxyDisabled, "proxy disabled on this host")
		return nil, nil
	}
	// Creating, starting and, in turn across the fleet, safely replacing it: proxy_rollout.go.
	return r.convergeProxy(ctx, srv, host, proxy.SettingsFor(srv.Spec.Proxy, r.DefaultProxyImage))
}

// networksRetry is how soon a host whose networks did not converge is looked at again.
const networksRetry = 30 * time.Second

// reconcileNetworks moves the host's containers from the shared network onto their
// namespace's, attaches the proxy to every namespace network and removes those of namespaces
// with nothing left (convergeNetworks). What it did and what failed are events; the host stays
// Ready meanwhile (what runs keeps running), and it reports whether it failed. Events count
// containers and networks without naming them: they may be other namespaces'.
func (r *ServerReconciler) reconcileNetworks(ctx context.Context, srv *kamalv1.Server, host *fleet.Host) bool {
	opCtx, cancel := context.WithTimeout(ctx, hostOpTimeout)
	defer cancel()
	rep, err := convergeNetworks(opCtx, host)
	if n := len(rep.moved); n > 0 {
		r.Recorder.Eventf(srv, nil, corev1.EventTypeNormal, "NetworksMigrated", "Networks",
			"moved %d containers off the shared network %s onto their namespace's network, without restarting them", n, docker.LegacyNetwork)
	}
	if n := len(rep.removed); n > 0 {
		r.Recorder.Eventf(srv, nil, corev1.EventTypeNormal, "NetworkRemoved", "Networks", "removed %d namespace networks with nothing left on the host", n)
	}
	if err == nil {
		return false
	}
	reason := "NetworksFailed"
	if docker.IsPoolsExhausted(err) {
		reason = kamalv1.ReasonNetworkPoolsExhausted
	}
	r.Recorder.Eventf(srv, nil, corev1.EventTypeWarning, reason, "Networks", "namespace networks on the host: %v", err)
	return true
}

func proxyVerb(a proxy.Action) string {
	switch a {
	case proxy.ActionCreated:
		return "created"
	case proxy.ActionUpgraded:
		return "replaced"
	default:
		return "started"
	}
}

func (r *ServerReconciler) proxyFailed(srv *kamalv1.Server, msg string) (*ctrl.Result, error) {
	gen := srv.Generation
	conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyReady, metav1.ConditionFalse, kamalv1.ReasonProxyFailed, msg)
	conditions.MarkNotReady(&srv.Status.Conditions, gen, kamalv1.ReasonProxyFailed, msg)
	return &ctrl.Result{RequeueAfter: 10 * time.Second}, nil
}

func serverKey(srv *kamalv1.Server) string { return srv.Namespace + "/" + srv.Name }

// SetupWithManager registers the controller, its watches, and the host event feed: a proxy
// container that dies or disappears, or a lost connection, reconciles its Server at once.
func (r *ServerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.DefaultProxyImage == "" {
		r.DefaultProxyImage = DefaultProxyImage
	}
	r.wake = make(chan event.GenericEvent, 256)
	wakeKey := func(key string) {
		ns, name, _ := strings.Cut(key, "/")
		select {
		case r.wake <- event.GenericEvent{Object: &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}:
		default: // the queue is full of wake-ups already
		}
	}
	r.Fleet.OnTrouble(wakeKey)
	r.Fleet.OnEvent(func(e fleet.Event) {
		if isOneOffEvent(e) {
			if e.Message.Action == "start" || e.Message.Action == "die" {
				wakeKey(e.Key) // to collect it when its grace is up
			}
			return
		}
		if e.Message.Actor.Attributes["name"] != proxy.ContainerName {
			return
		}
		switch e.Message.Action {
		case "die", "stop", "destroy", "kill", "oom":
			wakeKey(e.Key)
		}
	})
	return ctrl.NewControllerManagedBy(mgr).
		For(&kamalv1.Server{}).
		Watches(&corev1.Secret{}, referrers(mgr.GetClient(), &kamalv1.ServerList{}, indexSecrets), builder.OnlyMetadata).
		Watches(&kamalv1.Server{}, referrers(mgr.GetClient(), &kamalv1.ServerList{}, indexServers)).
		Watches(&kamalv1.Server{}, sameHost(mgr.GetClient())).
		Watches(&kamalv1.Server{}, jumpServer()).
		Watches(&kamalv1.Deployment{}, terminatingServers(mgr.GetClient())).
		Watches(&kamalv1.Accessory{}, terminatingServers(mgr.GetClient())).
		WatchesRawSource(source.Channel(r.wake, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: orDefault(r.Workers, DefaultServerWorkers)}).
		Named("server").
		Complete(r)
}
