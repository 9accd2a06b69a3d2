package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	dockerclient "github.com/moby/moby/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/conditions"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/internal/release"
)

// DeploymentFinalizer lets the controller remove a Deployment's containers, routes and images
// from every host before the object goes.
const DeploymentFinalizer = "kamal.operator.dev/deployment"

const (
	deploymentResync = 10 * time.Minute
	historyLimit     = 20
)

// DeploymentReconciler rolls Deployments out to their Servers.
type DeploymentReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Fleet    *fleet.Fleet

	wake chan event.GenericEvent
	// lastBatch is when the last batch of a role finished, so rollout.wait holds even when
	// events wake the Deployment early. A restarted controller starts the next batch at once.
	lastBatch sync.Map // "<namespace>/<deployment>/<role>" -> time.Time
}

// +kubebuilder:rbac:groups=kamal.operator.dev,resources=deployments,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=kamal.operator.dev,resources=deployments/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=kamal.operator.dev,resources=deployments/finalizers,verbs=update

// Reconcile converges the hosts of a Deployment toward its spec.
func (r *DeploymentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	d := &kamalv1.Deployment{}
	if err := r.Get(ctx, req.NamespacedName, d); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !d.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, d)
	}
	if d.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	if !controllerutil.ContainsFinalizer(d, DeploymentFinalizer) {
		controllerutil.AddFinalizer(d, DeploymentFinalizer)
		if err := r.Update(ctx, d); err != nil {
			return ctrl.Result{}, err
		}
	}
	patcher := newStatusPatcher(r.Client, d)
	before := readyReason(d.Status.Conditions)
	defer func() {
		emitReadyTransition(r.Recorder, d, before, d.Status.Conditions)
		if err := patcher.patch(ctx, d, func(o client.Object) any { return o.(*kamalv1.Deployment).Status }); err != nil && retErr == nil {
			retErr = err
		}
	}()
	gen := d.Generation
	d.Status.ObservedGeneration = gen
	stall := func(p *refProblem) (ctrl.Result, error) {
		conditions.MarkStalled(&d.Status.Conditions, gen, p.Reason, p.Message)
		return ctrl.Result{}, nil
	}

	problem, err := checkRefs(ctx, r.Client, d.Namespace, refsOf(d))
	if err != nil || problem != nil {
		if problem != nil {
			return stall(problem)
		}
		return ctrl.Result{}, err
	}
	selectors := map[string]kamalv1.ServerSelector{}
	for name, role := range d.Spec.Roles {
		selectors[name] = role.Servers
	}
	placed, problem, err := placeAll(ctx, r.Client, d.Namespace, selectors)
	if err != nil || problem != nil {
		if problem != nil {
			problem.Message = "role " + problem.Message
			return stall(problem)
		}
		return ctrl.Result{}, err
	}
	if waiting, err := r.waitingFor(ctx, d); err != nil || waiting != "" {
		if waiting != "" {
			conditions.MarkReconciling(&d.Status.Conditions, gen, kamalv1.ReasonWaitingForDeps, "waiting for Accessory "+waiting+" to be Ready")
		}
		return ctrl.Result{}, err
	}
	roles, revision, problem, err := r.resolveRoles(ctx, d)
	if err != nil || problem != nil {
		if problem != nil {
			return stall(problem)
		}
		return ctrl.Result{}, err
	}
	auth, problem, err := r.pullAuth(ctx, d)
	if err != nil || problem != nil {
		if problem != nil {
			return stall(problem)
		}
		return ctrl.Result{}, err
	}

	// Every Server of the namespace is looked at: one no longer selected may still run an old
	// container of this Deployment, which garbage collection removes.
	hosts, unreachable, err := r.connectAll(ctx, d.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	observed := map[string]map[string][]release.Observed{}
	for server, h := range hosts {
		obs, err := observeHost(ctx, h, d.Namespace, d.Name)
		if err != nil {
			unreachable[server] = err.Error()
			delete(hosts, server)
			continue
		}
		observed[server] = obs
	}
	dp := &deployer{d: d, auth: auth, recorder: r.Recorder, starting: func() {
		// Say at once that a rollout is under way; the rest of the status follows at the end.
		conditions.MarkReconciling(&d.Status.Conditions, gen, kamalv1.ReasonRollingOut, "rolling out "+release.Version(d.Spec.Image))
		if err := patcher.patch(ctx, d, func(o client.Object) any { return o.(*kamalv1.Deployment).Status }); err == nil {
			patcher = newStatusPatcher(r.Client, d)
		}
	}}
	if err := r.collectGarbage(ctx, dp, hosts, observed, placed); err != nil {
		return ctrl.Result{}, err
	}

	if d.Status.FailedRevision == revision {
		r.report(d, roles, placed, hosts, observed, unreachable)
		if !conditions.IsReady(d.Status.Conditions, gen) {
			msg := "rollout halted: the health check failed for this spec; change the spec (or set the " + kamalv1.AnnotationRestartedAt + " annotation) to retry"
			if s := meta.FindStatusCondition(d.Status.Conditions, kamalv1.ConditionStalled); s != nil && s.Reason == kamalv1.ReasonHealthCheckFailed {
				msg = s.Message
			}
			conditions.MarkStalled(&d.Status.Conditions, gen, kamalv1.ReasonHealthCheckFailed, msg)
		}
		return ctrl.Result{}, nil
	}

	result, err := r.rollout(ctx, dp, roles, placed, hosts, observed)
	if err != nil {
		if isHealthError(err) {
			d.Status.FailedRevision = revision
			r.Recorder.Eventf(d, nil, corev1.EventTypeWarning, kamalv1.ReasonHealthCheckFailed, "Deploy", "%s; rollout halted, the running version keeps serving", err.Error())
			r.refresh(ctx, d, hosts, observed)
			r.report(d, roles, placed, hosts, observed, unreachable)
			conditions.MarkStalled(&d.Status.Conditions, gen, kamalv1.ReasonHealthCheckFailed, err.Error())
			return ctrl.Result{}, nil
		}
		r.refresh(ctx, d, hosts, observed)
		r.report(d, roles, placed, hosts, observed, unreachable)
		conditions.MarkNotReady(&d.Status.Conditions, gen, kamalv1.ReasonRollingOut, err.Error())
		return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
	}
	d.Status.FailedRevision = ""
	r.refresh(ctx, d, hosts, observed)
	ready, total := r.report(d, roles, placed, hosts, observed, unreachable)
	switch {
	case len(unreachable) > 0 && ready < total:
		conditions.MarkNotReady(&d.Status.Conditions, gen, kamalv1.ReasonUnreachable, "unreachable: "+joinSorted(unreachable))
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	case result.RequeueAfter > 0 || ready < total:
		conditions.MarkReconciling(&d.Status.Conditions, gen, kamalv1.ReasonRollingOut, fmt.Sprintf("%d of %d targets on %s", ready, total, release.Version(d.Spec.Image)))
		return ctrl.Result{RequeueAfter: max(result.RequeueAfter, time.Second)}, nil
	}
	if d.Status.Image != d.Spec.Image {
		r.Recorder.Eventf(d, nil, corev1.EventTypeNormal, "RolloutComplete", "Deploy", "%s serves on %d targets", d.Spec.Image, total)
		d.Status.History = append([]kamalv1.DeployedImage{{Image: d.Spec.Image, Version: release.Version(d.Spec.Image), DeployedAt: metav1.Now()}}, d.Status.History...)
		if len(d.Status.History) > historyLimit {
			d.Status.History = d.Status.History[:historyLimit]
		}
	}
	d.Status.Image, d.Status.Version = d.Spec.Image, release.Version(d.Spec.Image)
	conditions.MarkReady(&d.Status.Conditions, gen, kamalv1.ReasonReconciled, fmt.Sprintf("%s serves on %d targets", release.Version(d.Spec.Image), total))
	return ctrl.Result{RequeueAfter: deploymentResync}, nil
}

func joinSorted(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+" ("+m[k]+")")
	}
	return strings.Join(parts, ", ")
}

// waitingFor returns the first dependency that is not Ready.
func (r *DeploymentReconciler) waitingFor(ctx context.Context, d *kamalv1.Deployment) (string, error) {
	for _, dep := range d.Spec.DependsOn {
		var a kamalv1.Accessory
		if err := r.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: dep.Name}, &a); err != nil {
			return "", client.IgnoreNotFound(err)
		}
		if !conditions.IsReady(a.Status.Conditions, a.Generation) {
			return dep.Name, nil
		}
	}
	return "", nil
}

// resolveRoles builds each role's resolved container spec and hash; revision identifies them
// all together.
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
			Namespace: d.Namespace, Deployment: d.Name, Name: name, Image: d.Spec.Image,
			Cmd: spec.Cmd, Env: e.list(), Labels: labels, Volumes: d.Spec.Volumes,
			Options: d.Spec.Options, Logging: d.Spec.Logging,
			Proxy:   release.EffectiveProxy(&d.Spec, name),
			Restart: d.Annotations[kamalv1.AnnotationRestartedAt],
		}
		if spec.Options != nil {
			role.Options = spec.Options
		}
		if spec.Logging != nil {
			role.Logging = spec.Logging
		}
		roles[name] = role
		sum.Write([]byte(name + "=" + role.Hash(string(d.UID)) + ";"))
	}
	return roles, hex.EncodeToString(sum.Sum(nil))[:16], nil, nil
}

// pullAuth encodes the registry credentials of imagePullSecrets for the image's registry.
func (r *DeploymentReconciler) pullAuth(ctx context.Context, d *kamalv1.Deployment) (string, *refProblem, error) {
	return pullAuthFor(ctx, r.Client, d.Namespace, d.Spec.Image, d.Spec.ImagePullSecrets)
}

// connectAll connects to every Server of the namespace; unreachable ones are reported with
// the reason.
func (r *DeploymentReconciler) connectAll(ctx context.Context, namespace string) (map[string]*fleet.Host, map[string]string, error) {
	return connectServers(ctx, r.Client, r.Fleet, namespace)
}

// rollout deploys role by role (the primary first, unless parallelRoles), each in batches of
// maxParallel servers. A health check failure halts it: later batches and roles keep their
// running version.
func (r *DeploymentReconciler) rollout(ctx context.Context, dp *deployer, roles map[string]*release.Role, placed map[string][]string,
	hosts map[string]*fleet.Host, observed map[string]map[string][]release.Observed) (ctrl.Result, error) {
	d := dp.d
	order := release.SortedRoles(d.Spec.Roles, d.Spec.PrimaryRole)
	groups := [][]string{order}
	if !d.Spec.Rollout.ParallelRoles && len(order) > 1 {
		groups = [][]string{order[:1], order[1:]}
	}
	for _, group := range groups {
		var wg sync.WaitGroup
		errs := make([]error, len(group))
		results := make([]ctrl.Result, len(group))
		for i, name := range group {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = r.rolloutRole(ctx, dp, roles[name], placed[name], hosts, observed)
			}()
		}
		wg.Wait()
		for i := range group {
			if errs[i] != nil {
				return ctrl.Result{}, errs[i]
			}
			if results[i].RequeueAfter > 0 {
				return results[i], nil
			}
		}
	}
	return ctrl.Result{}, nil
}

func (r *DeploymentReconciler) rolloutRole(ctx context.Context, dp *deployer, role *release.Role, servers []string,
	hosts map[string]*fleet.Host, observed map[string]map[string][]release.Observed) (ctrl.Result, error) {
	d := dp.d
	hash := role.Hash(string(d.UID))
	var pending []*target
	for _, server := range servers {
		h := hosts[server]
		if h == nil {
			continue // reported as unreachable; the others go on
		}
		t := &target{server: server, host: h, role: role, hash: hash}
		if role.Proxy != nil {
			route, up, err := h.Proxy.RoutedTo(ctx, release.RouteID(role.Namespace, role.Deployment, role.Name))
			if err != nil {
				return ctrl.Result{}, fmt.Errorf("reading the route on %s: %w", server, err)
			}
			t.route, t.upstream = route, up
			t.routed, _, _ = strings.Cut(up, ":")
		}
		t.plan = release.PlanTarget(hash, role.ContainerName(hash, false), observed[server][role.Name], role.Proxy != nil, t.routed, int(d.Spec.RetainContainers))
		if t.plan.Converged {
			sync := dp.syncRoute
			if role.Proxy == nil {
				sync = dp.dropRoute
			}
			if err := sync(ctx, t); err != nil {
				return ctrl.Result{}, err
			}
			if err := dp.prune(ctx, t); err != nil {
				return ctrl.Result{}, err
			}
			continue
		}
		pending = append(pending, t)
	}
	mp := d.Spec.Rollout.MaxParallel
	count, pct := 1, 0
	if mp != nil {
		if s := mp.String(); strings.HasSuffix(s, "%") {
			fmt.Sscanf(s, "%d%%", &pct)
		} else {
			count = mp.IntValue()
		}
	}
	size := release.BatchSize(len(servers), count, pct)
	batchKey := d.Namespace + "/" + d.Name + "/" + role.Name
	wait := time.Duration(0)
	if w := d.Spec.Rollout.Wait; w != nil {
		wait = w.Duration
	}
	if last, ok := r.lastBatch.Load(batchKey); ok && len(pending) > 0 {
		if left := wait - time.Since(last.(time.Time)); left > 0 {
			return ctrl.Result{RequeueAfter: left}, nil
		}
	}
	for start := 0; start < len(pending); start += size {
		batch := pending[start:min(start+size, len(pending))]
		var wg sync.WaitGroup
		errs := make([]error, len(batch))
		for i, t := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dctx, cancel := context.WithTimeout(ctx, d.Spec.Rollout.DeployTimeout.Duration+d.Spec.Rollout.DrainTimeout.Duration+d.Spec.Rollout.StopTimeout.Duration+5*time.Minute)
				defer cancel()
				errs[i] = dp.deploy(dctx, t)
			}()
		}
		wg.Wait()
		var firstErr error
		for _, err := range errs {
			if err != nil && (firstErr == nil || isHealthError(err) && !isHealthError(firstErr)) {
				firstErr = err
			}
		}
		if firstErr != nil {
			return ctrl.Result{}, firstErr
		}
		r.lastBatch.Store(batchKey, time.Now())
		if wait > 0 && start+size < len(pending) {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
	}
	if len(pending) == 0 {
		r.lastBatch.Delete(batchKey)
	}
	return ctrl.Result{}, nil
}

// refresh re-observes the hosts after work, for an accurate status.
func (r *DeploymentReconciler) refresh(ctx context.Context, d *kamalv1.Deployment, hosts map[string]*fleet.Host, observed map[string]map[string][]release.Observed) {
	for server, h := range hosts {
		if obs, err := observeHost(ctx, h, d.Namespace, d.Name); err == nil {
			observed[server] = obs
		}
	}
}

// report fills status.targets and the counts from what runs; it returns ready and total.
func (r *DeploymentReconciler) report(d *kamalv1.Deployment, roles map[string]*release.Role, placed map[string][]string,
	hosts map[string]*fleet.Host, observed map[string]map[string][]release.Observed, unreachable map[string]string) (int32, int32) {
	var targets []kamalv1.TargetStatus
	var ready, total int32
	for _, name := range release.SortedRoles(d.Spec.Roles, d.Spec.PrimaryRole) {
		role := roles[name]
		hash := role.Hash(string(d.UID))
		for _, server := range placed[name] {
			total++
			ts := kamalv1.TargetStatus{Server: server, Role: name, State: kamalv1.TargetPending}
			if msg, ok := unreachable[server]; ok {
				ts.State, ts.Message = kamalv1.TargetUnreachable, msg
			}
			var serving *release.Observed
			for i, o := range observed[server][name] {
				if o.Running && (serving == nil || o.Hash == hash) {
					serving = &observed[server][name][i]
				}
			}
			if serving != nil {
				ts.Version, ts.Container = serving.Version, serving.Name
				if serving.Hash == hash && ts.State != kamalv1.TargetUnreachable {
					ts.State = kamalv1.TargetRunning
					ready++
				}
			}
			targets = append(targets, ts)
		}
	}
	d.Status.Targets = targets
	d.Status.ReadyTargets, d.Status.TotalTargets = ready, total
	d.Status.ServersReady = fmt.Sprintf("%d/%d", ready, total)
	return ready, total
}

// collectGarbage removes what left the spec: containers (and routes) of roles no longer in it
// and of servers no longer selected.
func (r *DeploymentReconciler) collectGarbage(ctx context.Context, dp *deployer, hosts map[string]*fleet.Host,
	observed map[string]map[string][]release.Observed, placed map[string][]string) error {
	for server, byRole := range observed {
		for role, cs := range byRole {
			if slices.Contains(placed[role], server) {
				continue
			}
			if err := removeRole(ctx, dp, hosts[server], server, role, cs); err != nil {
				return err
			}
			delete(byRole, role)
		}
	}
	return nil
}

// removeRole takes a role off a host: its route first (so no request reaches a stopping
// container), then its containers and their images.
func removeRole(ctx context.Context, dp *deployer, h *fleet.Host, server, role string, cs []release.Observed) error {
	id := release.RouteID(dp.d.Namespace, dp.d.Name, role)
	if err := h.Proxy.DeleteRoute(ctx, id); err != nil && !isAdminUnreachable(err) {
		return fmt.Errorf("removing route %s on %s: %w", id, server, err)
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

// finalize removes the Deployment from every host, then lets it go. A Server that is gone
// or stalled does not block deletion.
func (r *DeploymentReconciler) finalize(ctx context.Context, d *kamalv1.Deployment) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(d, DeploymentFinalizer) {
		return ctrl.Result{}, nil
	}
	hosts, unreachable, err := r.connectAll(ctx, d.Namespace)
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
	}
	if len(unreachable) > 0 {
		var srv kamalv1.Server
		for name := range unreachable {
			if err := r.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: name}, &srv); err == nil && !isStalled(srv.Status.Conditions) {
				r.Recorder.Eventf(d, nil, corev1.EventTypeWarning, "CleanupPending", "Delete", "waiting to remove containers from unreachable %s", joinSorted(unreachable))
				return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
			} else if err != nil && !apierrors.IsNotFound(err) {
				return ctrl.Result{}, err
			}
		}
	}
	controllerutil.RemoveFinalizer(d, DeploymentFinalizer)
	return ctrl.Result{}, client.IgnoreNotFound(r.Update(ctx, d))
}

func isStalled(conds []metav1.Condition) bool {
	return meta.IsStatusConditionTrue(conds, kamalv1.ConditionStalled)
}

// SetupWithManager registers the controller, its watches and the docker events of its
// containers: one that dies, stops or disappears reconciles its Deployment within seconds.
func (r *DeploymentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.wake = make(chan event.GenericEvent, 1024)
	r.Fleet.OnEvent(func(e fleet.Event) {
		attrs := e.Message.Actor.Attributes
		name, ns := attrs[kamalv1.LabelDeployment], attrs[kamalv1.LabelNamespace]
		if name == "" || ns == "" {
			return
		}
		switch e.Message.Action {
		case "die", "stop", "destroy", "kill", "oom", "rename", "health_status: unhealthy":
			select {
			case r.wake <- event.GenericEvent{Object: &kamalv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}:
			default:
			}
		}
	})
	c := mgr.GetClient()
	return ctrl.NewControllerManagedBy(mgr).
		For(&kamalv1.Deployment{}).
		Watches(&corev1.Secret{}, referrers(c, &kamalv1.DeploymentList{}, indexSecrets)).
		Watches(&corev1.ConfigMap{}, referrers(c, &kamalv1.DeploymentList{}, indexConfigMaps)).
		Watches(&kamalv1.Accessory{}, referrers(c, &kamalv1.DeploymentList{}, indexAccessories)).
		Watches(&kamalv1.Server{}, allInNamespace(c, &kamalv1.DeploymentList{})).
		WatchesRawSource(source.Channel(r.wake, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Named("deployment").
		Complete(r)
}
