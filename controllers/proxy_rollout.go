package controllers

// Proxy rollouts: a new proxy image (the controller's --proxy-image, or a Server's
// spec.proxy.image) or new proxy settings replace kamal-proxy one host at a time across every
// Server of every namespace, in the order of namespace/name, and a replacement that fails halts
// the rest.
//
// Where the state lives: in each Server's status, so a restarted controller carries on.
//   - status.proxyHash: the settings hash of the proxy the host runs (the container's label).
//     With the hash its spec asks for, any reader can tell which Servers still need a
//     replacement.
//   - condition ProxyUpgrade=True (reason ProxyUpgrading): this host's proxy is being replaced.
//     It is written to the API server before the host is touched, so the others wait even
//     across a crash; the host itself resumes (proxy.Recover settles a half-done swap).
//   - status.proxyFailedHash (with ProxyUpgrade=False, ProxyUpgradeFailed): the replacement to
//     those settings failed here and the old proxy was restored. While the host's settings
//     still hash to it, every other Server is held; a change to other settings retries.
//
// On top, the reconciler keeps what it last wrote per Server in memory (the cache may lag behind
// its own writes) and a mutex around "may I go?" and "I go", so two workers never both go.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/conditions"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
)

// Timings of proxy replacements.
const (
	// proxyUpgradeWithin bounds how long a new proxy has to answer with its routes before the
	// old one comes back.
	proxyUpgradeWithin = 20 * time.Second
	// proxyUpgradeTimeout bounds a whole replacement, the image pull included.
	proxyUpgradeTimeout = pullTimeout + 5*time.Minute
	// Safety nets: a Server that waits or is held is woken when the rollout moves on.
	proxyWaitRequeue = 10 * time.Second
	proxyHeldRequeue = time.Minute
	proxyPullRetry   = 15 * time.Second
)

// proxyRecord is a Server's rollout state as the reconciler last wrote it.
type proxyRecord struct {
	Running    string // hash of the proxy the host runs
	FailedHash string // hash of settings whose replacement failed here
	FailMsg    string
	Upgrading  bool
	// Cond is the ProxyUpgrade condition as written.
	Cond *metav1.Condition
}

func proxyRecordOf(srv *kamalv1.Server) proxyRecord {
	rec := proxyRecord{Running: srv.Status.ProxyHash, FailedHash: srv.Status.ProxyFailedHash}
	if c := meta.FindStatusCondition(srv.Status.Conditions, kamalv1.ConditionProxyUpgrade); c != nil {
		rec.Cond = c.DeepCopy()
		rec.Upgrading = c.Status == metav1.ConditionTrue
		if c.Reason == kamalv1.ReasonProxyUpgradeFailed {
			rec.FailMsg = c.Message
		}
	}
	return rec
}

// applyTo puts the recorded state into srv's status, which the cache may have handed out
// before the reconciler's last write reached it.
func (rec proxyRecord) applyTo(srv *kamalv1.Server) {
	srv.Status.ProxyHash, srv.Status.ProxyFailedHash = rec.Running, rec.FailedHash
	meta.RemoveStatusCondition(&srv.Status.Conditions, kamalv1.ConditionProxyUpgrade)
	if rec.Cond != nil {
		srv.Status.Conditions = append(srv.Status.Conditions, *rec.Cond.DeepCopy())
	}
}

// proxyRollout is one reconciler's serialisation of proxy replacements.
type proxyRollout struct {
	mu    sync.Mutex
	known map[types.UID]proxyRecord
}

// rollouts holds each ServerReconciler's proxyRollout (a test may run several managers in
// turn in one process; each starts from the statuses).
var rollouts sync.Map

func (r *ServerReconciler) proxyRollout() *proxyRollout {
	v, _ := rollouts.LoadOrStore(r, &proxyRollout{known: map[types.UID]proxyRecord{}})
	return v.(*proxyRollout)
}

// note remembers what srv's status says now (it is about to be written).
func (p *proxyRollout) note(srv *kamalv1.Server) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.known[srv.UID] = proxyRecordOf(srv)
}

// recall is what the reconciler last wrote of the Server with uid.
func (p *proxyRollout) recall(uid types.UID) (proxyRecord, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rec, ok := p.known[uid]
	return rec, ok
}

func (p *proxyRollout) forget(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.known, uid)
}

// fleetProxy is one Server as the rollout gate sees it.
type fleetProxy struct {
	Key        string // namespace/name, the rollout order
	Desired    string // hash of the settings its spec asks for; "" when its proxy is off
	Running    string // hash of the proxy it runs; "" when not known yet
	Reachable  bool
	ProxyReady bool
	Upgrading  bool
	FailedHash string
	FailMsg    string
}

// halted: the replacement to the settings this Server still asks for failed on it.
func (f fleetProxy) halted() bool { return f.FailedHash != "" && f.FailedHash == f.Desired }

// pending: it serves with other settings than its spec asks for and will be replaced in turn.
func (f fleetProxy) pending() bool {
	return f.Desired != "" && f.Running != "" && f.Running != f.Desired && f.Reachable && f.ProxyReady && !f.halted()
}

// proxyVerdict is whether a Server may replace its proxy now.
type proxyVerdict struct {
	Go      bool
	Reason  string // ReasonProxyUpgradeHeld or ReasonProxyUpgradeWaiting when not
	Host    string // the Server it waits for or is held by
	Message string
}

// gateProxyUpgrade decides whether Server self may replace its proxy now: not while the rollout
// is halted on another Server, nor while another replaces its own, nor before the Servers
// ahead of it in namespace/name order that still need a replacement. self must be in fleet.
func gateProxyUpgrade(self string, fleet []fleetProxy) proxyVerdict {
	fleet = slices.Clone(fleet)
	slices.SortFunc(fleet, func(a, b fleetProxy) int { return strings.Compare(a.Key, b.Key) })
	var me *fleetProxy
	for i := range fleet {
		if fleet[i].Key == self {
			me = &fleet[i]
		}
	}
	for _, f := range fleet {
		if f.Key != self && f.halted() {
			msg := "held: the proxy rollout halted on " + f.Key + " (change the proxy image or settings to retry)"
			if f.FailMsg != "" {
				msg += ": " + f.FailMsg
			}
			return proxyVerdict{Reason: kamalv1.ReasonProxyUpgradeHeld, Host: f.Key, Message: msg}
		}
	}
	for _, f := range fleet {
		if f.Key != self && f.Upgrading {
			return proxyVerdict{Reason: kamalv1.ReasonProxyUpgradeWaiting, Host: f.Key,
				Message: "waiting: the proxy of " + f.Key + " is being replaced"}
		}
	}
	if me != nil && me.Upgrading {
		return proxyVerdict{Go: true} // its own replacement, resumed
	}
	for _, f := range fleet {
		if f.Key == self {
			break
		}
		if f.pending() {
			return proxyVerdict{Reason: kamalv1.ReasonProxyUpgradeWaiting, Host: f.Key,
				Message: "waiting: the proxy of " + f.Key + " is replaced first"}
		}
	}
	return proxyVerdict{Go: true}
}

// fleetProxies is every Server as the gate sees it, self as in hand, the others as the
// reconciler last wrote them or else as the cache has them.
func (r *ServerReconciler) fleetProxies(ctx context.Context, self *kamalv1.Server, known map[types.UID]proxyRecord) ([]fleetProxy, error) {
	var list kamalv1.ServerList
	if err := r.List(ctx, &list); err != nil {
		return nil, err
	}
	out := []fleetProxy{r.fleetProxyOf(self, proxyRecordOf(self))}
	for i := range list.Items {
		s := &list.Items[i]
		if s.UID == self.UID || !s.DeletionTimestamp.IsZero() {
			continue
		}
		rec, ok := known[s.UID]
		if !ok {
			rec = proxyRecordOf(s)
		}
		out = append(out, r.fleetProxyOf(s, rec))
	}
	return out, nil
}

func (r *ServerReconciler) fleetProxyOf(s *kamalv1.Server, rec proxyRecord) fleetProxy {
	f := fleetProxy{
		Key:        serverKey(s),
		Running:    rec.Running,
		Upgrading:  rec.Upgrading,
		FailedHash: rec.FailedHash,
		FailMsg:    rec.FailMsg,
		Reachable:  meta.IsStatusConditionTrue(s.Status.Conditions, kamalv1.ConditionReachable),
		ProxyReady: meta.IsStatusConditionTrue(s.Status.Conditions, kamalv1.ConditionProxyReady),
	}
	if s.Spec.Proxy.Enabled == nil || *s.Spec.Proxy.Enabled {
		f.Desired = proxy.SettingsFor(s.Spec.Proxy, r.DefaultProxyImage).Hash()
	}
	return f
}

// convergeProxy makes the host run the proxy with settings: it settles a replacement that was
// interrupted, creates or starts the proxy, and replaces one of other settings when the rollout
// gate lets it; nil result means continue.
func (r *ServerReconciler) convergeProxy(ctx context.Context, srv *kamalv1.Server, host *fleet.Host, settings proxy.Settings) (*ctrl.Result, error) {
	gen := srv.Generation
	want := settings.Hash()
	ro := r.proxyRollout()
	if rec, ok := ro.recall(srv.UID); ok {
		// Only this reconciler writes these fields: what it last wrote is the truth, even when
		// the cache has not caught up (a failure must not be retried for want of it).
		rec.applyTo(srv)
	}
	// Sized for a first pull of the proxy image on a slow link.
	opCtx, cancel := context.WithTimeout(ctx, pullTimeout+time.Minute)
	defer cancel()

	obs, err := proxy.Observe(opCtx, host.Docker)
	if err != nil {
		return r.proxyFailed(srv, err.Error())
	}
	if obs.Aside || obs.Failed {
		// The controller stopped in the middle of a replacement: finish it or put the old one back.
		recovered, err := proxy.Recover(opCtx, host.Docker, host.Proxy, settings, proxyUpgradeWithin)
		if err != nil {
			return r.proxyFailed(srv, "settling an interrupted proxy replacement: "+err.Error())
		}
		if recovered != proxy.RecoverNone {
			r.Recorder.Eventf(srv, nil, corev1.EventTypeNormal, "Proxy"+string(recovered), "Proxy",
				"an interrupted replacement of %s was settled: %s", proxy.ContainerName, map[proxy.Recovered]string{
					proxy.RecoverFinished: "the new proxy answers, the old one was removed",
					proxy.RecoverRestored: "the old proxy runs again",
				}[recovered])
		}
		if obs, err = proxy.Observe(opCtx, host.Docker); err != nil {
			return r.proxyFailed(srv, err.Error())
		}
	}
	if !obs.Exists || !obs.Running {
		// None yet, removed or stopped by hand: there is no ingress to lose.
		action, err := proxy.Ensure(opCtx, host.Docker, settings)
		if err != nil {
			return r.proxyFailed(srv, err.Error())
		}
		if action != proxy.ActionNone {
			r.Recorder.Eventf(srv, nil, corev1.EventTypeNormal, "Proxy"+string(action), "Proxy", "%s %s with image %s", proxyVerb(action), proxy.ContainerName, settings.Image)
		}
		if obs, err = proxy.Observe(opCtx, host.Docker); err != nil {
			return r.proxyFailed(srv, err.Error())
		}
	}
	var readyErr error
	if host.Dialer.ViaStdio() {
		// One look, no wait: where sshd refuses stream forwarding, waiting cannot help.
		if readyErr = host.Proxy.Ready(opCtx); readyErr != nil && !errors.Is(readyErr, proxy.ErrLegacyProxy) {
			// The admin socket is out of reach: nothing can be checked, so nothing is replaced.
			return r.proxyFailed(srv, "sshd refuses stream-local forwarding (AllowStreamLocalForwarding), so the proxy's admin socket "+proxy.AdminSocket+" is out of reach")
		}
		// The admin socket answers, so sshd forwards streams: the dial-stdio fallback was
		// taken while the engine was down. Go back to the engine's socket.
		host.Dialer.PreferSocket()
	} else {
		readyErr = proxyAnswers(opCtx, host)
	}
	if errors.Is(readyErr, proxy.ErrLegacyProxy) && obs.Hash != want {
		// An older kamal-proxy answers (its routes in Caddy's config): replaced in its turn.
		readyErr = nil
	}
	srv.Status.ProxyImage, srv.Status.ProxyHash = obs.Image, obs.Hash

	if obs.Hash == want {
		if readyErr != nil {
			return r.proxyFailed(srv, "proxy admin API does not answer: "+readyErr.Error())
		}
		if _, err := proxy.ApplyRestartPolicy(opCtx, host.Docker, obs, settings); err != nil {
			return r.proxyFailed(srv, "setting the proxy's restart policy: "+err.Error())
		}
		wasBusy := proxyRecordOf(srv)
		srv.Status.ProxyFailedHash = ""
		conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyUpgrade, metav1.ConditionFalse, kamalv1.ReasonProxyUpToDate, proxy.ContainerName+" runs the settings the spec asks for")
		conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyReady, metav1.ConditionTrue, kamalv1.ReasonProxyRunning, fmt.Sprintf("%s runs %s", proxy.ContainerName, settings.Image))
		ro.note(srv)
		if wasBusy.Upgrading || wasBusy.FailedHash != "" {
			r.wakeProxyWaiters(ctx, srv) // the rollout moves on, or the halt is lifted
		}
		return nil, nil
	}

	// The host runs other settings: replace its proxy, in turn.
	oldMsg := fmt.Sprintf("%s runs %s", proxy.ContainerName, obs.Image)
	if readyErr == nil {
		conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyReady, metav1.ConditionTrue, kamalv1.ReasonProxyRunning, oldMsg+" (not yet the settings the spec asks for)")
	} else {
		conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyReady, metav1.ConditionFalse, kamalv1.ReasonProxyFailed, "proxy admin API does not answer: "+readyErr.Error())
	}
	if srv.Status.ProxyFailedHash == want {
		// Failed here before: stay put until the image or settings change.
		msg := "the proxy upgrade failed on this host"
		if c := meta.FindStatusCondition(srv.Status.Conditions, kamalv1.ConditionProxyUpgrade); c != nil && c.Reason == kamalv1.ReasonProxyUpgradeFailed {
			msg = c.Message
		}
		conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyUpgrade, metav1.ConditionFalse, kamalv1.ReasonProxyUpgradeFailed, msg)
		conditions.MarkStalled(&srv.Status.Conditions, gen, kamalv1.ReasonProxyUpgradeFailed, msg)
		ro.note(srv)
		return &ctrl.Result{RequeueAfter: orDefault(r.Resync, serverResync)}, nil
	}
	srv.Status.ProxyFailedHash = ""

	before := srv.DeepCopy()
	ro.mu.Lock()
	all, err := r.fleetProxies(ctx, srv, ro.known)
	if err != nil {
		ro.mu.Unlock()
		return nil, err
	}
	verdict := gateProxyUpgrade(serverKey(srv), all)
	if readyErr != nil && verdict.Reason != kamalv1.ReasonProxyUpgradeHeld {
		// The old proxy does not answer: no ingress to lose by replacing it out of turn.
		verdict = proxyVerdict{Go: true}
	}
	if !verdict.Go {
		ro.mu.Unlock()
		conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyUpgrade, metav1.ConditionFalse, verdict.Reason, verdict.Message+"; "+oldMsg)
		ro.note(srv)
		if verdict.Reason == kamalv1.ReasonProxyUpgradeHeld {
			// Ready's transition records the event.
			conditions.MarkStalled(&srv.Status.Conditions, gen, verdict.Reason, verdict.Message)
			return &ctrl.Result{RequeueAfter: proxyHeldRequeue}, nil
		}
		conditions.MarkNotReady(&srv.Status.Conditions, gen, verdict.Reason, verdict.Message)
		return &ctrl.Result{RequeueAfter: proxyWaitRequeue}, nil
	}
	// Take the turn, and say so in the API before touching the host.
	upMsg := fmt.Sprintf("replacing %s: %s → %s", proxy.ContainerName, obs.Image, settings.Image)
	conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyUpgrade, metav1.ConditionTrue, kamalv1.ReasonProxyUpgrading, upMsg)
	conditions.MarkReconciling(&srv.Status.Conditions, gen, kamalv1.ReasonProxyUpgrading, upMsg)
	ro.known[srv.UID] = proxyRecordOf(srv)
	ro.mu.Unlock()
	if err := r.Status().Patch(ctx, srv.DeepCopy(), client.MergeFrom(before)); err != nil {
		ro.forget(srv.UID)
		return nil, fmt.Errorf("recording the proxy upgrade: %w", err)
	}

	upCtx, upCancel := context.WithTimeout(ctx, proxyUpgradeTimeout)
	defer upCancel()
	res, err := proxy.Replace(upCtx, host.Docker, host.Proxy, settings, proxyUpgradeWithin)
	var pullErr *proxy.PullError
	var upErr *proxy.UpgradeError
	switch {
	case err == nil:
		srv.Status.ProxyImage, srv.Status.ProxyHash = settings.Image, want
		conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyUpgrade, metav1.ConditionFalse, kamalv1.ReasonProxyUpToDate, proxy.ContainerName+" runs the settings the spec asks for")
		conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyReady, metav1.ConditionTrue, kamalv1.ReasonProxyRunning, fmt.Sprintf("%s runs %s", proxy.ContainerName, settings.Image))
		ro.note(srv)
		r.Recorder.Eventf(srv, nil, corev1.EventTypeNormal, "Proxy"+string(proxy.ActionUpgraded), "Proxy",
			"replaced %s (%s → %s); ports %d/%d closed for %s (%s)", proxy.ContainerName, res.OldImage, settings.Image, settings.HTTPPort, settings.HTTPSPort, res.Outage.Round(time.Millisecond), res.Steps)
		ctrl.LoggerFrom(ctx).Info("proxy replaced", "server", serverKey(srv), "image", settings.Image, "outage", res.Outage, "steps", res.Steps)
		r.wakeProxyWaiters(ctx, srv)
		return nil, nil
	case errors.As(err, &upErr):
		srv.Status.ProxyFailedHash = want
		msg := "proxy upgrade failed: " + upErr.Error() + "; the proxy rollout is halted"
		conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyUpgrade, metav1.ConditionFalse, kamalv1.ReasonProxyUpgradeFailed, msg)
		if !upErr.Restored {
			conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyReady, metav1.ConditionFalse, kamalv1.ReasonProxyFailed, msg)
		}
		conditions.MarkStalled(&srv.Status.Conditions, gen, kamalv1.ReasonProxyUpgradeFailed, msg) // and Ready's transition, the event
		ro.note(srv)
		ctrl.LoggerFrom(ctx).Info("proxy upgrade failed", "server", serverKey(srv), "image", settings.Image, "outage", upErr.Outage, "steps", upErr.Steps)
		r.wakeProxyWaiters(ctx, srv)
		return &ctrl.Result{RequeueAfter: orDefault(r.Resync, serverResync)}, nil
	case errors.As(err, &pullErr):
		// Nothing changed on the host; keep the turn and retry.
		msg := fmt.Sprintf("%s; pulling %s failed, retrying in %s: %v", upMsg, settings.Image, proxyPullRetry, pullErr.Err)
		conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyUpgrade, metav1.ConditionTrue, kamalv1.ReasonProxyUpgrading, msg)
		conditions.MarkNotReady(&srv.Status.Conditions, gen, kamalv1.ReasonProxyUpgrading, msg)
		ro.note(srv)
		return &ctrl.Result{RequeueAfter: proxyPullRetry}, nil
	default:
		// Cut off mid-way (the connection dropped): keep the turn; the next pass settles the host.
		return r.proxyFailed(srv, "replacing the proxy: "+err.Error())
	}
}

// proxyAnswers waits a little for the proxy's admin API: a new Caddy needs a moment to open
// its socket.
func proxyAnswers(ctx context.Context, host *fleet.Host) error {
	deadline := time.Now().Add(proxyReadyWithin)
	for {
		err := host.Proxy.Ready(ctx)
		if err == nil || errors.Is(err, proxy.ErrNoRouteModule) || errors.Is(err, proxy.ErrLegacyProxy) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wakeProxyWaiters reconciles the Servers that wait for the proxy rollout or are held by it.
func (r *ServerReconciler) wakeProxyWaiters(ctx context.Context, except *kamalv1.Server) {
	if r.wake == nil {
		return
	}
	var list kamalv1.ServerList
	if err := r.List(ctx, &list); err != nil {
		return
	}
	for i := range list.Items {
		s := &list.Items[i]
		c := meta.FindStatusCondition(s.Status.Conditions, kamalv1.ConditionProxyUpgrade)
		if s.UID == except.UID || c == nil || (c.Reason != kamalv1.ReasonProxyUpgradeWaiting && c.Reason != kamalv1.ReasonProxyUpgradeHeld) {
			continue
		}
		select {
		case r.wake <- event.GenericEvent{Object: &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name}}}:
		default:
		}
	}
}

// forgetProxyRollout clears the rollout state of a Server whose proxy is off.
func (r *ServerReconciler) forgetProxyRollout(srv *kamalv1.Server) {
	srv.Status.ProxyHash, srv.Status.ProxyFailedHash = "", ""
	meta.RemoveStatusCondition(&srv.Status.Conditions, kamalv1.ConditionProxyUpgrade)
	r.proxyRollout().note(srv)
}
