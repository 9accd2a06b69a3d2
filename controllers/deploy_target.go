package controllers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	dockerclient "github.com/moby/moby/client"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/internal/metrics"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/internal/release"
)

// target is one role on one server during a reconcile.
type target struct {
	server string
	host   *fleet.Host
	role   *release.Role
	hash   string
	plan   release.Plan
	// route is the role's route as the host's proxy holds it (nil when none); legacy says the
	// proxy holds it under the id older controllers gave it (release.LegacyRouteID). upstream is
	// where it sends to ("container:port", "" when none), routed that container.
	route            *proxy.Route
	legacy           bool
	upstream, routed string
}

// healthError is a new container that never became healthy: retrying the same spec will not
// help, so it halts the rollout.
type healthError struct{ msg string }

func (e *healthError) Error() string { return e.msg }

// readRoute reads a role's route from the host's proxy: under its id, else under its legacy
// id (a route an older proxy had, imported by the proxy that replaced it).
func readRoute(ctx context.Context, h *fleet.Host, role *release.Role) (route *proxy.Route, legacy bool, upstream string, err error) {
	r, err := h.Proxy.Route(ctx, release.RouteID(role.Namespace, role.Deployment, role.Name))
	if err == nil {
		return &r, false, r.Upstream, nil
	}
	if !errors.Is(err, proxy.ErrNotFound) {
		return nil, false, "", err
	}
	r, err = h.Proxy.Route(ctx, release.LegacyRouteID(role.Namespace, role.Deployment, role.Name))
	switch {
	case err == nil:
		return nil, true, r.Upstream, nil
	case errors.Is(err, proxy.ErrNotFound):
		return nil, false, "", nil
	}
	return nil, false, "", err
}

// routeWrite is how a target's route reaches what the spec wants.
type routeWrite int

const (
	routeAsIs     routeWrite = iota // nothing to write
	routeUpstream                   // only the upstream differs: the deploy's switch
	routePut                        // the route is missing, differs otherwise, or has its legacy id
)

// planRouteWrite decides how cur (nil when the proxy has none under the route's id) becomes want.
func planRouteWrite(cur *proxy.Route, legacy bool, want proxy.Route) routeWrite {
	if cur == nil || legacy {
		return routePut
	}
	if cur.Equal(want) {
		return routeAsIs
	}
	moved := *cur
	moved.Upstream = want.Upstream
	if moved.Equal(want) {
		return routeUpstream
	}
	return routePut
}

// writeRoute brings the target's route to want in one change of the proxy's table, taking it
// over from its legacy id when the proxy has that. It reports whether it wrote anything.
//
// A Deployment gets here only when it owns every claim it makes by API state (checkClaims):
// a route of another id that the proxy holds for one of them is a later claimant's, written
// before it learnt of this one, or a leftover. The owner takes those over in the same change,
// so every proxy ends up routing the owner, whichever order it saw the two in.
func writeRoute(ctx context.Context, dp *deployer, t *target, want proxy.Route) (bool, error) {
	id := release.RouteID(t.role.Namespace, t.role.Deployment, t.role.Name)
	var err error
	switch planRouteWrite(t.route, t.legacy, want) {
	case routeAsIs:
		return false, nil
	case routeUpstream:
		_, err = t.host.Proxy.SetUpstream(ctx, id, want.Upstream)
	default:
		var replaces []string
		if t.legacy {
			replaces = []string{release.LegacyRouteID(t.role.Namespace, t.role.Deployment, t.role.Name)}
		}
		_, err = t.host.Proxy.PutRoute(ctx, id, want, 0, replaces)
		var ce *proxy.ConflictError
		if errors.As(err, &ce) {
			var taken []string
			for _, c := range ce.Conflicts {
				replaces = append(replaces, c.ID)
				taken = append(taken, c.ID)
			}
			if _, err = t.host.Proxy.PutRoute(ctx, id, want, 0, replaces); err == nil {
				dp.event(corev1.EventTypeNormal, "RouteTakenOver", "took host names over on %s from route %s: this Deployment claimed them first",
					t.server, strings.Join(taken, ", "))
			}
		}
	}
	return err == nil, err
}

// syncRoute brings a converged target's route to the role's proxy settings: the upstream (a
// new app port) and the route itself (hosts, paths, timeouts, buffering). The container stays.
func (dp *deployer) syncRoute(ctx context.Context, t *target) error {
	p := t.role.Proxy
	changed, err := writeRoute(ctx, dp, t, p.Route(p.Upstream(t.routed), release.RouteOwner(t.role.Namespace, t.role.Deployment)))
	if err != nil {
		return fmt.Errorf("updating the route on %s: %w", t.server, err)
	}
	if changed {
		dp.event(corev1.EventTypeNormal, "RouteUpdated", "route of %s on %s updated to the proxy settings", t.routed, t.server)
	}
	return nil
}

// dropRoute removes the route of a role that is no longer behind the proxy (under its id and
// its legacy id); the containers stay. An older proxy keeps it until the proxy rollout replaces
// it: the new proxy imports the route, and the next pass removes it.
func (dp *deployer) dropRoute(ctx context.Context, t *target) error {
	removed := false
	for _, id := range []string{
		release.RouteID(t.role.Namespace, t.role.Deployment, t.role.Name),
		release.LegacyRouteID(t.role.Namespace, t.role.Deployment, t.role.Name),
	} {
		_, err := t.host.Proxy.Route(ctx, id)
		switch {
		case errors.Is(err, proxy.ErrNotFound):
			continue
		case errors.Is(err, proxy.ErrLegacyProxy) || isAdminUnreachable(err):
			return nil
		case err != nil:
			return fmt.Errorf("reading the route on %s: %w", t.server, err)
		}
		if _, err := t.host.Proxy.DeleteRoute(ctx, id, 0); err != nil {
			return fmt.Errorf("removing the route on %s: %w", t.server, err)
		}
		removed = true
	}
	if removed {
		dp.event(corev1.EventTypeNormal, "RouteRemoved", "role %s is no longer behind the proxy on %s", t.role.Name, t.server)
	}
	return nil
}

// observeHost lists the Deployment's containers on a host, by role.
func observeHost(ctx context.Context, h *fleet.Host, namespace, deployment string) (map[string][]release.Observed, error) {
	res, err := h.Docker.ContainerList(ctx, dockerclient.ContainerListOptions{All: true, Filters: release.Filters(namespace, deployment, "")})
	if err != nil {
		return nil, err
	}
	out := map[string][]release.Observed{}
	for _, c := range res.Items {
		name, health := containerName(c.Names), healthOf(c.Status)
		role := c.Labels[kamalv1.LabelRole]
		out[role] = append(out[role], release.Observed{
			ID: c.ID, Name: name, Hash: c.Labels[kamalv1.LabelSpecHash], Version: c.Labels[kamalv1.LabelVersion],
			Image: c.Image, Running: c.State == container.StateRunning, Health: health, Created: c.Created,
		})
	}
	return out, nil
}

// containerName is a listed container's name, without Docker's leading slash.
func containerName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return strings.TrimPrefix(names[0], "/")
}

// healthOf reads Docker's health status from a listed container's status line.
func healthOf(status string) string {
	switch {
	case strings.Contains(status, "(healthy)"):
		return "healthy"
	case strings.Contains(status, "(unhealthy)"):
		return "unhealthy"
	case strings.Contains(status, "health: starting"):
		return "starting"
	}
	return ""
}

// deployer carries what every target of one reconcile shares. A background deploy has its own
// deployer around its own copy of the Deployment.
type deployer struct {
	d        *kamalv1.Deployment
	pull     docker.Pull
	recorder events.EventRecorder
	// step, when set, is told what the deploy does now, for status.
	step func(opStep)
}

func (dp *deployer) event(typ, reason, format string, args ...any) {
	dp.recorder.Eventf(dp.d, nil, typ, reason, "Deploy", format, args...)
}

func (dp *deployer) at(s opStep) {
	if dp.step != nil {
		dp.step(s)
	}
}

// Steps of a deploy, as status shows them.
const (
	stepPulling   opStep = "pulling"
	stepStarting  opStep = "starting"
	stepChecking  opStep = "health checking"
	stepSwitching opStep = "switching"
	stepDraining  opStep = "draining"
	stepStopping  opStep = "stopping the old version"
)

// state is the target state a step shows as.
func (s opStep) state() kamalv1.TargetState {
	switch s {
	case stepPulling:
		return kamalv1.TargetPulling
	case stepStarting:
		return kamalv1.TargetStarting
	case stepChecking:
		return kamalv1.TargetHealthChecking
	}
	return kamalv1.TargetStarting
}

// pullTimeout bounds one image pull: large images on slow links take minutes.
const pullTimeout = 15 * time.Minute

// pullError is a pull the registry refused; permanent when retrying soon cannot help (no such
// image or tag, credentials refused, a reference the registry does not accept).
type pullError struct {
	err       error
	permanent bool
}

func (e *pullError) Error() string { return e.err.Error() }
func (e *pullError) Unwrap() error { return e.err }

func classifyPull(err error) error {
	msg := strings.ToLower(err.Error())
	permanent := cerrdefs.IsNotFound(err) || cerrdefs.IsUnauthorized(err) || cerrdefs.IsPermissionDenied(err) || cerrdefs.IsInvalidArgument(err)
	for _, s := range []string{"manifest unknown", "not found", "unauthorized", "denied", "invalid reference", "no basic auth credentials"} {
		permanent = permanent || strings.Contains(msg, s)
	}
	return &pullError{err: err, permanent: permanent}
}

// pullProblem is the Stalled condition for a permanent pull error, nil otherwise.
func pullProblem(err error) *refProblem {
	var pe *pullError
	if errors.As(err, &pe) && pe.permanent {
		return &refProblem{Reason: kamalv1.ReasonImagePullFailed, Message: err.Error()}
	}
	return nil
}

// converged keeps a converged target so: its route follows the proxy settings (or is removed
// when the role left the proxy), and stopped versions beyond retention are pruned.
func (dp *deployer) converged(ctx context.Context, t *target) error {
	sync := dp.syncRoute
	if t.role.Proxy == nil {
		sync = dp.dropRoute
	}
	if err := sync(ctx, t); err != nil {
		return err
	}
	return dp.prune(ctx, t)
}

// deploy brings one target to its desired container with zero downtime: start the new one
// next to the old, wait until it is healthy, switch the route, let the old drain, stop it,
// prune beyond retention. Each step is idempotent, so a restarted controller resumes.
func (dp *deployer) deploy(ctx context.Context, t *target) error {
	if t.plan.Converged {
		return dp.prune(ctx, t)
	}
	cli := t.host.Docker
	ro := dp.d.Spec.Rollout
	desired := t.plan.Desired
	created := false
	if desired == nil {
		dp.at(stepPulling)
		pctx, cancel := context.WithTimeout(ctx, pullTimeout)
		pulled, err := docker.EnsureImageFor(pctx, cli, t.role.Image, dp.pull)
		cancel()
		if err != nil {
			return classifyPull(fmt.Errorf("on %s: %w", t.server, err))
		}
		if pulled {
			dp.event(corev1.EventTypeNormal, "Pulled", "pulled %s on %s", t.role.Image, t.server)
		}
		// A name the controller keeps for its own containers (an app named like the proxy's
		// replacement) is taken as held: the hash-suffixed one never collides with it.
		taken := t.plan.NameTaken || docker.ReservedName(t.role.ContainerName(t.hash, false))
		name, id, err := dp.create(ctx, t, taken)
		if err != nil {
			return err
		}
		desired = &release.Observed{ID: id, Name: name, Hash: t.hash}
		created = true
	}
	dp.at(stepStarting)
	if !desired.Running {
		if !created {
			// A retained or half-made container: its network may have gone meanwhile.
			if err := ensureNetwork(ctx, t.host, t.role.Namespace); err != nil {
				return fmt.Errorf("on %s: %w", t.server, err)
			}
		}
		if _, err := cli.ContainerStart(ctx, desired.ID, dockerclient.ContainerStartOptions{}); err != nil {
			return fmt.Errorf("starting %s on %s: %w", desired.Name, t.server, err)
		}
		dp.event(corev1.EventTypeNormal, "Started", "started %s on %s", desired.Name, t.server)
	}

	dp.at(stepChecking)
	if err := dp.waitReady(ctx, t, desired); err != nil {
		discard(ctx, t, desired, created)
		return err
	}

	if p := t.role.Proxy; p != nil && t.routed != desired.Name {
		// The proxy must reach the new container by the name the route uses before the
		// route moves: a route that cannot work never replaces one that does. It reaches it
		// on the namespace's network (attached when the network was made; again here, for a
		// proxy recreated since).
		dp.at(stepSwitching)
		if _, err := proxy.Attach(ctx, cli, t.role.Network()); err != nil {
			return fmt.Errorf("on %s: %w", t.server, err)
		}
		if err := verifyThroughProxy(ctx, t, desired.Name); err != nil {
			discard(ctx, t, desired, created)
			return err
		}
		// One change of the proxy's table: the upstream alone when the route is as the spec
		// wants it, else the whole route (first deploy, changed settings, a legacy id).
		want := p.Route(p.Upstream(desired.Name), release.RouteOwner(t.role.Namespace, t.role.Deployment))
		if _, err := writeRoute(ctx, dp, t, want); err != nil {
			return fmt.Errorf("switching the route on %s: %w", t.server, err)
		}
		metrics.RouteSwitched(dp.d.Namespace, dp.d.Name)
		dp.event(corev1.EventTypeNormal, "Switched", "%s now serves %s on %s", desired.Name, strings.Join(p.Hosts, ","), t.server)
		dp.at(stepDraining)
		dp.drain(ctx, t, p)
	}
	dp.at(stepStopping)

	stopTimeout := int(ro.StopTimeout.Duration.Seconds())
	for _, old := range t.plan.Old {
		if _, err := cli.ContainerStop(ctx, old.ID, dockerclient.ContainerStopOptions{Timeout: &stopTimeout}); err != nil && !docker.IsNotFound(err) {
			return fmt.Errorf("stopping %s on %s: %w", old.Name, t.server, err)
		}
		dp.event(corev1.EventTypeNormal, "Stopped", "stopped %s on %s", old.Name, t.server)
	}
	return dp.prune(ctx, t)
}

// create makes the target's new container on its namespace's network (made when missing,
// with the proxy attached). taken asks for the hash-suffixed name at once; the plain name held
// by a container this Deployment does not see (another namespace's app on a shared host) falls
// back to it too.
func (dp *deployer) create(ctx context.Context, t *target, taken bool) (string, string, error) {
	net, unlock, err := joinNetwork(ctx, t.host, t.role.Namespace)
	if err != nil {
		if docker.IsPoolsExhausted(err) {
			dp.event(corev1.EventTypeWarning, kamalv1.ReasonNetworkPoolsExhausted, "on %s: %v", t.server, err)
		}
		return "", "", fmt.Errorf("on %s: %w", t.server, err)
	}
	defer unlock()
	name := t.role.ContainerName(t.hash, taken)
	opts, err := t.role.CreateOptions(name, t.hash)
	if err != nil {
		return "", "", err
	}
	res, err := t.host.Docker.ContainerCreate(ctx, opts)
	if docker.IsConflict(err) && !taken {
		name = t.role.ContainerName(t.hash, true)
		if opts, err = t.role.CreateOptions(name, t.hash); err != nil {
			return "", "", err
		}
		res, err = t.host.Docker.ContainerCreate(ctx, opts)
	}
	if err != nil {
		return "", "", fmt.Errorf("creating %s on %s (network %s): %w", name, t.server, net, err)
	}
	return name, res.ID, nil
}

// discard stops a new container that will not serve (and removes it when this deploy made
// it): the old one keeps the traffic. It runs even when the deploy was cancelled.
func discard(ctx context.Context, t *target, c *release.Observed, created bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hostReadTimeout)
	defer cancel()
	stop := 1
	_, _ = t.host.Docker.ContainerStop(ctx, c.ID, dockerclient.ContainerStopOptions{Timeout: &stop})
	if created {
		_, _ = t.host.Docker.ContainerRemove(ctx, c.ID, dockerclient.ContainerRemoveOptions{Force: true})
	}
}

// waitReady waits until the new container is healthy: an HTTP check through the SSH
// connection for a proxied role, else Docker's health status or readinessDelay.
func (dp *deployer) waitReady(ctx context.Context, t *target, c *release.Observed) error {
	ro := dp.d.Spec.Rollout
	deadline := time.Now().Add(ro.DeployTimeout.Duration)
	if t.role.Proxy != nil {
		return httpHealthy(ctx, t, c, deadline)
	}
	delay := ro.ReadinessDelay.Duration
	readyAt := time.Now().Add(delay)
	for {
		in, err := t.host.Docker.ContainerInspect(ctx, c.ID, dockerclient.ContainerInspectOptions{})
		if err != nil {
			return fmt.Errorf("inspecting %s on %s: %w", c.Name, t.server, err)
		}
		st := in.Container.State
		switch {
		case st == nil || !st.Running:
			code := 0
			if st != nil {
				code = st.ExitCode
			}
			return &healthError{fmt.Sprintf("%s on %s exited (code %d) before it was ready", c.Name, t.server, code)}
		case st.Health != nil:
			switch st.Health.Status {
			case container.Healthy:
				return nil
			case container.Unhealthy:
				return &healthError{fmt.Sprintf("%s on %s reports unhealthy", c.Name, t.server)}
			}
		case !time.Now().Before(readyAt):
			return nil
		}
		if time.Now().After(deadline) {
			return &healthError{fmt.Sprintf("%s on %s was not healthy within deployTimeout %s", c.Name, t.server, ro.DeployTimeout.Duration)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// httpHealthy polls the container's health check path on its network address, through the
// host's SSH connection, until it answers 2xx or the deadline passes.
func httpHealthy(ctx context.Context, t *target, c *release.Observed, deadline time.Time) error {
	p := t.role.Proxy
	in, err := t.host.Docker.ContainerInspect(ctx, c.ID, dockerclient.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspecting %s on %s: %w", c.Name, t.server, err)
	}
	addr, _ := docker.AddressOn(in.Container.NetworkSettings, t.role.Network(), docker.LegacyNetwork)
	if !addr.IsValid() {
		return fmt.Errorf("%s on %s has no address on the %s network", c.Name, t.server, t.role.Network())
	}
	ip := addr.String()
	hc := &http.Client{
		Transport: &http.Transport{
			DialContext:       func(ctx context.Context, _, addr string) (net.Conn, error) { return t.host.Conn.DialTCP(ctx, addr) },
			DisableKeepAlives: true,
		},
		Timeout:       p.HealthTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	url := fmt.Sprintf("http://%s%s", net.JoinHostPort(ip, fmt.Sprint(p.AppPort)), p.HealthPath)
	last := "no answer yet"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return &healthError{fmt.Sprintf("health check GET %s on port %d of %s (%s): not a valid request: %v", p.HealthPath, p.AppPort, c.Name, t.server, err)}
		}
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return nil
			}
			last = resp.Status
			if loc := resp.Header.Get("Location"); loc != "" {
				last += " (redirect to " + loc + ")"
			}
		} else {
			last = err.Error()
			if i := strings.LastIndex(last, ": "); i >= 0 {
				last = last[i+2:]
			}
		}
		if time.Now().After(deadline) {
			return &healthError{fmt.Sprintf("health check GET %s on port %d of %s (%s) did not pass within deployTimeout: last answer %s",
				p.HealthPath, p.AppPort, c.Name, t.server, last)}
		}
		if in, err := t.host.Docker.ContainerInspect(ctx, c.ID, dockerclient.ContainerInspectOptions{}); err == nil && in.Container.State != nil && !in.Container.State.Running {
			return &healthError{fmt.Sprintf("%s on %s exited (code %d) during its health check", c.Name, t.server, in.Container.State.ExitCode)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(p.HealthInterval):
		}
	}
}

// drain waits until the old containers have no requests in flight in the proxy, or until
// drainTimeout; the stop that follows sends SIGTERM, which lets the app finish what is left.
func (dp *deployer) drain(ctx context.Context, t *target, p *release.Proxy) {
	if len(t.plan.Old) == 0 {
		return // a first deploy has nothing to drain
	}
	// The proxy counts a request in flight from the moment it picks an upstream, under the lock
	// the switch takes: once the count of the old containers is zero, nothing more reaches them.
	deadline := time.Now().Add(dp.d.Spec.Rollout.DrainTimeout.Duration)
	for time.Now().Before(deadline) {
		inflight, err := t.host.Proxy.InFlight(ctx)
		if err != nil {
			return
		}
		busy := false
		for _, old := range t.plan.Old {
			if inflight[p.Upstream(old.Name)] > 0 {
				busy = true
			}
		}
		if !busy {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// prune removes stopped containers beyond retainContainers, and their images when no other
// container uses them.
func (dp *deployer) prune(ctx context.Context, t *target) error {
	for _, c := range t.plan.Prune {
		if _, err := t.host.Docker.ContainerRemove(ctx, c.ID, dockerclient.ContainerRemoveOptions{}); err != nil && !docker.IsNotFound(err) {
			return fmt.Errorf("pruning %s on %s: %w", c.Name, t.server, err)
		}
		if _, err := t.host.Docker.ImageRemove(ctx, c.Image, dockerclient.ImageRemoveOptions{}); err != nil && !docker.IsNotFound(err) && !docker.IsConflict(err) {
			return fmt.Errorf("pruning image %s on %s: %w", c.Image, t.server, err)
		}
		dp.event(corev1.EventTypeNormal, "Pruned", "removed %s on %s (beyond retainContainers)", c.Name, t.server)
	}
	return nil
}

// isHealthError reports whether err halts the rollout.
func isHealthError(err error) bool {
	var h *healthError
	return errors.As(err, &h)
}

// verifyThroughProxy asks the host's proxy to reach the new container by the name its route
// will use and to get a 2xx from the health check path. The health check before it went to the
// container's address; this one proves the route can work (a name Docker's DNS cannot resolve,
// for one, fails here, while the old container still serves).
func verifyThroughProxy(ctx context.Context, t *target, name string) error {
	p := t.role.Proxy
	upstream := p.Upstream(name)
	deadline := time.Now().Add(max(p.HealthTimeout, 5*time.Second))
	var last string
	for {
		code, err := t.host.Proxy.Probe(ctx, upstream, p.HealthPath, p.HealthTimeout)
		switch {
		case errors.Is(err, proxy.ErrNoProbe):
			return nil // an older proxy image cannot tell; the health check stands
		case err == nil && code >= 200 && code < 300:
			return nil
		case err == nil:
			last = fmt.Sprintf("answer %d", code)
		default:
			last = err.Error()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return &healthError{fmt.Sprintf("the proxy on %s cannot reach %s by the name its route uses (GET %s: %s); the route stays on the running version",
				t.server, upstream, p.HealthPath, last)}
		}
		select {
		case <-ctx.Done():
		case <-time.After(p.HealthInterval):
		}
	}
}
