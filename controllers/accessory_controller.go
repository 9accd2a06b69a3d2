package controllers

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	dockerclient "github.com/moby/moby/client"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/accessory"
	"github.com/kamal-operator/kamal-operator/internal/conditions"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/internal/tenancy"
)

// AccessoryFinalizer lets the controller remove an Accessory's containers (and, with
// deletionPolicy Delete, its folder) from every host before the object goes.
const AccessoryFinalizer = "kamal.operator.dev/accessory"

const (
	accessoryResync = 10 * time.Minute
	// accessoryStopTimeout is the grace an accessory gets to shut down (a database flushes).
	accessoryStopTimeout = 30
)

// AccessoryReconciler keeps Accessories running on their Servers.
type AccessoryReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Fleet    *fleet.Fleet
	// Guests is what an Accessory placed on a Server of another namespace may ask.
	Guests tenancy.GuestPolicy
	// watched are the namespaces the manager's cache holds (nil: all).
	watched []string
	// DefaultProxyImage is the proxy image of Servers that name none: the image whose
	// kamal-remove-dir removes what an accessory leaves on a host (see removeHostPaths).
	DefaultProxyImage string
	// APIReader reads an Accessory being deleted past the cache (when set): a reconcile queued
	// while its finalizer went would otherwise clean its hosts up again from a stale copy.
	APIReader client.Reader
	// Workers reconcile Accessories at once (DefaultAccessoryWorkers when 0); Resync is the
	// safety-net period of a converged one (DefaultAccessoryResync when 0).
	Workers int
	Resync  time.Duration

	privateImages privateImages
	wake          chan event.GenericEvent
}

// +kubebuilder:rbac:groups=kamal.operator.dev,resources=accessories,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=kamal.operator.dev,resources=accessories/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=kamal.operator.dev,resources=accessories/finalizers,verbs=update

var accessoryStatus = statusOf[*kamalv1.Accessory]{
	conditions: func(a *kamalv1.Accessory) *[]metav1.Condition { return &a.Status.Conditions },
	status:     func(a *kamalv1.Accessory) any { return a.Status },
}

// accessoryScope is what the phases of one reconcile share.
type accessoryScope struct {
	a           *kamalv1.Accessory
	selected    []string
	leaving     map[string][]string // selected Servers being deleted: the accessory leaves them
	spec        *accessory.Spec
	hash        string
	pull        docker.Pull
	hosts       map[string]*fleet.Host
	unreachable map[string]string
	statuses    []kamalv1.AccessoryServerStatus
	refused     []*refProblem // per selected server: the registry refused the image
	gcErr       error
}

func (s *accessoryScope) stall(p *refProblem) (*ctrl.Result, error) {
	conditions.MarkStalled(&s.a.Status.Conditions, s.a.Generation, p.Reason, p.Message)
	return done(ctrl.Result{})
}

// Reconcile converges an Accessory's container on each of its Servers.
func (r *AccessoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	a := &kamalv1.Accessory{}
	if err := r.Get(ctx, req.NamespacedName, a); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !a.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, a)
	}
	return reconcileWithStatus(ctx, r.Client, r.Recorder, a, AccessoryFinalizer, accessoryStatus, func(ctx context.Context) (ctrl.Result, error) {
		a.Status.ObservedGeneration = a.Generation
		reportInert(r.Recorder, a, &a.Status.Conditions, a.Generation, inertAccessoryFields(&a.Spec))
		return runPhases(ctx, &accessoryScope{a: a},
			r.checkInputs,
			r.converge,
			r.report,
		)
	})
}

// checkInputs checks every input before any host is touched: a bad reference makes no
// half-made container, and the running one keeps serving.
func (r *AccessoryReconciler) checkInputs(ctx context.Context, s *accessoryScope) (*ctrl.Result, error) {
	a := s.a
	problem, err := checkRefs(ctx, r.Client, a.Namespace, refsOf(a))
	if err != nil || problem != nil {
		if problem != nil {
			return s.stall(problem)
		}
		return nil, err
	}
	placed, problem, err := placeAll(ctx, r.Client, a.Namespace, map[string]kamalv1.ServerSelector{"servers": a.Spec.Servers})
	if err != nil || problem != nil {
		if problem != nil {
			return s.stall(problem)
		}
		return nil, err
	}
	s.selected = placed["servers"]
	if problem := guestProblem(placed, func([]string) []tenancy.Violation { return r.Guests.CheckAccessory(&a.Spec) }); problem != nil {
		return s.stall(problem)
	}
	if s.leaving, err = leavingServers(ctx, r.Client, a.Namespace, map[string]kamalv1.ServerSelector{"servers": a.Spec.Servers}); err != nil {
		return nil, err
	}
	if s.spec, problem, err = r.resolve(ctx, a); err != nil || problem != nil {
		if problem != nil {
			return s.stall(problem)
		}
		return nil, err
	}
	if s.pull, problem, err = r.privateImages.pullFor(ctx, r.Client, a.Namespace, a.Spec.Image, a.Spec.ImagePullSecrets); err != nil || problem != nil {
		if problem != nil {
			return s.stall(problem)
		}
		return nil, err
	}
	s.hash = s.spec.Hash(string(a.UID))
	return nil, nil
}

// converge brings every selected host to the desired container, in parallel, and removes the
// container from Servers no longer selected (their data stays).
func (r *AccessoryReconciler) converge(ctx context.Context, s *accessoryScope) (*ctrl.Result, error) {
	guests, err := accessoryGuests(ctx, r.Client, s.a)
	if err != nil {
		return nil, err
	}
	if s.hosts, s.unreachable, err = connectServers(ctx, r.Client, r.Fleet, s.a.Namespace, guests...); err != nil {
		return nil, err
	}
	s.statuses = make([]kamalv1.AccessoryServerStatus, len(s.selected))
	s.refused = make([]*refProblem, len(s.selected))
	var wg sync.WaitGroup
	for i, server := range s.selected {
		h := s.hosts[server]
		if h == nil {
			s.statuses[i] = kamalv1.AccessoryServerStatus{Server: server, State: kamalv1.TargetUnreachable, Message: s.unreachable[server]}
			continue
		}
		wg.Add(1)
		goSafe(func() error {
			hctx, cancel := context.WithTimeout(ctx, pullTimeout+5*time.Minute)
			defer cancel()
			s.statuses[i] = r.convergeHost(hctx, s.a, s.spec, s.hash, server, s.pull, h, &s.refused[i])
			return nil
		}, func(err error) {
			if err != nil {
				s.statuses[i] = kamalv1.AccessoryServerStatus{Server: server, State: kamalv1.TargetFailed, Message: err.Error()}
			}
			wg.Done()
		})
	}
	for _, server := range sortedKeys(s.hosts) {
		if !slices.Contains(s.selected, server) {
			if slices.Contains(s.leaving["servers"], server) {
				r.event(s.a, corev1.EventTypeNormal, kamalv1.ReasonServerDeleting, "Server %s is being deleted: removing the accessory from it", server)
			}
			hctx, cancel := context.WithTimeout(ctx, hostWriteTimeout)
			if err := r.removeFrom(hctx, s.a, server, s.hosts[server], false, false); err != nil && s.gcErr == nil {
				s.gcErr = err
			}
			cancel()
		}
	}
	wg.Wait()
	return nil, nil
}

// report sets the per-server status and the conditions.
func (r *AccessoryReconciler) report(_ context.Context, s *accessoryScope) (*ctrl.Result, error) {
	a, gen := s.a, s.a.Generation
	ready, failed, starting := 0, []string{}, []string{}
	failReason := kamalv1.ReasonUnreachable
	var pull *refProblem
	for i, st := range s.statuses {
		switch st.State {
		case kamalv1.TargetRunning:
			ready++
		case kamalv1.TargetStarting, kamalv1.TargetPulling:
			starting = append(starting, st.Server)
		default:
			if st.State != kamalv1.TargetUnreachable {
				failReason = kamalv1.ReasonContainerFailed
			}
			failed = append(failed, st.Server+": "+truncate(st.Message, entryMessageMax))
		}
		if p := s.refused[i]; p != nil && pull == nil {
			pull = &refProblem{Reason: p.Reason, Message: st.Server + ": " + p.Message}
		}
	}
	a.Status.Servers, a.Status.ServersNotListed = boundAccessoryServers(s.statuses)
	a.Status.ServersReady = fmt.Sprintf("%d/%d", ready, len(s.statuses))
	a.Status.GuestNamespaces = guestNamespacesOf(map[string][]string{"servers": s.selected}, a.Status.GuestNamespaces, s.unreachable)
	switch {
	case len(s.selected) == 0:
		// Only Servers being deleted are selected (placeAll stalls on none at all).
		conditions.MarkNotReady(&a.Status.Conditions, gen, kamalv1.ReasonServerDeleting, "no Server to run on: "+leavingMessage(s.leaving))
		return &ctrl.Result{RequeueAfter: releaseRecheck}, s.gcErr
	case pull != nil:
		conditions.MarkStalled(&a.Status.Conditions, gen, pull.Reason, pull.Message+" (retried every "+stalledRetry.String()+")")
		return done(ctrl.Result{RequeueAfter: stalledRetry})
	case len(failed) > 0:
		conditions.MarkNotReady(&a.Status.Conditions, gen, failReason, joinFirst(failed, "; "))
		return &ctrl.Result{RequeueAfter: 10 * time.Second}, s.gcErr
	case len(starting) > 0:
		conditions.MarkReconciling(&a.Status.Conditions, gen, kamalv1.ReasonStarting, "starting on "+joinFirst(starting, ", "))
		return &ctrl.Result{RequeueAfter: time.Second}, s.gcErr
	case s.gcErr != nil:
		return nil, s.gcErr
	}
	if a.Status.Image != a.Spec.Image {
		r.Recorder.Eventf(a, nil, corev1.EventTypeNormal, "Running", "Reconcile", "%s runs on %d servers", a.Spec.Image, ready)
	}
	a.Status.Image = a.Spec.Image
	conditions.MarkReady(&a.Status.Conditions, gen, kamalv1.ReasonReconciled, fmt.Sprintf("%s runs as %s on %d servers", a.Spec.Image, s.spec.ContainerName, ready))
	return done(ctrl.Result{RequeueAfter: orDefault(r.Resync, accessoryResync)})
}

// resolve reads env values and file contents. Problems name the object and key, never a value.
func (r *AccessoryReconciler) resolve(ctx context.Context, a *kamalv1.Accessory) (*accessory.Spec, *refProblem, error) {
	env := newEnvResolver(r.Client, a.Namespace)
	var e orderedEnv
	if p, err := env.resolve(ctx, &e, "spec", a.Spec.Env, a.Spec.EnvFrom); err != nil || p != nil {
		return nil, p, err
	}
	s := &accessory.Spec{
		Namespace: a.Namespace, Name: a.Name, UID: string(a.UID), ContainerName: a.Spec.ContainerName, Image: a.Spec.Image,
		Cmd: a.Spec.Cmd, Env: e.list(), Directories: a.Spec.Directories, Volumes: a.Spec.Volumes,
		Labels: a.Spec.Labels, Options: a.Spec.Options, Logging: a.Spec.Logging,
	}
	if s.ContainerName == "" {
		s.ContainerName = a.Name
	}
	if docker.ReservedName(s.ContainerName) {
		// The API refuses these; this guards objects stored before it did.
		return nil, &refProblem{Reason: kamalv1.ReasonInvalidSpec, Message: reservedNameMessage(s.ContainerName)}, nil
	}
	if a.Spec.Port != nil {
		s.Port = a.Spec.Port.String()
		if _, _, err := accessory.PortBindings(s.Port); err != nil {
			return nil, &refProblem{Reason: kamalv1.ReasonInvalidSpec, Message: "spec.port: " + err.Error()}, nil
		}
	}
	for _, d := range a.Spec.Directories {
		if _, err := s.ParseDirectory(d); err != nil {
			return nil, &refProblem{Reason: kamalv1.ReasonInvalidSpec, Message: "spec.directories: " + err.Error()}, nil
		}
	}
	// The API refuses the plain cases; this catches the spellings it cannot clean (./data, data//logs).
	if err := s.CheckDirectories(); err != nil {
		return nil, &refProblem{Reason: kamalv1.ReasonInvalidSpec, Message: "spec.directories: " + err.Error()}, nil
	}
	for _, f := range a.Spec.Files {
		field := "spec.files[" + f.Target + "]"
		content, ok, problem, err := env.content(ctx, field, &kamalv1.EnvVarSource{SecretKeyRef: f.SecretKeyRef, ConfigMapKeyRef: f.ConfigMapKeyRef}, true)
		if err != nil || problem != nil {
			return nil, problem, err
		}
		if !ok {
			continue // optional and missing
		}
		file := accessory.File{Target: f.Target, Mode: 0o644, Content: content}
		if f.SecretKeyRef != nil {
			file.Mode = 0o600
		}
		if f.Mode != nil {
			file.Mode = int64(*f.Mode)
		}
		uid, gid, err := accessory.ParseOwner(f.Owner)
		if err != nil {
			return nil, &refProblem{Reason: kamalv1.ReasonInvalidSpec, Message: field + ": " + err.Error()}, nil
		}
		file.UID, file.GID = uid, gid
		s.Files = append(s.Files, file)
	}
	return s, nil, nil
}

func (r *AccessoryReconciler) event(a *kamalv1.Accessory, typ, reason, format string, args ...any) {
	r.Recorder.Eventf(a, nil, typ, reason, "Reconcile", format, args...)
}

// observeAccessory lists the accessory's containers on a host.
func observeAccessory(ctx context.Context, h *fleet.Host, namespace, name string) ([]accessory.Observed, error) {
	res, err := h.Docker.ContainerList(ctx, dockerclient.ContainerListOptions{All: true, Filters: accessory.Filters(namespace, name)})
	if err != nil {
		return nil, err
	}
	var out []accessory.Observed
	for _, c := range res.Items {
		o := accessory.Observed{
			ID: c.ID, Name: containerName(c.Names), Hash: c.Labels[kamalv1.LabelSpecHash],
			Running: c.State == container.StateRunning, Health: healthOf(c.Status),
			Setup:    c.Labels[accessory.LabelSetup] == "true",
			Networks: hostContainerOf(c).Networks,
		}
		o.Files, o.FilesKnown = accessory.ParseFilesLabel(c.Labels)
		out = append(out, o)
	}
	return out, nil
}

// convergeHost brings one host to the desired container and says how it stands.
// refused is set when the registry refused the image for good.
func (r *AccessoryReconciler) convergeHost(ctx context.Context, a *kamalv1.Accessory, spec *accessory.Spec, hash, server string, pull docker.Pull, h *fleet.Host, refused **refProblem) kamalv1.AccessoryServerStatus {
	st := kamalv1.AccessoryServerStatus{Server: server, Container: spec.ContainerName}
	fail := func(err error) kamalv1.AccessoryServerStatus {
		st.State, st.Message = kamalv1.TargetFailed, err.Error()
		return st
	}
	obs, err := observeAccessory(ctx, h, a.Namespace, a.Name)
	if err != nil {
		st.State, st.Message = kamalv1.TargetUnreachable, err.Error()
		return st
	}
	plain, suffixed := spec.HostNames()
	plan := accessory.PlanHost(obs, []string{plain, suffixed}, hash)
	cli := h.Docker
	name := plain
	if plan.Current != nil {
		name = plan.Current.Name
	}
	st.Container = name
	if plan.Action == accessory.ActionCreate || plan.Action == accessory.ActionRecreate {
		// Everything that can fail or take long comes before the old container stops: the
		// pull, the name, the files. The gap is one stop, one create and one start.
		pctx, cancel := context.WithTimeout(ctx, pullTimeout)
		pulled, err := docker.EnsureImageFor(pctx, cli, spec.Image, pull)
		cancel()
		if err != nil {
			*refused = pullProblem(classifyPull(err))
			return fail(err)
		}
		if pulled {
			r.event(a, corev1.EventTypeNormal, "Pulled", "pulled %s on %s", spec.Image, server)
		}
		if plan.Current == nil {
			if name, err = nameOnHost(ctx, cli, spec); err != nil {
				return fail(err)
			}
		}
		if err := ensureNetwork(ctx, h, a.Namespace); err != nil {
			if docker.IsPoolsExhausted(err) {
				r.event(a, corev1.EventTypeWarning, kamalv1.ReasonNetworkPoolsExhausted, "on %s: %v", server, err)
			}
			return fail(err)
		}
		if err := writeAccessoryFiles(ctx, cli, spec); err != nil {
			return fail(fmt.Errorf("writing files and folders: %w", err))
		}
	}
	// Files dropped from spec.files go before the containers that list them (FilesLabel): until
	// then those keep track of them.
	if stale := spec.StaleFiles(obs); len(stale) > 0 {
		if err := r.removeHostPaths(ctx, h, a.Namespace, server, accessory.HostCleanup{Dir: spec.Folder(), Paths: stale, Prune: true}); err != nil {
			return fail(fmt.Errorf("removing files dropped from spec.files: %w", err))
		}
		r.event(a, corev1.EventTypeNormal, "FilesRemoved", "removed %d files dropped from spec.files from %s", len(stale), server)
	}
	for _, o := range plan.Remove {
		// Found by the accessory's own labels (observeAccessory): its own leftovers only.
		if _, err := h.Docker.ContainerRemove(ctx, o.ID, dockerclient.ContainerRemoveOptions{Force: true}); err != nil && !docker.IsNotFound(err) {
			return fail(fmt.Errorf("removing %s: %w", o.Name, err))
		}
	}
	switch plan.Action {
	case accessory.ActionCreate, accessory.ActionRecreate:
		start := time.Now()
		if plan.Action == accessory.ActionRecreate {
			stop := accessoryStopTimeout
			if _, err := cli.ContainerStop(ctx, plan.Current.ID, dockerclient.ContainerStopOptions{Timeout: &stop}); err != nil && !docker.IsNotFound(err) {
				return fail(fmt.Errorf("stopping %s: %w", name, err))
			}
			start = time.Now() // the accessory is down from here
			if _, err := cli.ContainerRemove(ctx, plan.Current.ID, dockerclient.ContainerRemoveOptions{Force: true}); err != nil && !docker.IsNotFound(err) {
				return fail(fmt.Errorf("removing %s: %w", name, err))
			}
		}
		created, err := createAccessory(ctx, h, spec, hash, &name)
		st.Container = name
		if err != nil {
			return fail(err)
		}
		if _, err := cli.ContainerStart(ctx, created, dockerclient.ContainerStartOptions{}); err != nil {
			return fail(fmt.Errorf("starting %s: %w", name, err))
		}
		if plan.Action == accessory.ActionRecreate {
			r.event(a, corev1.EventTypeNormal, "Recreated", "recreated %s on %s with the changed spec (down %s)", name, server, time.Since(start).Round(time.Millisecond))
		} else {
			r.event(a, corev1.EventTypeNormal, "Created", "started %s on %s", name, server)
		}
	case accessory.ActionStart:
		// Its network may have gone while it was stopped (a container never started yet
		// counts on it by name).
		if err := ensureNetwork(ctx, h, a.Namespace); err != nil {
			return fail(err)
		}
		if _, err := cli.ContainerStart(ctx, plan.Current.ID, dockerclient.ContainerStartOptions{}); err != nil {
			return fail(fmt.Errorf("starting %s: %w", name, err))
		}
		r.event(a, corev1.EventTypeNormal, "Restarted", "started %s again on %s: it had stopped", name, server)
	}
	if plan.Action != accessory.ActionCreate && plan.Action != accessory.ActionRecreate && !slices.Contains(plan.Current.Networks, spec.Network()) {
		// Made before namespaces had their own network: it joins its namespace's under the
		// name apps reach it by (the Server controller then takes it off the shared one).
		err := ensureNetwork(ctx, h, a.Namespace)
		if err == nil {
			err = docker.Connect(ctx, cli, spec.Network(), plan.Current.ID, []string{spec.ContainerName})
		}
		if err != nil {
			return fail(fmt.Errorf("attaching %s to its namespace's network: %w", name, err))
		}
	}

	if plan.Action != accessory.ActionNone {
		if obs, err = observeAccessory(ctx, h, a.Namespace, a.Name); err != nil {
			st.State, st.Message = kamalv1.TargetUnreachable, err.Error()
			return st
		}
		plan = accessory.PlanHost(obs, []string{plain, suffixed}, hash)
	}
	switch {
	case plan.Ready():
		st.State = kamalv1.TargetRunning
		// Running is not serving: a database initialises its data first. Ready waits until
		// the port accepts connections, so a dependent app starts against a live service.
		if port, ok := spec.ServicePort(); ok {
			if err := acceptsOn(ctx, h, plan.Current.ID, port, spec.Network()); err != nil {
				st.State, st.Message = kamalv1.TargetStarting, fmt.Sprintf("%s does not accept connections on port %s yet", name, port)
			}
		}
	case plan.Current != nil && plan.Current.Health == "unhealthy":
		st.State, st.Message = kamalv1.TargetFailed, name+" is unhealthy"
	case plan.Current != nil && plan.Current.Hash == hash && !plan.Current.Running:
		// Restarted by Docker (unless-stopped) or by the next reconcile; say it exits.
		code := -1
		if in, err := cli.ContainerInspect(ctx, plan.Current.ID, dockerclient.ContainerInspectOptions{}); err == nil && in.Container.State != nil {
			code = in.Container.State.ExitCode
		}
		st.State, st.Message = kamalv1.TargetFailed, fmt.Sprintf("%s exited with code %d; see `docker logs %s` on the host", name, code, name)
	default:
		st.State, st.Message = kamalv1.TargetStarting, "starting "+name
	}
	return st
}

// nameOnHost is the name of a new container of the accessory on the host: its plain name
// unless another namespace's container holds it (accessory.Spec.NameOnHost).
func nameOnHost(ctx context.Context, cli *dockerclient.Client, spec *accessory.Spec) (string, error) {
	plain, _ := spec.HostNames()
	in, err := cli.ContainerInspect(ctx, plain, dockerclient.ContainerInspectOptions{})
	if docker.IsNotFound(err) {
		return spec.NameOnHost(accessory.Holder{})
	}
	if err != nil {
		return "", err
	}
	h := accessory.Holder{Exists: true, Name: strings.TrimPrefix(in.Container.Name, "/")}
	if in.Container.Config != nil {
		h.Labels = in.Container.Config.Labels
	}
	return spec.NameOnHost(h)
}

// createAccessory makes the accessory's container named *name on its namespace's network.
// The network is made (when missing) and the container created under the network's lock: Docker
// creates a container on a network that does not exist and only fails to start it, so nothing
// may remove the network in between. (It was made before the old container stopped too, so the
// gap holds one quick look more than before.) When the plain name was taken meanwhile, it takes
// the name the new holder leaves it and says so in *name.
func createAccessory(ctx context.Context, h *fleet.Host, spec *accessory.Spec, hash string, name *string) (string, error) {
	defer lockNetwork(h, spec.Namespace)()
	if _, err := docker.EnsureNamespaceNetwork(ctx, h.Docker, spec.Namespace); err != nil {
		return "", err
	}
	opts, err := spec.CreateOptions(*name, hash)
	if err != nil {
		return "", err
	}
	created, err := h.Docker.ContainerCreate(ctx, opts)
	if plain, _ := spec.HostNames(); docker.IsConflict(err) && *name == plain {
		if *name, err = nameOnHost(ctx, h.Docker, spec); err != nil {
			return "", err
		}
		opts.Name = *name
		created, err = h.Docker.ContainerCreate(ctx, opts)
	}
	if err != nil {
		return "", fmt.Errorf("creating %s on network %s: %w", *name, spec.Network(), err)
	}
	return created.ID, nil
}

// acceptsOn opens (and closes) a TCP connection from the host to the container's port on its
// namespace's network (or the old shared one, for a container not moved yet).
func acceptsOn(ctx context.Context, h *fleet.Host, id, port, network string) error {
	in, err := h.Docker.ContainerInspect(ctx, id, dockerclient.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	ip, _ := docker.AddressOn(in.Container.NetworkSettings, network, docker.LegacyNetwork)
	if !ip.IsValid() {
		return fmt.Errorf("no address on the %s network", network)
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := h.Conn.DialTCP(dctx, net.JoinHostPort(ip.String(), port))
	if err != nil {
		return err
	}
	return c.Close()
}

// writeAccessoryFiles makes the accessory's folders and files on the host through a setup
// container that is never started: the Engine API extracts the archive into its bind of the
// accessory's folder. No command runs on the host.
func writeAccessoryFiles(ctx context.Context, cli *dockerclient.Client, spec *accessory.Spec) error {
	archive, err := spec.SetupArchive()
	if err != nil {
		return err
	}
	opts := spec.SetupOptions()
	created, err := cli.ContainerCreate(ctx, opts)
	if docker.IsConflict(err) {
		// A setup container of this accessory that an interrupted pass left goes; another
		// container holding the name stays, and this one is made without a name.
		if _, rerr := docker.RemoveContainerIfOwned(ctx, cli, opts.Name, spec.SetupLabels()); rerr != nil {
			opts.Name = ""
		}
		created, err = cli.ContainerCreate(ctx, opts)
	}
	if err != nil {
		return err
	}
	defer func() {
		_, _ = cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, dockerclient.ContainerRemoveOptions{Force: true})
	}()
	_, err = cli.CopyToContainer(ctx, created.ID, dockerclient.CopyToContainerOptions{DestinationPath: "/", Content: bytes.NewReader(archive)})
	return err
}

// removeFrom takes the accessory off a host. Its containers stop first; then what it left
// there goes (its files, which hold ConfigMap and Secret contents, and with deleteData its whole
// folder, on hosts where it ran or is placed); only then are the containers removed, so until
// the host is clean they mark that something is left to remove. Data directories that stay
// (deletionPolicy Retain) are said in an event.
func (r *AccessoryReconciler) removeFrom(ctx context.Context, a *kamalv1.Accessory, server string, h *fleet.Host, deleteData, placed bool) error {
	obs, err := observeAccessory(ctx, h, a.Namespace, a.Name)
	if err != nil {
		return err
	}
	stop := accessoryStopTimeout
	for _, o := range obs {
		if o.Running {
			_, _ = h.Docker.ContainerStop(ctx, o.ID, dockerclient.ContainerStopOptions{Timeout: &stop})
		}
	}
	if cleanup, ok := accessory.PlanRemoval(a.Namespace, a.Name, obs, deleteData, placed); ok {
		if err := r.removeHostPaths(ctx, h, a.Namespace, server, cleanup); err != nil {
			return fmt.Errorf("removing %s on %s: %w", path.Join(cleanup.Dir, cleanup.Paths[0]), server, err)
		}
		if deleteData {
			r.event(a, corev1.EventTypeNormal, "DataDeleted", "removed %s on %s (deletionPolicy Delete)", accessory.Folder(a.Namespace, a.Name), server)
		}
	}
	ran := false
	for _, o := range obs {
		if _, err := h.Docker.ContainerRemove(ctx, o.ID, dockerclient.ContainerRemoveOptions{Force: true}); err != nil && !docker.IsNotFound(err) {
			return fmt.Errorf("removing %s on %s: %w", o.Name, server, err)
		}
		if !o.Setup {
			ran = true
			r.event(a, corev1.EventTypeNormal, "Removed", "removed %s from %s", o.Name, server)
		}
	}
	if len(obs) > 0 {
		// The namespace's network goes with its last container on the host; the Server
		// controller retries what fails here.
		if note := leaveNetwork(ctx, h, a.Namespace, server); note != "" {
			r.event(a, corev1.EventTypeNormal, "NetworkRemoved", "%s", note)
		}
	}
	if ran && !deleteData && len(a.Spec.Directories) > 0 {
		r.event(a, corev1.EventTypeNormal, "DataRetained", "kept the data directories under %s on %s (deletionPolicy Retain); its files were removed",
			accessory.Folder(a.Namespace, a.Name), server)
	}
	return nil
}

// removeHostPaths removes what an accessory left on a host with the proxy image of its Server
// (proxy.RemovePaths): an image the controller trusts, which removes trees without following
// the links a container may have left in its data, and which binds only cleanup.Dir.
func (r *AccessoryReconciler) removeHostPaths(ctx context.Context, h *fleet.Host, namespace, server string, cleanup accessory.HostCleanup) error {
	var srv kamalv1.Server
	if err := r.Get(ctx, serverKeyOf(namespace, server), &srv); err != nil {
		return err
	}
	image := proxy.SettingsFor(srv.Spec.Proxy, r.DefaultProxyImage).Image
	return proxy.RemovePaths(ctx, h.Docker, image, cleanup.Dir, cleanup.Paths, cleanup.Prune)
}

// accessoryCleanupTimeout bounds removing the accessory from one host on deletion; a large
// data folder takes a while to delete.
const accessoryCleanupTimeout = 10 * time.Minute

// reconcileDelete removes the accessory from every host, then lets it go. A Server that is
// gone or stalled does not block deletion; one being deleted waits for it. What could not be
// removed keeps the finalizer, with a condition and an event that say why.
func (r *AccessoryReconciler) reconcileDelete(ctx context.Context, a *kamalv1.Accessory) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(a, AccessoryFinalizer) {
		return ctrl.Result{}, nil
	}
	if ok, err := stillFinalizing(ctx, r.APIReader, a, AccessoryFinalizer); !ok || err != nil {
		return ctrl.Result{}, err
	}
	guests, err := accessoryGuests(ctx, r.Client, a)
	if err != nil {
		return ctrl.Result{}, err
	}
	hosts, unreachable, err := connectServers(ctx, r.Client, r.Fleet, a.Namespace, guests...)
	if err != nil {
		return ctrl.Result{}, err
	}
	deleteData := a.Spec.DeletionPolicy == kamalv1.DeletionDelete
	// Where it is placed now, if the selection still resolves (a problem just means fewer),
	// Servers being deleted included: when a namespace goes, the accessory may have left them
	// (its containers removed, its data kept) before its own deletion began.
	sel := map[string]kamalv1.ServerSelector{"servers": a.Spec.Servers}
	placed, _, _ := placeAll(ctx, r.Client, a.Namespace, sel)
	leaving, _ := leavingServers(ctx, r.Client, a.Namespace, sel)
	on := slices.Concat(placed["servers"], leaving["servers"])
	failed := map[string]string{}
	for _, server := range sortedKeys(hosts) {
		hctx, cancel := context.WithTimeout(ctx, accessoryCleanupTimeout)
		err := r.removeFrom(hctx, a, server, hosts[server], deleteData, slices.Contains(on, server))
		cancel()
		if err != nil {
			failed[server] = err.Error()
		}
	}
	if len(failed) > 0 {
		msg := "being deleted; could not clean up " + joinSorted(failed) + "; the Accessory stays until that is done"
		if deleteData {
			msg += " (to keep the data and let it go, set spec.deletionPolicy to Retain)"
		}
		r.event(a, corev1.EventTypeWarning, kamalv1.ReasonCleanupFailed, "%s", msg)
		return ctrl.Result{RequeueAfter: 30 * time.Second}, r.markDeleting(ctx, a, kamalv1.ReasonCleanupFailed, msg)
	}
	for name := range unreachable {
		var srv kamalv1.Server
		if err := r.Get(ctx, serverKeyOf(a.Namespace, name), &srv); err == nil && !isStalled(srv.Status.Conditions) {
			r.event(a, corev1.EventTypeWarning, "CleanupPending", "waiting to remove the accessory from unreachable %s", joinSorted(unreachable))
			return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
		} else if err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, removeFinalizer(ctx, r.Client, a, AccessoryFinalizer)
}

// markDeleting says in an Accessory's conditions why its deletion does not finish.
func (r *AccessoryReconciler) markDeleting(ctx context.Context, a *kamalv1.Accessory, reason, msg string) error {
	patcher := newStatusPatcher(r.Client, a)
	conditions.MarkNotReady(&a.Status.Conditions, a.Generation, reason, msg)
	return patcher.patch(ctx, a, func(o client.Object) any { return o.(*kamalv1.Accessory).Status })
}

// SetupWithManager registers the controller, its watches and the docker events of its
// containers: one that dies, stops or disappears reconciles its Accessory within seconds.
func (r *AccessoryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.DefaultProxyImage == "" {
		r.DefaultProxyImage = DefaultProxyImage
	}
	r.wake = make(chan event.GenericEvent, 1024)
	r.Fleet.OnEvent(func(e fleet.Event) {
		attrs := e.Message.Actor.Attributes
		name, ns := attrs[kamalv1.LabelAccessory], attrs[kamalv1.LabelNamespace]
		if name == "" || ns == "" || attrs[accessory.LabelSetup] == "true" {
			return
		}
		switch e.Message.Action {
		case "die", "stop", "destroy", "kill", "oom", "rename", "health_status: unhealthy", "health_status: healthy":
			select {
			case r.wake <- event.GenericEvent{Object: &kamalv1.Accessory{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}:
			default:
			}
		}
	})
	c := mgr.GetClient()
	return ctrl.NewControllerManagedBy(mgr).
		For(&kamalv1.Accessory{}).
		Watches(&corev1.Secret{}, referrers(c, &kamalv1.AccessoryList{}, indexSecrets), builder.OnlyMetadata).
		Watches(&corev1.ConfigMap{}, referrers(c, &kamalv1.AccessoryList{}, indexConfigMaps), builder.OnlyMetadata).
		Watches(&kamalv1.Server{}, serverUsers(c, &kamalv1.AccessoryList{}), builder.WithPredicates(serverChanged)).
		Watches(&corev1.Namespace{}, namespaceGuests(c, &kamalv1.AccessoryList{}, r.watched), builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Channel(r.wake, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: orDefault(r.Workers, DefaultAccessoryWorkers)}).
		Named("accessory").
		Complete(r)
}
