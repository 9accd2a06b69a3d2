package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	dockerclient "github.com/moby/moby/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/acme"
	"github.com/kamal-operator/kamal-operator/internal/conditions"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/internal/metrics"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/internal/release"
	"github.com/kamal-operator/kamal-operator/internal/tenancy"
)

// DeploymentFinalizer lets the controller remove a Deployment's containers, routes and images
// from every host before the object goes.
const DeploymentFinalizer = "kamal.operator.dev/deployment"

const (
	deploymentResync = 10 * time.Minute
	historyLimit     = 20
	// rolloutPoll is the safety net while deploys run: an ending deploy wakes its Deployment
	// (within batchPassEvery).
	rolloutPoll = 30 * time.Second
	// batchPassEvery gathers the wakes of a running batch into one pass (see newDelayedWakes).
	batchPassEvery = 5 * time.Second
	// stalledRetry is the slow retry of what retrying soon cannot fix, such as an image tag not
	// pushed yet: CI often pushes the image after the tag was applied.
	stalledRetry = time.Minute
	// hostReadTimeout bounds one read on a host (a container list, a route).
	hostReadTimeout = 30 * time.Second
	// hostWriteTimeout bounds removing a role from a host.
	hostWriteTimeout = 2 * time.Minute
)

var deploymentStatus = statusOf[*kamalv1.Deployment]{
	conditions: func(d *kamalv1.Deployment) *[]metav1.Condition { return &d.Status.Conditions },
	status:     func(d *kamalv1.Deployment) any { return d.Status },
}

// DeploymentReconciler rolls Deployments out to their Servers.
type DeploymentReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Fleet    *fleet.Fleet
	// Guests is what a Deployment placed on a Server of another namespace may ask.
	Guests tenancy.GuestPolicy
	// watched are the namespaces the manager's cache holds (nil: all).
	watched []string

	// APIReader reads what the cache does not hold fresh enough (the ACME account Secret).
	APIReader client.Reader
	// Namespace is the controller's own namespace (the ACME account Secret's).
	Namespace string
	// ACME are the settings of automatic certificates.
	ACME ACMEOptions
	// Workers reconcile Deployments at once (DefaultDeploymentWorkers when 0); Resync is the
	// safety-net period of a converged one (DefaultDeploymentResync when 0).
	Workers int
	Resync  time.Duration

	privateImages privateImages
	wake          chan event.GenericEvent
	ops           *targetOps
	certs         *certOrders
	releases      releaseOutcomes
	acmeMu        sync.Mutex
	acme          *acme.Client
}

// deploymentScope is what the phases of one reconcile share.
type deploymentScope struct {
	d        *kamalv1.Deployment
	placed   map[string][]string
	leaving  map[string][]string // role -> selected Servers being deleted: the role leaves them
	roles    map[string]*release.Role
	revision string
	pull     docker.Pull

	hosts       map[string]*fleet.Host
	unreachable map[string]string
	observed    map[string]map[string][]release.Observed
	// observedAt is when the hosts' containers were listed: a deploy that ended after it
	// left containers the list lacks.
	observedAt time.Time

	// What the rollout phase found, for the report.
	steps    map[string]opStep // "role/server" of a deploy under way -> its step
	failures map[string]string // "role/server" -> why its last deploy failed (retried)
	halted   string            // a health check failed: the rollout halts
	stalled  *refProblem       // retrying soon will not help (image not found)
	busy     bool              // deploys run or wait
	requeue  time.Duration
	batchAt  time.Time // when the last batch finished, when one finished in this reconcile

	// What the release phase found: releaseHold says why no host may switch yet (the release
	// runs or waits); releaseFailed that it failed for this revision, which halts the rollout.
	releaseHold, releaseFailed string
}

func (s *deploymentScope) requeueIn(d time.Duration) {
	if d > 0 && (s.requeue == 0 || d < s.requeue) {
		s.requeue = d
	}
}

func targetKey(role, server string) string { return role + "/" + server }

// +kubebuilder:rbac:groups=kamal.operator.dev,resources=deployments,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=kamal.operator.dev,resources=deployments/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=kamal.operator.dev,resources=deployments/finalizers,verbs=update

// Reconcile converges the hosts of a Deployment toward its spec.
func (r *DeploymentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	d := &kamalv1.Deployment{}
	if err := r.Get(ctx, req.NamespacedName, d); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !d.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, d)
	}
	return reconcileWithStatus(ctx, r.Client, r.Recorder, d, DeploymentFinalizer, deploymentStatus, func(ctx context.Context) (ctrl.Result, error) {
		d.Status.ObservedGeneration = d.Generation
		reportInert(r.Recorder, d, &d.Status.Conditions, d.Generation, inertDeploymentFields(&d.Spec))
		if d.Spec.Suspend {
			return r.reconcileSuspended(d)
		}
		s := &deploymentScope{d: d, steps: map[string]opStep{}, failures: map[string]string{}}
		return runPhases(ctx, s,
			r.checkInputs,
			r.checkClaims,
			r.waitForDependencies,
			r.observe,
			r.collectGarbage,
			r.release,
			r.rollout,
			r.certificates,
			r.report,
		)
	})
}

// reconcileSuspended stops deploys under way and says that nothing on the hosts changes.
func (r *DeploymentReconciler) reconcileSuspended(d *kamalv1.Deployment) (ctrl.Result, error) {
	r.ops.CancelAll(d.Namespace, d.Name)
	msg := "spec.suspend is true: nothing on the hosts is changed"
	if c := meta.FindStatusCondition(d.Status.Conditions, kamalv1.ConditionReady); c != nil && c.Reason != kamalv1.ReasonSuspended {
		msg += "; last state: " + c.Message
	}
	conditions.MarkUnknown(&d.Status.Conditions, d.Generation, kamalv1.ReasonSuspended, msg)
	return ctrl.Result{}, nil
}

// stall marks the Deployment Stalled and ends the reconcile.
func (s *deploymentScope) stall(p *refProblem) (*ctrl.Result, error) {
	conditions.MarkStalled(&s.d.Status.Conditions, s.d.Generation, p.Reason, p.Message)
	return done(ctrl.Result{})
}

// checkInputs checks every reference and resolves placement, env and credentials before any
// host is touched.
func (r *DeploymentReconciler) checkInputs(ctx context.Context, s *deploymentScope) (*ctrl.Result, error) {
	d := s.d
	problem, err := checkRefs(ctx, r.Client, d.Namespace, refsOf(d))
	if err != nil || problem != nil {
		if problem != nil {
			return s.stall(problem)
		}
		return nil, err
	}
	selectors := map[string]kamalv1.ServerSelector{}
	for name, role := range d.Spec.Roles {
		selectors[name] = role.Servers
	}
	if s.placed, problem, err = placeAll(ctx, r.Client, d.Namespace, selectors); err != nil || problem != nil {
		if problem != nil {
			problem.Message = "role " + problem.Message
			return s.stall(problem)
		}
		return nil, err
	}
	if problem := guestProblem(s.placed, func(roles []string) []tenancy.Violation { return r.Guests.CheckDeployment(&d.Spec, roles) }); problem != nil {
		return s.stall(problem)
	}
	if s.leaving, err = leavingServers(ctx, r.Client, d.Namespace, selectors); err != nil {
		return nil, err
	}
	if s.roles, s.revision, problem, err = r.resolveRoles(ctx, d); err != nil || problem != nil {
		if problem != nil {
			return s.stall(problem)
		}
		return nil, err
	}
	if s.pull, problem, err = r.privateImages.pullFor(ctx, r.Client, d.Namespace, d.Spec.Image, d.Spec.ImagePullSecrets); err != nil || problem != nil {
		if problem != nil {
			return s.stall(problem)
		}
		return nil, err
	}
	return nil, nil
}

// waitForDependencies holds a first deploy until every Accessory in dependsOn is Ready (the
// order `kamal setup` gives). Once the Deployment has served, an accessory restarting does not
// hold up the repair of a crashed app container.
func (r *DeploymentReconciler) waitForDependencies(ctx context.Context, s *deploymentScope) (*ctrl.Result, error) {
	d := s.d
	if d.Status.Image != "" {
		return nil, nil
	}
	for _, dep := range d.Spec.DependsOn {
		var a kamalv1.Accessory
		if err := r.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: dep.Name}, &a); err != nil {
			return nil, client.IgnoreNotFound(err)
		}
		if !conditions.IsReady(a.Status.Conditions, a.Generation) {
			conditions.MarkReconciling(&d.Status.Conditions, d.Generation, kamalv1.ReasonWaitingForDeps, "waiting for Accessory "+dep.Name+" to be Ready")
			return done(ctrl.Result{})
		}
	}
	return nil, nil
}

// observe connects to every Server of the namespace and lists the Deployment's containers.
// Every Server is looked at, not only the selected ones: one no longer selected may still run
// an old container, which garbage collection removes.
func (r *DeploymentReconciler) observe(ctx context.Context, s *deploymentScope) (*ctrl.Result, error) {
	guests, err := deploymentGuests(ctx, r.Client, s.d)
	if err != nil {
		return nil, err
	}
	if s.hosts, s.unreachable, err = connectServers(ctx, r.Client, r.Fleet, s.d.Namespace, guests...); err != nil {
		return nil, err
	}
	s.observed = map[string]map[string][]release.Observed{}
	s.observedAt = time.Now()
	obs, errs := readHosts(sortedKeys(s.hosts), func(server string) (map[string][]release.Observed, error) {
		rctx, cancel := context.WithTimeout(ctx, hostReadTimeout)
		defer cancel()
		return observeHost(rctx, s.hosts[server], s.d.Namespace, s.d.Name)
	})
	for server, err := range errs {
		s.unreachable[server] = err.Error()
		delete(s.hosts, server)
	}
	for server, o := range obs {
		s.observed[server] = o
	}
	return nil, nil
}

// collectGarbage removes what left the spec: containers (and routes) of roles no longer in it
// and of servers no longer selected.
func (r *DeploymentReconciler) collectGarbage(ctx context.Context, s *deploymentScope) (*ctrl.Result, error) {
	dp := &deployer{d: s.d, recorder: r.Recorder}
	for server, byRole := range s.observed {
		for role, cs := range byRole {
			if slices.Contains(s.placed[role], server) {
				continue
			}
			r.ops.Cancel(opKey{s.d.Namespace, s.d.Name, role, server}, "")
			if slices.Contains(s.leaving[role], server) {
				dp.event(corev1.EventTypeNormal, kamalv1.ReasonServerDeleting, "Server %s is being deleted: removing role %s from it", server, role)
			}
			if err := removeRole(ctx, dp, s.hosts[server], server, role, cs); err != nil {
				return nil, err
			}
			delete(byRole, role)
			if len(byRole) == 0 {
				// Its stopped release containers go too: they would keep the network there.
				if _, _, err := removeReleases(ctx, s.hosts[server], s.d.Namespace, s.d.Name, "", false); err != nil {
					return nil, fmt.Errorf("on %s: %w", server, err)
				}
				dp.leftHost(ctx, s.hosts[server], server)
			}
		}
	}
	return nil, nil
}

// leftHost removes the namespace's network from a host the Deployment has left, when nothing
// of the namespace is left there.
func (dp *deployer) leftHost(ctx context.Context, h *fleet.Host, server string) {
	if note := leaveNetwork(ctx, h, dp.d.Namespace, server); note != "" {
		dp.event(corev1.EventTypeNormal, "NetworkRemoved", "%s", note)
	}
}

// rollout starts the next batch of every role that needs one and returns at once: deploys run
// in the background and wake the Deployment when they end. Roles go the primary first (unless
// parallelRoles), each in batches of maxParallel servers. A failed health check halts it: later
// batches and roles keep their running version.
func (r *DeploymentReconciler) rollout(ctx context.Context, s *deploymentScope) (*ctrl.Result, error) {
	d := s.d
	if s.releaseHold != "" || s.releaseFailed != "" {
		return nil, nil // no host switches before the revision's release succeeded
	}
	if d.Status.FailedRevision == s.revision {
		s.halted = "rollout halted: the health check failed for this spec; change the spec (or spec.restartedAt, e.g. with kubectl kamal restart) to retry"
		if c := meta.FindStatusCondition(d.Status.Conditions, kamalv1.ConditionStalled); c != nil && c.Reason == kamalv1.ReasonHealthCheckFailed {
			s.halted = c.Message
		}
		return nil, nil
	}
	order := release.SortedRoles(d.Spec.Roles, d.Spec.PrimaryRole)
	groups := [][]string{order}
	if !d.Spec.Rollout.ParallelRoles && len(order) > 1 {
		groups = [][]string{order[:1], order[1:]}
	}
	for _, group := range groups {
		groupBusy := false
		for _, name := range group {
			busy, err := r.rolloutRole(ctx, s, s.roles[name])
			if err != nil {
				return nil, err
			}
			groupBusy = groupBusy || busy
			if s.halted != "" {
				d.Status.FailedRevision = s.revision
				metrics.RolloutHalted(d.Namespace, d.Name, s.revision, "health_check")
				ctrl.LoggerFrom(ctx).Info("rollout halted", "version", release.Version(d.Spec.Image), "reason", s.halted)
				r.Recorder.Eventf(d, nil, corev1.EventTypeWarning, kamalv1.ReasonHealthCheckFailed, "Deploy", "%s; rollout halted, the running version keeps serving", s.halted)
				return nil, nil
			}
		}
		if groupBusy {
			s.busy = true
			return nil, nil // the next group waits for this one
		}
	}
	return nil, nil
}

// rolloutRole converges what is done (routes, pruning), takes in the results of finished
// deploys, and starts the next batch when none runs. It reports whether the role is busy.
func (r *DeploymentReconciler) rolloutRole(ctx context.Context, s *deploymentScope, role *release.Role) (bool, error) {
	d := s.d
	hash := role.Hash(string(d.UID))
	// A deploy belongs to the container hash and to the revision: a health check path or port
	// changed under a running deploy restarts it, and a failure of one revision never halts
	// another whose containers hash the same.
	opID := hash + "@" + s.revision
	dp := &deployer{d: d, recorder: r.Recorder}
	var toPlan, pending []*target
	busy := false
	for _, server := range s.placed[role.Name] {
		h := s.hosts[server]
		if h == nil {
			continue // reported as unreachable; the others go on
		}
		key, tk := opKey{d.Namespace, d.Name, role.Name, server}, targetKey(role.Name, server)
		r.ops.Cancel(key, opID) // a deploy toward an older spec stops
		if st, ok := r.ops.Get(key); ok {
			switch {
			case st.Running:
				s.steps[tk], busy = st.Step, true
				continue
			case st.Hash == opID && st.Err != nil:
				if isHealthError(st.Err) {
					// Kept until the revision changes: a reconcile that reads an object from
					// before this halt was recorded halts again instead of retrying.
					s.halted = st.Err.Error()
					return false, nil
				}
				s.failures[tk] = st.Err.Error()
				wait := retryBackoff(st.Fails)
				if p := pullProblem(st.Err); p != nil {
					s.stalled, wait = p, stalledRetry
				}
				if left := wait - time.Since(st.Finished); left > 0 {
					s.requeueIn(left)
					busy = true
					continue
				}
			case st.Err == nil && st.Finished.After(s.batchAt):
				s.batchAt = st.Finished
			}
			if st.Finished.After(s.observedAt) {
				// It ended after this reconcile listed the host: planning from that list would
				// deploy the target again. Its end woke the Deployment; the next pass sees it.
				busy = true
				s.requeueIn(time.Second)
				continue
			}
			r.ops.Forget(key)
		}
		toPlan = append(toPlan, &target{server: server, host: h, role: role, hash: hash})
	}
	for _, t := range readRoutes(ctx, s, role, toPlan) {
		t.plan = release.PlanTarget(hash, role.ContainerName(hash, false), s.observed[t.server][role.Name], role.Proxy != nil, t.routed, int(d.Spec.RetainContainers))
		if t.plan.Converged {
			wctx, cancel := context.WithTimeout(ctx, hostWriteTimeout)
			err := dp.converged(wctx, t)
			cancel()
			if err != nil {
				return false, err
			}
			continue
		}
		pending = append(pending, t)
	}
	if !s.batchAt.IsZero() {
		d.Status.LastBatchAt = &metav1.Time{Time: s.batchAt}
	}
	if busy || len(pending) == 0 {
		return busy, nil
	}
	if w := d.Spec.Rollout.Wait; w != nil && d.Status.LastBatchAt != nil {
		if left := w.Duration - time.Since(d.Status.LastBatchAt.Time); left > 0 {
			s.requeueIn(left)
			return true, nil
		}
	}
	count, percent := maxParallel(d.Spec.Rollout.MaxParallel)
	size := release.BatchSize(len(s.placed[role.Name]), count, percent)
	observeDeploys(s, min(size, len(pending)))
	for _, t := range pending[:min(size, len(pending))] {
		r.startDeploy(s, t, opID)
		s.steps[targetKey(role.Name, t.server)] = stepPulling
	}
	return true, nil
}

// readRoutes reads the role's route on the hosts of ts (32 at a time, see readHosts) into each
// target, and returns the targets whose route it read; the others' hosts are reported
// unreachable. A role without the proxy has no route to read.
func readRoutes(ctx context.Context, s *deploymentScope, role *release.Role, ts []*target) []*target {
	if role.Proxy == nil {
		return ts
	}
	byServer := make(map[string]*target, len(ts))
	for _, t := range ts {
		byServer[t.server] = t
	}
	_, errs := readHosts(sortedKeys(byServer), func(server string) (struct{}, error) {
		t := byServer[server] // each read writes only its own target
		rctx, cancel := context.WithTimeout(ctx, hostReadTimeout)
		defer cancel()
		var err error
		t.route, t.legacy, t.upstream, err = readRoute(rctx, t.host, role)
		t.routed, _, _ = strings.Cut(t.upstream, ":")
		return struct{}{}, err
	})
	read := ts[:0:0]
	for _, t := range ts {
		if err := errs[t.server]; err != nil {
			s.unreachable[t.server] = "reading the route: " + err.Error()
			continue
		}
		read = append(read, t)
	}
	return read
}

// startDeploy runs one target's deploy in the background. The deploy gets its own copy of the
// Deployment: status writes of later reconciles never touch what it reads.
func (r *DeploymentReconciler) startDeploy(s *deploymentScope, t *target, opID string) {
	d := s.d.DeepCopy()
	dp := &deployer{d: d, pull: s.pull, recorder: r.Recorder}
	key := opKey{d.Namespace, d.Name, t.role.Name, t.server}
	log := ctrl.Log.WithName("deploy").WithValues("deployment", d.Namespace+"/"+d.Name, "role", t.role.Name, "server", t.server,
		"container", t.role.ContainerName(t.hash, false), "version", release.Version(d.Spec.Image))
	r.ops.Start(key, opID, func(ctx context.Context, step func(opStep)) error {
		log.Info("deploy started")
		ro := d.Spec.Rollout
		ctx, cancel := context.WithTimeout(ctx, pullTimeout+ro.DeployTimeout.Duration+ro.DrainTimeout.Duration+ro.StopTimeout.Duration+time.Minute)
		defer cancel()
		dp.step = step
		err := dp.deploy(ctx, t)
		if isHealthError(err) {
			metrics.HealthCheckFailed(d.Namespace, d.Name)
		}
		if err != nil && !isHealthError(err) && ctx.Err() == nil {
			dp.event(corev1.EventTypeWarning, "DeployFailed", "%s", err.Error())
		}
		if err == nil {
			log.Info("deploy done")
		}
		return err
	})
}

// maxParallel reads rollout.maxParallel: a count (default 1) or a percentage.
func maxParallel(mp *intstr.IntOrString) (count, percent int) {
	if mp == nil {
		return 1, 0
	}
	if s := mp.String(); strings.HasSuffix(s, "%") {
		fmt.Sscanf(s, "%d%%", &percent)
		return 0, percent
	}
	return mp.IntValue(), 0
}

// report fills status from what runs and what the rollout phase found, and sets the
// conditions.
func (r *DeploymentReconciler) report(ctx context.Context, s *deploymentScope) (*ctrl.Result, error) {
	d := s.d
	gen := d.Generation
	ready, total := fillTargets(s)
	progress := fmt.Sprintf("%d of %d targets on %s", ready, total, release.Version(d.Spec.Image))
	var homeless []string // roles whose only Servers are being deleted (placeAll stalls on none at all)
	for _, role := range sortedKeys(d.Spec.Roles) {
		if len(s.placed[role]) == 0 {
			homeless = append(homeless, role)
		}
	}
	switch {
	case len(homeless) > 0:
		conditions.MarkNotReady(&d.Status.Conditions, gen, kamalv1.ReasonServerDeleting,
			fmt.Sprintf("role %s has no Server to run on: %s; %s", strings.Join(homeless, ", "), leavingMessage(s.leaving), progress))
		return done(ctrl.Result{RequeueAfter: releaseRecheck})
	case s.halted != "":
		conditions.MarkStalled(&d.Status.Conditions, gen, kamalv1.ReasonHealthCheckFailed, s.halted)
		return done(ctrl.Result{})
	case s.releaseFailed != "":
		conditions.MarkStalled(&d.Status.Conditions, gen, kamalv1.ReasonReleaseFailed, s.releaseFailed)
		return done(ctrl.Result{})
	case s.stalled != nil:
		conditions.MarkStalled(&d.Status.Conditions, gen, s.stalled.Reason, s.stalled.Message+" (retried every "+stalledRetry.String()+")")
		return done(ctrl.Result{RequeueAfter: stalledRetry})
	case len(s.unreachable) > 0 && ready < total:
		conditions.MarkNotReady(&d.Status.Conditions, gen, kamalv1.ReasonUnreachable, "unreachable: "+joinSorted(s.unreachable)+"; "+progress)
		return done(ctrl.Result{RequeueAfter: max(min(s.requeue, rolloutPoll), time.Second)})
	case len(s.failures) > 0 && ready < total:
		conditions.MarkNotReady(&d.Status.Conditions, gen, kamalv1.ReasonRollingOut, progress+"; retrying: "+joinSorted(s.failures))
		return done(ctrl.Result{RequeueAfter: max(min(s.requeue, rolloutPoll), time.Second)})
	case s.busy || ready < total:
		msg := "rolling out " + release.Version(d.Spec.Image) + ": " + progress
		if s.releaseHold != "" {
			msg += "; " + s.releaseHold
		}
		if len(s.steps) > 0 {
			var parts []string
			for _, k := range sortedKeys(s.steps) {
				parts = append(parts, k+" "+string(s.steps[k]))
			}
			msg += "; " + joinFirst(parts, ", ")
		}
		reason := kamalv1.ReasonRollingOut
		if s.releaseHold != "" {
			reason = kamalv1.ReasonReleasing
		}
		conditions.MarkReconciling(&d.Status.Conditions, gen, reason, msg)
		next := rolloutPoll
		if s.requeue > 0 {
			next = min(s.requeue, next)
		}
		return done(ctrl.Result{RequeueAfter: next})
	}
	d.Status.FailedRevision = ""
	metrics.RolloutReady(d.Namespace, d.Name, s.revision)
	if d.Status.Image != d.Spec.Image {
		r.Recorder.Eventf(d, nil, corev1.EventTypeNormal, "RolloutComplete", "Deploy", "%s serves on %d targets", d.Spec.Image, total)
		ctrl.LoggerFrom(ctx).Info("rollout complete", "version", release.Version(d.Spec.Image), "targets", total)
		d.Status.History = append([]kamalv1.DeployedImage{{Image: d.Spec.Image, Version: release.Version(d.Spec.Image), DeployedAt: metav1.Now()}}, d.Status.History...)
		if len(d.Status.History) > historyLimit {
			d.Status.History = d.Status.History[:historyLimit]
		}
	}
	d.Status.Image, d.Status.Version = d.Spec.Image, release.Version(d.Spec.Image)
	conditions.MarkReady(&d.Status.Conditions, gen, kamalv1.ReasonReconciled, fmt.Sprintf("%s serves on %d targets", release.Version(d.Spec.Image), total))
	next := orDefault(r.Resync, deploymentResync)
	if s.requeue > 0 {
		next = min(s.requeue, next) // a certificate's renewal or retry
	}
	return done(ctrl.Result{RequeueAfter: next})
}

// fillTargets writes status.targets (bounded: see boundTargets), the counts and the guest
// namespaces from what runs; it returns ready and total.
func fillTargets(s *deploymentScope) (int32, int32) {
	d := s.d
	var targets []kamalv1.TargetStatus
	var ready, total int32
	order := release.SortedRoles(d.Spec.Roles, d.Spec.PrimaryRole)
	for _, name := range order {
		hash := s.roles[name].Hash(string(d.UID))
		for _, server := range s.placed[name] {
			total++
			tk := targetKey(name, server)
			ts := kamalv1.TargetStatus{Server: server, Role: name, State: kamalv1.TargetPending}
			if step, ok := s.steps[tk]; ok {
				ts.State, ts.Message = step.state(), "deploying: "+string(step)
			}
			if msg, ok := s.failures[tk]; ok {
				ts.State, ts.Message = kamalv1.TargetFailed, msg
			}
			if msg, ok := s.unreachable[server]; ok {
				ts.State, ts.Message = kamalv1.TargetUnreachable, msg
			}
			var serving *release.Observed
			for i, o := range s.observed[server][name] {
				if o.Running && (serving == nil || o.Hash == hash) {
					serving = &s.observed[server][name][i]
				}
			}
			if serving != nil {
				ts.Version, ts.Container = serving.Version, serving.Name
				_, deploying := s.steps[tk]
				if serving.Hash == hash && !deploying && ts.State != kamalv1.TargetUnreachable {
					ts.State, ts.Message = kamalv1.TargetRunning, ""
					ready++
				}
			}
			targets = append(targets, ts)
		}
	}
	observeTargets(d, targets) // every target, before the list is bounded
	d.Status.Targets, d.Status.TargetsNotListed, d.Status.Summary = boundTargets(targets, order)
	d.Status.GuestNamespaces = guestNamespacesOf(s.placed, d.Status.GuestNamespaces, s.unreachable)
	d.Status.ReadyTargets, d.Status.TotalTargets = ready, total
	d.Status.ServersReady = fmt.Sprintf("%d/%d", ready, total)
	return ready, total
}

// resolveRoles builds each role's resolved container spec and hash. The revision identifies
// them together with everything that decides whether a new container passes its health check
// (proxy port, path, interval and timeout; deploy timeout, readiness delay), so a rollout that
// failed its check is retried when any of them changes.
func (r *DeploymentReconciler) resolveRoles(ctx context.Context, d *kamalv1.Deployment) (map[string]*release.Role, string, *refProblem, error) {
	env := newEnvResolver(r.Client, d.Namespace)
	roles := map[string]*release.Role{}
	sum := sha256.New()
	for _, name := range release.SortedRoles(d.Spec.Roles, d.Spec.PrimaryRole) {
		spec := d.Spec.Roles[name]
		var e orderedEnv
		if p, err := env.resolve(ctx, &e, "spec", d.Spec.Env, d.Spec.EnvFrom); err != nil || p != nil {
			return nil, "", p, err
		}
		if p, err := env.resolve(ctx, &e, "spec.roles["+name+"]", spec.Env, spec.EnvFrom); err != nil || p != nil {
			return nil, "", p, err
		}
		labels := map[string]string{}
		for k, v := range d.Spec.Labels {
			labels[k] = v
		}
		for k, v := range spec.Labels {
			labels[k] = v
		}
		role := &release.Role{
			Namespace: d.Namespace, UID: string(d.UID), Deployment: d.Name, Name: name, Image: d.Spec.Image,
			Cmd: spec.Cmd, Env: e.list(), Labels: labels, Volumes: d.Spec.Volumes,
			Options: d.Spec.Options, Logging: d.Spec.Logging,
			Proxy:   release.EffectiveProxy(&d.Spec, name),
			Restart: d.Annotations[kamalv1.AnnotationRestartedAt],
		}
		if t := d.Spec.RestartedAt; t != nil {
			// UTC: the stored time decodes in the controller's local zone.
			role.RestartedAt = t.UTC().Format(time.RFC3339)
		}
		if spec.Options != nil {
			role.Options = spec.Options
		}
		if spec.Logging != nil {
			role.Logging = spec.Logging
		}
		if p := role.Proxy; p != nil {
			if err := checkHealthPath(p.HealthPath); err != nil {
				return nil, "", &refProblem{Reason: kamalv1.ReasonInvalidSpec, Message: fmt.Sprintf("role %s: %v", name, err)}, nil
			}
		}
		roles[name] = role
		proxy, _ := json.Marshal(role.Proxy)
		sum.Write([]byte(name + "=" + role.Hash(string(d.UID)) + ";" + string(proxy) + ";"))
	}
	ro := d.Spec.Rollout
	fmt.Fprintf(sum, "deployTimeout=%s;readinessDelay=%s", ro.DeployTimeout.Duration, ro.ReadinessDelay.Duration)
	return roles, hex.EncodeToString(sum.Sum(nil))[:16], nil, nil
}

// checkHealthPath refuses a health check path that is no valid URL path. The API refuses
// them too; this guards objects stored before it did.
func checkHealthPath(path string) error {
	u, err := url.ParseRequestURI(path)
	if err != nil || u.Path == "" || u.Host != "" || strings.ContainsAny(path, "{} \t") {
		return fmt.Errorf("health check path %q is not a valid URL path", path)
	}
	return nil
}

// removeRole takes a role off a host: its route first (so no request reaches a stopping
// container), then its containers and their images.
func removeRole(ctx context.Context, dp *deployer, h *fleet.Host, server, role string, cs []release.Observed) error {
	ctx, cancel := context.WithTimeout(ctx, hostWriteTimeout)
	defer cancel()
	for _, id := range []string{release.RouteID(dp.d.Namespace, dp.d.Name, role), release.LegacyRouteID(dp.d.Namespace, dp.d.Name, role)} {
		if _, err := h.Proxy.DeleteRoute(ctx, id, 0); err != nil && !isAdminUnreachable(err) {
			return fmt.Errorf("removing route %s on %s: %w", id, server, err)
		}
	}
	stop := int(dp.d.Spec.Rollout.StopTimeout.Duration.Seconds())
	for _, c := range cs {
		if c.Running {
			_, _ = h.Docker.ContainerStop(ctx, c.ID, dockerclient.ContainerStopOptions{Timeout: &stop})
		}
		if _, err := h.Docker.ContainerRemove(ctx, c.ID, dockerclient.ContainerRemoveOptions{Force: true}); err != nil && !docker.IsNotFound(err) {
			return fmt.Errorf("removing %s on %s: %w", c.Name, server, err)
		}
		_, _ = h.Docker.ImageRemove(ctx, c.Image, dockerclient.ImageRemoveOptions{})
	}
	dp.event(corev1.EventTypeNormal, "Removed", "removed role %s from %s (%d containers)", role, server, len(cs))
	return nil
}

// isAdminUnreachable: a host without a proxy has no routes to remove.
func isAdminUnreachable(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "open failed") || strings.Contains(err.Error(), "connect failed"))
}

// reconcileDelete removes the Deployment from every host, then lets it go. A Server that is
// gone or stalled does not block deletion.
func (r *DeploymentReconciler) reconcileDelete(ctx context.Context, d *kamalv1.Deployment) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(d, DeploymentFinalizer) {
		return ctrl.Result{}, nil
	}
	r.ops.CancelAll(d.Namespace, d.Name)
	r.certs.forget(types.NamespacedName{Namespace: d.Namespace, Name: d.Name})
	if n := r.ops.Running(d.Namespace, d.Name, ""); n > 0 {
		return ctrl.Result{RequeueAfter: time.Second}, nil // let cancelled deploys end first
	}
	guests, err := deploymentGuests(ctx, r.Client, d)
	if err != nil {
		return ctrl.Result{}, err
	}
	hosts, unreachable, err := connectServers(ctx, r.Client, r.Fleet, d.Namespace, guests...)
	if err != nil {
		return ctrl.Result{}, err
	}
	dp := &deployer{d: d, recorder: r.Recorder}
	for server, h := range hosts {
		obs, err := observeHost(ctx, h, d.Namespace, d.Name)
		if err != nil {
			unreachable[server] = err.Error()
			continue
		}
		for _, role := range sortedKeys(obs) {
			if err := removeRole(ctx, dp, h, server, role, obs[role]); err != nil {
				return ctrl.Result{}, err
			}
		}
		released, _, err := removeReleases(ctx, h, d.Namespace, d.Name, "", true)
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("on %s: %w", server, err)
		}
		if len(obs) > 0 || released > 0 {
			dp.leftHost(ctx, h, server)
		}
		cctx, cancel := context.WithTimeout(ctx, hostReadTimeout)
		err = h.Proxy.DeleteCertificate(cctx, certificateID(d.Namespace, d.Name))
		cancel()
		if err != nil && !isAdminUnreachable(err) && !errors.Is(err, proxy.ErrNoCertificateTable) {
			return ctrl.Result{}, fmt.Errorf("removing the certificate on %s: %w", server, err)
		}
	}
	if len(unreachable) > 0 {
		var srv kamalv1.Server
		for name := range unreachable {
			if err := r.Get(ctx, serverKeyOf(d.Namespace, name), &srv); err == nil && !isStalled(srv.Status.Conditions) {
				r.Recorder.Eventf(d, nil, corev1.EventTypeWarning, "CleanupPending", "Delete", "waiting to remove containers from unreachable %s", joinSorted(unreachable))
				return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
			} else if err != nil && !apierrors.IsNotFound(err) {
				return ctrl.Result{}, err
			}
		}
	}
	metrics.ForgetDeployment(d.Namespace, d.Name)
	return ctrl.Result{}, removeFinalizer(ctx, r.Client, d, DeploymentFinalizer)
}

func isStalled(conds []metav1.Condition) bool {
	return meta.IsStatusConditionTrue(conds, kamalv1.ConditionStalled)
}

// deploymentChanged passes what a user (or GitOps) changes on a Deployment, and not the
// controller's own status writes: during a rollout each pass rewrites the progress message,
// and waking on that ran passes over every host back to back instead of when a deploy ends.
var deploymentChanged = predicate.Or[client.Object](
	predicate.GenerationChangedPredicate{},
	predicate.AnnotationChangedPredicate{}, // the restartedAt annotation, kubectl kamal's
	predicate.LabelChangedPredicate{},
	predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return !e.ObjectNew.GetDeletionTimestamp().Equal(e.ObjectOld.GetDeletionTimestamp()) ||
			!slices.Equal(e.ObjectNew.GetFinalizers(), e.ObjectOld.GetFinalizers())
	}},
)

// SetupWithManager registers the controller, its watches and the docker events of its
// containers: one that dies, stops or disappears reconciles its Deployment within seconds.
func (r *DeploymentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.wake = make(chan event.GenericEvent, 1024)
	wake := func(ns, name string) {
		select {
		case r.wake <- event.GenericEvent{Object: &kamalv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}:
		default:
		}
	}
	// While a batch runs, the end of one of its deploys (or a stop of an old container) need
	// not pass over every host at once: the next batch waits for the whole batch. Such wakes
	// are gathered into one pass every batchPassEvery; the batch's last end, a failure and
	// anything outside a rollout wake at once.
	later := newDelayedWakes(batchPassEvery, wake)
	r.ops = newTargetOps(ctrl.Log.WithName("deploy"), func(key opKey, err error) {
		if err != nil || key.Role == "" || r.ops.Running(key.Namespace, key.Deployment, key.Role) == 0 {
			wake(key.Namespace, key.Deployment)
			return
		}
		later.add(key.Namespace, key.Deployment)
	})
	r.certs = newCertOrders(wake)
	// Deploys end with the manager: a stopped controller leaves nothing running behind.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		r.ops.Close()
		r.certs.close()
		return nil
	})); err != nil {
		return err
	}
	r.Fleet.OnEvent(func(e fleet.Event) {
		attrs := e.Message.Actor.Attributes
		name, ns := attrs[kamalv1.LabelDeployment], attrs[kamalv1.LabelNamespace]
		if name == "" || ns == "" {
			return
		}
		switch e.Message.Action {
		case "die", "stop", "destroy", "kill", "oom", "rename", "health_status: unhealthy":
			if r.ops.Running(ns, name, "") > 0 {
				later.add(ns, name) // most likely a rollout stopping an old container
				return
			}
			wake(ns, name)
		}
	})
	c := mgr.GetClient()
	return ctrl.NewControllerManagedBy(mgr).
		For(&kamalv1.Deployment{}, builder.WithPredicates(deploymentChanged)).
		Watches(&kamalv1.Deployment{}, claimRivals(c)).
		Watches(&corev1.Secret{}, referrers(c, &kamalv1.DeploymentList{}, indexSecrets), builder.OnlyMetadata).
		Watches(&corev1.ConfigMap{}, referrers(c, &kamalv1.DeploymentList{}, indexConfigMaps), builder.OnlyMetadata).
		Watches(&kamalv1.Accessory{}, referrers(c, &kamalv1.DeploymentList{}, indexAccessories)).
		Watches(&kamalv1.Server{}, serverUsers(c, &kamalv1.DeploymentList{}), builder.WithPredicates(serverChanged)).
		Watches(&corev1.Namespace{}, namespaceGuests(c, &kamalv1.DeploymentList{}, r.watched), builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Channel(r.wake, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: orDefault(r.Workers, DefaultDeploymentWorkers)}).
		Named("deployment").
		Complete(r)
}
