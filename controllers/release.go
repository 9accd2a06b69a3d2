package controllers

// The release phase: spec.rollout.release runs one container of each new revision (database
// migrations, say) before any host switches to it, once per revision, and halts the rollout
// when it fails — Heroku's release phase, and what Kamal leaves to a pre-deploy hook on a
// laptop. The container is made in the background by a targetOps operation and found again
// by its deterministic name and labels, so a controller killed mid-release waits for the same
// run after its restart instead of starting a second one.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	dockerclient "github.com/moby/moby/client"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/conditions"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/internal/metrics"
	"github.com/kamal-operator/kamal-operator/internal/oneoff"
	"github.com/kamal-operator/kamal-operator/internal/release"
)

const (
	defaultReleaseTimeout = 10 * time.Minute
	// releasedLimit bounds status.releasedRevisions.
	releasedLimit = 20
	// The failure message keeps the last lines of the output, bounded.
	releaseTailLines = 20
	releaseTailBytes = 2 << 10
	// releaseLogLines is how much output is read to cut the tail from: whole lines, so a
	// secret value is redacted before anything is cut.
	releaseLogLines = 200
	// redactedMarker replaces every Secret value in the output the controller reports.
	redactedMarker = "[redacted]"
	releasePoll    = 500 * time.Millisecond
)

// releaseOpKey is the operation of a Deployment's release. Its role is empty, which no role
// of a spec can be (role names are non-empty DNS labels), so it never meets a deploy's key.
func releaseOpKey(d *kamalv1.Deployment) opKey {
	return opKey{Namespace: d.Namespace, Deployment: d.Name, Role: "", Server: "release"}
}

// releaseRole is the role whose env, volumes and servers the release uses.
func releaseRole(d *kamalv1.Deployment) string {
	if r := d.Spec.Rollout.Release; r != nil && r.Role != "" {
		return r.Role
	}
	return d.Spec.PrimaryRole
}

func releaseTimeout(r *kamalv1.ReleaseCommand) time.Duration {
	if r.Timeout != nil && r.Timeout.Duration > 0 {
		return r.Timeout.Duration
	}
	return defaultReleaseTimeout
}

// releaseRevision identifies one release: the rollout revision (image, env with Secret
// values, every role's container spec, spec.restartedAt) and the release command itself, so
// a fixed command is run again while a rollback to a released revision is not.
func releaseRevision(revision string, r *kamalv1.ReleaseCommand, role string) string {
	cmd, _ := json.Marshal(r.Cmd)
	sum := sha256.Sum256(fmt.Appendf(nil, "release-v1;%s;%s;%s;%s", revision, role, cmd, releaseTimeout(r)))
	return hex.EncodeToString(sum[:])[:16]
}

// releaseAction is what the release phase does next.
type releaseAction int

const (
	releaseProceed  releaseAction = iota // nothing to run, or it succeeded: the rollout goes on
	releaseWait                          // it runs: the rollout waits
	releaseStart                         // start it (or wait again for a run a restart lost) on a server
	releaseHalted                        // it failed for this revision: the rollout halts
	releaseNoServer                      // no Ready, connected server of the role to run it on
)

// releaseInput is what decideRelease needs.
type releaseInput struct {
	Revision string // releaseRevision
	// Pending: some target does not run the revision yet, so a switch lies ahead.
	Pending  bool
	Released []string
	Last     *kamalv1.ReleaseStatus
	// Running: the release operation of this revision runs in this process.
	Running bool
	// Candidates are the role's Ready and connected servers, in order of preference.
	Candidates []string
	// Connected are all connected servers.
	Connected []string
}

// decideRelease is the release phase's decision: pure, so every case is tested without hosts.
func decideRelease(in releaseInput) (releaseAction, string) {
	switch {
	case slices.Contains(in.Released, in.Revision):
		return releaseProceed, ""
	case in.Running:
		return releaseWait, ""
	}
	if l := in.Last; l != nil && l.Revision == in.Revision {
		switch l.Phase {
		case kamalv1.ReleaseSucceeded:
			return releaseProceed, ""
		case kamalv1.ReleaseFailed:
			return releaseHalted, ""
		case kamalv1.ReleaseRunning:
			// Started before a restart: wait for that run where it was made. While its host
			// cannot be seen, nothing starts elsewhere: it may still be running there.
			if l.Server != "" && !slices.Contains(in.Connected, l.Server) {
				return releaseNoServer, l.Server
			}
			return releaseStart, l.Server
		}
	}
	if !in.Pending {
		return releaseProceed, ""
	}
	if len(in.Candidates) == 0 {
		return releaseNoServer, ""
	}
	return releaseStart, in.Candidates[0]
}

// recordReleased puts revision first in the list of released revisions, bounded.
func recordReleased(list []string, revision string) []string {
	out := []string{revision}
	for _, r := range list {
		if r != revision && len(out) < releasedLimit {
			out = append(out, r)
		}
	}
	return out
}

// redactSecrets replaces every Secret value in out by a marker, longest first (a value that
// contains another is replaced whole), and each line of a multi-line value too. Empty values
// are skipped.
func redactSecrets(out string, secrets []string) string {
	var vals []string
	for _, s := range secrets {
		if s == "" {
			continue
		}
		vals = append(vals, s)
		if strings.ContainsAny(s, "\r\n") {
			for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
				if len(strings.TrimSpace(line)) >= 4 {
					vals = append(vals, line)
				}
			}
		}
	}
	sort.SliceStable(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	for _, v := range vals {
		out = strings.ReplaceAll(out, v, redactedMarker)
	}
	return out
}

// outputTail is the last lines of out, at most maxBytes (a cut one starts with '…').
func outputTail(out string, lines, maxBytes int) string {
	out = strings.TrimRight(out, "\n")
	all := strings.Split(out, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	tail := strings.Join(all, "\n")
	if len(tail) > maxBytes {
		const cut = "…"
		tail = cut + strings.ToValidUTF8(tail[len(tail)-maxBytes+len(cut):], "")
	}
	return tail
}

// releaseOutcome is what a release operation found at its end.
type releaseOutcome struct {
	Revision, Server, Container string
	ExitCode                    int
	TimedOut                    bool
	Started, Finished           time.Time
	// Tail is the end of its output, Secret values redacted.
	Tail string
}

// releaseFailed is a release that ran and failed: retrying the same revision will not help.
type releaseFailed struct{ o releaseOutcome }

func (e *releaseFailed) Error() string {
	why := fmt.Sprintf("exited with code %d", e.o.ExitCode)
	if e.o.TimedOut {
		why = "did not finish within its timeout and was killed"
	}
	msg := fmt.Sprintf("release %s on %s %s", e.o.Container, e.o.Server, why)
	if e.o.Tail != "" {
		msg += "; last output:\n" + e.o.Tail
	}
	return msg
}

// releaseOutcomes keeps the outcome of each Deployment's last release operation for the
// reconcile that takes it in.
type releaseOutcomes struct {
	mu sync.Mutex
	m  map[types.NamespacedName]releaseOutcome
}

func (o *releaseOutcomes) put(k types.NamespacedName, v releaseOutcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[types.NamespacedName]releaseOutcome{}
	}
	o.m[k] = v
}

func (o *releaseOutcomes) take(k types.NamespacedName, revision string) (releaseOutcome, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	v, ok := o.m[k]
	if ok {
		delete(o.m, k)
	}
	return v, ok && v.Revision == revision
}

// releasePending says whether some reachable target of the Deployment does not run its
// role's container of this spec yet: a switch lies ahead.
func releasePending(s *deploymentScope) bool {
	for name, role := range s.roles {
		hash := role.Hash(string(s.d.UID))
		for _, server := range s.placed[name] {
			if s.hosts[server] == nil {
				continue
			}
			if !slices.ContainsFunc(s.observed[server][name], func(o release.Observed) bool { return o.Running && o.Hash == hash }) {
				return true
			}
		}
	}
	return false
}

// release runs spec.rollout.release for a new revision before the rollout phase may switch
// any host to it. It never waits for the container: the operation runs in the background and
// wakes the Deployment when it ends.
func (r *DeploymentReconciler) release(ctx context.Context, s *deploymentScope) (*ctrl.Result, error) {
	d := s.d
	spec := d.Spec.Rollout.Release
	if spec == nil {
		return nil, nil
	}
	roleName := releaseRole(d)
	role := s.roles[roleName]
	if role == nil {
		return s.stall(&refProblem{Reason: kamalv1.ReasonInvalidSpec, Message: fmt.Sprintf("rollout.release.role %q is not a role of the spec", roleName)})
	}
	rev := releaseRevision(s.revision, spec, roleName)
	key := releaseOpKey(d)
	r.ops.Cancel(key, rev) // a release of an older revision stops waiting; its container is found later
	st, haveOp := r.ops.Get(key)
	if haveOp && !st.Running {
		if st.Hash == rev {
			if o, ok := r.releases.take(deploymentKey(d), rev); ok {
				r.recordOutcome(d, o)
			} else if st.Err != nil && d.Status.Release != nil && d.Status.Release.Revision == rev {
				// It could not run (a pull, the host): retried with backoff.
				if left := retryBackoff(st.Fails) - time.Since(st.Finished); left > 0 {
					s.releaseHold = "release: retrying after " + st.Err.Error()
					s.busy = true
					s.requeueIn(left)
					return nil, nil
				}
			}
		}
		r.ops.Forget(key)
	}

	in := releaseInput{Revision: rev, Pending: releasePending(s), Released: d.Status.ReleasedRevisions, Last: d.Status.Release,
		Running: haveOp && st.Running && st.Hash == rev}
	for server := range s.hosts {
		in.Connected = append(in.Connected, server)
	}
	sort.Strings(in.Connected)
	for _, server := range s.placed[roleName] {
		if s.hosts[server] == nil {
			continue
		}
		var srv kamalv1.Server
		if err := r.Get(ctx, serverKeyOf(d.Namespace, server), &srv); err != nil {
			continue
		}
		if conditions.IsReady(srv.Status.Conditions, srv.Generation) {
			in.Candidates = append(in.Candidates, server)
		}
	}
	action, server := decideRelease(in)
	version := release.Version(d.Spec.Image)
	switch action {
	case releaseProceed:
		return nil, nil
	case releaseHalted:
		msg := "release failed"
		if d.Status.Release != nil && d.Status.Release.Message != "" {
			msg = d.Status.Release.Message
		}
		s.releaseFailed = msg + "; rollout halted before any switch, the running version keeps serving; change the spec (or spec.restartedAt) to retry"
		return nil, nil
	case releaseNoServer:
		if server != "" {
			s.releaseHold = fmt.Sprintf("release of %s: waiting for %s, where it was started, to be reachable", version, server)
		} else {
			s.releaseHold = fmt.Sprintf("release of %s: waiting for a Ready server of role %s", version, roleName)
		}
		s.busy = true
		s.requeueIn(10 * time.Second)
		return nil, nil
	case releaseWait:
		s.releaseHold = fmt.Sprintf("running the release of %s", version)
		s.busy = true
		return nil, nil
	}
	name := role.ReleaseContainerName(rev)
	secrets, err := r.secretValues(ctx, d, roleName)
	if err != nil {
		return nil, err
	}
	run := &releaseRun{
		d: d.DeepCopy(), role: role, revision: rev, cmd: spec.Cmd, timeout: releaseTimeout(spec), name: name,
		server: server, hosts: maps.Clone(s.hosts), pull: s.pull, secrets: secrets, r: r,
	}
	if r.ops.Start(key, rev, run.op) {
		if l := d.Status.Release; l == nil || l.Revision != rev || l.Phase != kamalv1.ReleaseRunning {
			d.Status.Release = &kamalv1.ReleaseStatus{Revision: rev, Image: d.Spec.Image, Server: server, Container: name,
				Phase: kamalv1.ReleaseRunning, StartedAt: &metav1.Time{Time: time.Now()}}
		}
	} else {
		s.requeueIn(time.Second) // the operation of an older revision is still ending
	}
	s.releaseHold = fmt.Sprintf("running the release of %s on %s", version, server)
	s.busy = true
	return nil, nil
}

// deploymentKey names a Deployment in maps.
func deploymentKey(d *kamalv1.Deployment) types.NamespacedName {
	return types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
}

// recordOutcome writes a finished release into status, with an event.
func (r *DeploymentReconciler) recordOutcome(d *kamalv1.Deployment, o releaseOutcome) {
	code := int32(o.ExitCode)
	st := &kamalv1.ReleaseStatus{Revision: o.Revision, Image: d.Spec.Image, Server: o.Server, Container: o.Container, ExitCode: &code}
	if !o.Started.IsZero() {
		st.StartedAt = &metav1.Time{Time: o.Started}
	}
	if !o.Finished.IsZero() {
		st.FinishedAt = &metav1.Time{Time: o.Finished}
	}
	if o.ExitCode == 0 && !o.TimedOut {
		st.Phase = kamalv1.ReleaseSucceeded
		d.Status.ReleasedRevisions = recordReleased(d.Status.ReleasedRevisions, o.Revision)
		r.Recorder.Eventf(d, nil, corev1.EventTypeNormal, "Released", "Release", "release %s of %s on %s succeeded in %s",
			o.Container, release.Version(d.Spec.Image), o.Server, o.Finished.Sub(o.Started).Round(time.Millisecond))
	} else {
		st.Phase = kamalv1.ReleaseFailed
		st.Message = (&releaseFailed{o}).Error()
		metrics.RolloutHalted(d.Namespace, d.Name, o.Revision, "release")
		r.Recorder.Eventf(d, nil, corev1.EventTypeWarning, kamalv1.ReasonReleaseFailed, "Release", "%s; rollout halted, the running version keeps serving", st.Message)
	}
	d.Status.Release = st
}

// secretValues are the values of the role's env that come from Secrets, for redaction.
func (r *DeploymentReconciler) secretValues(ctx context.Context, d *kamalv1.Deployment, role string) ([]string, error) {
	env := newEnvResolver(r.Client, d.Namespace)
	var out []string
	spec := d.Spec.Roles[role]
	for _, envFrom := range [][]kamalv1.EnvFromSource{d.Spec.EnvFrom, spec.EnvFrom} {
		for _, ef := range envFrom {
			if ef.SecretRef == nil {
				continue
			}
			s, err := env.secret(ctx, ef.SecretRef.Name)
			if err != nil {
				return nil, err
			}
			if s != nil {
				for _, v := range s.Data {
					out = append(out, string(v))
				}
			}
		}
	}
	for _, list := range [][]kamalv1.EnvVar{d.Spec.Env, spec.Env} {
		for _, e := range list {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				continue
			}
			s, err := env.secret(ctx, e.ValueFrom.SecretKeyRef.Name)
			if err != nil {
				return nil, err
			}
			if s != nil {
				out = append(out, string(s.Data[e.ValueFrom.SecretKeyRef.Key]))
			}
		}
	}
	return out, nil
}

// releaseRun is one release operation, with its own copy of what it reads.
type releaseRun struct {
	d        *kamalv1.Deployment
	role     *release.Role
	revision string
	cmd      []string
	timeout  time.Duration
	name     string
	server   string                 // where a new container is made
	hosts    map[string]*fleet.Host // where one made before is looked for
	pull     docker.Pull
	secrets  []string
	r        *DeploymentReconciler
}

func (rr *releaseRun) event(typ, reason, format string, args ...any) {
	rr.r.Recorder.Eventf(rr.d, nil, typ, reason, "Release", format, args...)
}

// op finds the revision's release container (made before a restart, on any host) or makes
// it, waits for it to exit, and records the outcome. It returns a *releaseFailed for a
// non-zero exit or a timeout, another error when the release could not run.
func (rr *releaseRun) op(ctx context.Context, step func(opStep)) error {
	server, id, err := rr.find(ctx)
	if err != nil {
		return err
	}
	if id == "" {
		if err := rr.clearOlder(ctx, step); err != nil {
			return err
		}
		step(stepPulling)
		server = rr.server
		if id, err = rr.create(ctx); err != nil {
			return err
		}
	}
	h := rr.hosts[server]
	step("releasing")
	o, err := rr.wait(ctx, h, server, id)
	if err != nil {
		return err
	}
	rr.r.releases.put(deploymentKey(rr.d), o)
	if o.ExitCode != 0 || o.TimedOut {
		return &releaseFailed{o}
	}
	return nil
}

// find looks for the revision's release container on every connected host, the chosen one
// first.
func (rr *releaseRun) find(ctx context.Context) (string, string, error) {
	servers := []string{rr.server}
	for s := range rr.hosts {
		if s != rr.server {
			servers = append(servers, s)
		}
	}
	sort.Strings(servers[1:])
	f := oneoff.ReleaseFilters(rr.d.Namespace, rr.d.Name).Add("label", oneoff.LabelRevision+"="+rr.revision)
	for _, s := range servers {
		h := rr.hosts[s]
		if h == nil {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, hostReadTimeout)
		res, err := h.Docker.ContainerList(lctx, dockerclient.ContainerListOptions{All: true, Filters: f})
		cancel()
		if err != nil {
			return "", "", fmt.Errorf("listing release containers on %s: %w", s, err)
		}
		if len(res.Items) > 0 {
			return s, res.Items[0].ID, nil
		}
	}
	return "", "", nil
}

// clearOlder removes the release containers of other revisions (kept for their logs until
// now). One still running is waited for, up to this release's timeout, then removed.
func (rr *releaseRun) clearOlder(ctx context.Context, step func(opStep)) error {
	deadline := time.Now().Add(rr.timeout)
	for {
		running := ""
		for s, h := range rr.hosts {
			n, busy, err := removeReleases(ctx, h, rr.d.Namespace, rr.d.Name, rr.revision, time.Now().After(deadline))
			if err != nil {
				return fmt.Errorf("on %s: %w", s, err)
			}
			if busy != "" {
				running = busy + " on " + s
			}
			_ = n
		}
		if running == "" {
			return nil
		}
		step(opStep("waiting for the earlier release " + running + " to end"))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// removeReleases removes a Deployment's release containers on h, but the one of keep. A
// running one is left (its name returned) unless force. It returns how many it removed.
func removeReleases(ctx context.Context, h *fleet.Host, namespace, deployment, keep string, force bool) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, hostWriteTimeout)
	defer cancel()
	res, err := h.Docker.ContainerList(ctx, dockerclient.ContainerListOptions{All: true, Filters: oneoff.ReleaseFilters(namespace, deployment)})
	if err != nil {
		return 0, "", err
	}
	n, running := 0, ""
	for _, c := range res.Items {
		if keep != "" && c.Labels[oneoff.LabelRevision] == keep {
			continue
		}
		if c.State == container.StateRunning && !force {
			running = containerName(c.Names)
			continue
		}
		if _, err := h.Docker.ContainerRemove(ctx, c.ID, dockerclient.ContainerRemoveOptions{Force: true}); err != nil && !docker.IsNotFound(err) {
			return n, running, fmt.Errorf("removing release container %s: %w", containerName(c.Names), err)
		}
		n++
	}
	return n, running, nil
}

// create pulls the image with the Deployment's credentials and makes and starts the release
// container on the namespace's network (made when missing: a first deploy has none yet).
func (rr *releaseRun) create(ctx context.Context) (string, error) {
	h := rr.hosts[rr.server]
	if h == nil {
		return "", fmt.Errorf("server %s is not connected", rr.server)
	}
	pctx, cancel := context.WithTimeout(ctx, pullTimeout)
	pulled, err := docker.EnsureImageFor(pctx, h.Docker, rr.role.Image, rr.pull)
	cancel()
	if err != nil {
		return "", classifyPull(fmt.Errorf("on %s: %w", rr.server, err))
	}
	if pulled {
		rr.event(corev1.EventTypeNormal, "Pulled", "pulled %s on %s", rr.role.Image, rr.server)
	}
	opts, err := rr.role.ReleaseOptions(rr.name, rr.revision, rr.cmd)
	if err != nil {
		return "", err
	}
	id, err := func() (string, error) {
		_, unlock, err := joinNetwork(ctx, h, rr.role.Namespace)
		if err != nil {
			return "", fmt.Errorf("on %s: %w", rr.server, err)
		}
		defer unlock()
		res, err := h.Docker.ContainerCreate(ctx, opts)
		if docker.IsConflict(err) {
			// Made by a run this process lost track of, or someone else's container.
			in, ierr := h.Docker.ContainerInspect(ctx, rr.name, dockerclient.ContainerInspectOptions{})
			if ierr == nil && in.Container.Config != nil && docker.Owned(in.Container.Config.Labels, oneoff.ReleaseLabels(rr.d.Namespace, rr.d.Name, rr.revision)) {
				return in.Container.ID, nil
			}
			return "", fmt.Errorf("creating release container %s on %s: the name is taken by a container that is not this release", rr.name, rr.server)
		}
		if err != nil {
			return "", fmt.Errorf("creating release container %s on %s: %w", rr.name, rr.server, err)
		}
		return res.ID, nil
	}()
	if err != nil {
		return "", err
	}
	rr.event(corev1.EventTypeNormal, "ReleaseStarted", "running release %s (%s) on %s", rr.name, strings.Join(rr.cmd, " "), rr.server)
	return id, nil
}

// wait starts the container if it was made but never started, waits until it exits or its
// timeout passes (counted from its start, also across a restart; then it is killed), and
// reads its exit code and the end of its output.
func (rr *releaseRun) wait(ctx context.Context, h *fleet.Host, server, id string) (releaseOutcome, error) {
	o := releaseOutcome{Revision: rr.revision, Server: server, Container: rr.name}
	for {
		in, err := h.Docker.ContainerInspect(ctx, id, dockerclient.ContainerInspectOptions{})
		if err != nil {
			return o, fmt.Errorf("inspecting release container on %s: %w", server, err)
		}
		c := in.Container
		o.Container = strings.TrimPrefix(c.Name, "/")
		st := c.State
		if st == nil {
			return o, fmt.Errorf("release container on %s has no state", server)
		}
		started, _ := time.Parse(time.RFC3339Nano, st.StartedAt)
		switch {
		case st.Status == container.StateCreated:
			if _, err := h.Docker.ContainerStart(ctx, id, dockerclient.ContainerStartOptions{}); err != nil {
				return o, fmt.Errorf("starting release container on %s: %w", server, err)
			}
			continue
		case !st.Running && !st.Restarting:
			o.ExitCode = st.ExitCode
			o.Started = started
			o.Finished, _ = time.Parse(time.RFC3339Nano, st.FinishedAt)
			if o.ExitCode != 0 || o.TimedOut {
				o.Tail = rr.tail(ctx, h, id)
			}
			return o, nil
		case !started.IsZero() && time.Since(started) > rr.timeout && !o.TimedOut:
			o.TimedOut = true
			if _, err := h.Docker.ContainerKill(ctx, id, dockerclient.ContainerKillOptions{Signal: "KILL"}); err != nil && !docker.IsNotFound(err) {
				return o, fmt.Errorf("killing release container on %s after its timeout: %w", server, err)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return o, ctx.Err()
		case <-time.After(releasePoll):
		}
	}
}

// tail reads the end of the container's output, redacted.
func (rr *releaseRun) tail(ctx context.Context, h *fleet.Host, id string) string {
	ctx, cancel := context.WithTimeout(ctx, hostReadTimeout)
	defer cancel()
	rc, err := h.Docker.ContainerLogs(ctx, id, dockerclient.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(releaseLogLines)})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var buf bytes.Buffer
	lw := &limitWriter{w: &buf, n: 256 << 10}
	if _, err := stdcopy.StdCopy(lw, lw, rc); err != nil && !errors.Is(err, errLimit) && buf.Len() == 0 {
		return ""
	}
	return outputTail(redactSecrets(buf.String(), rr.secrets), releaseTailLines, releaseTailBytes)
}

var errLimit = errors.New("output limit reached")

// limitWriter keeps at most n bytes.
type limitWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		_, _ = l.w.Write(p[:l.n])
		l.n = 0
		return 0, errLimit
	}
	l.n -= len(p)
	return l.w.Write(p)
}
