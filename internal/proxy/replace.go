package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
)

// AsideName is where the running proxy waits, stopped, while its replacement starts: it is
// started again under ContainerName when the replacement does not come up, and removed once it
// has. A container of this name on a host is a replacement that was interrupted; Recover
// settles it.
const AsideName = ContainerName + "-previous"

// FailedName holds a replacement that did not come up, stopped, while the old proxy comes back
// and its logs are read; then it is removed.
const FailedName = ContainerName + "-failed"

// stopTimeout is how long (seconds) a proxy being replaced may finish the requests in flight
// before it is killed. Its listeners close at once, so every second of it is a second more of
// refused connections for everyone else: it is short.
const stopTimeout = 2

// Observed is the proxy a host runs.
type Observed struct {
	Exists  bool
	ID      string
	Image   string // the image reference it was created from
	Hash    string // the hash of its settings (Settings.Hash)
	Running bool
	// RestartPolicy of the container ("no" while a replacement is on trial).
	RestartPolicy container.RestartPolicy
	// Aside is a proxy set aside by a replacement that did not finish.
	Aside   bool
	AsideID string
	// Failed is a replacement that did not come up and was not removed yet.
	Failed bool
}

// Observe inspects the proxy containers of a host.
func Observe(ctx context.Context, cli *client.Client) (Observed, error) {
	var o Observed
	cur, err := cli.ContainerInspect(ctx, ContainerName, client.ContainerInspectOptions{})
	switch {
	case err == nil:
		c := cur.Container
		if err := checkProxy(c.Config); err != nil {
			return o, err
		}
		o.Exists, o.ID = true, c.ID
		if c.Config != nil {
			o.Image, o.Hash = c.Config.Image, c.Config.Labels[kamalv1.LabelSpecHash]
		}
		o.Running = c.State != nil && c.State.Running
		if c.HostConfig != nil {
			o.RestartPolicy = c.HostConfig.RestartPolicy
		}
	case !docker.IsNotFound(err):
		return o, err
	}
	others, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("name", ContainerName+"-")})
	if err != nil {
		return o, err
	}
	for _, c := range others.Items {
		if !IsProxy(c.Labels) {
			continue // someone else's kamal-proxy-…: never renamed or removed
		}
		for _, n := range c.Names {
			switch strings.TrimPrefix(n, "/") {
			case AsideName:
				o.Aside, o.AsideID = true, c.ID
			case FailedName:
				o.Failed = true
			}
		}
	}
	return o, nil
}

// RouteState is what a proxy routes: every route id with its upstream ("" for none).
type RouteState map[string]string

// legacyFallbackID is the Caddy route of older proxies that answered 404 for unrouted hosts.
const legacyFallbackID = "kamal-fallback"

// RouteState reads the routes of the proxy's table; of an older proxy, its Caddy routes of the
// route module with their upstreams (what a new proxy imports from its volumes).
func (a *Admin) RouteState(ctx context.Context) (RouteState, error) {
	t, err := a.Routes(ctx)
	if err == nil {
		st := RouteState{}
		for id, r := range t.Routes {
			st[id] = r.Upstream
		}
		return st, nil
	}
	if !errors.Is(err, ErrLegacyProxy) {
		return nil, err
	}
	var routes []struct {
		ID     string `json:"@id"`
		Handle []struct {
			Handler string `json:"handler"`
			Route   string `json:"route"`
		} `json:"handle"`
	}
	if err := a.do(ctx, "GET", "/config/apps/http/servers/"+ServerName+"/routes", nil, &routes); err != nil {
		return nil, err
	}
	upstreams := map[string]string{}
	if err := a.do(ctx, "GET", "/kamal/routes", nil, &upstreams); err != nil {
		return nil, err
	}
	st := RouteState{}
	for _, r := range routes {
		for _, h := range r.Handle {
			if h.Handler == "kamal_route" && r.ID != legacyFallbackID {
				st[h.Route] = upstreams[h.Route]
			}
		}
	}
	return st, nil
}

// Missing lists the routes of s that after lacks ("route <id>") or sends elsewhere
// ("upstream <id>=<upstream>"). A route whose upstream after serves under another id is not
// missing: its owner may take it over under its own id (an older proxy's route) as soon as the
// new proxy answers, before the replacement looks.
func (s RouteState) Missing(after RouteState) []string {
	served := map[string]bool{}
	for _, up := range after {
		if up != "" {
			served[up] = true
		}
	}
	var out []string
	for id, up := range s {
		switch got, ok := after[id]; {
		case ok && got == up:
		case up != "" && served[up]:
		case !ok:
			out = append(out, "route "+id)
		default:
			out = append(out, "upstream "+id+"="+up)
		}
	}
	slices.Sort(out)
	return out
}

// Replaced says how a replacement went.
type Replaced struct {
	OldID, NewID string
	OldImage     string
	Pulled       bool
	// Outage is the time from stopping the old proxy to the new one answering on its admin API
	// with every route restored: the host's published ports are closed meanwhile.
	Outage time.Duration
	// Steps says how the outage was spent ("stop 310ms, start 420ms, up 250ms").
	Steps string
}

// steps times the steps of a replacement.
type steps struct {
	b    strings.Builder
	last time.Time
}

func (s *steps) start() { s.last = time.Now() }

func (s *steps) done(name string) {
	if s == nil {
		return
	}
	now := time.Now()
	if s.b.Len() > 0 {
		s.b.WriteString(", ")
	}
	fmt.Fprintf(&s.b, "%s %s", name, now.Sub(s.last).Round(time.Millisecond))
	s.last = now
}

// PullError is a pull of the new image that failed for a reason a retry may fix (the
// registry did not answer); nothing on the host changed.
type PullError struct {
	Image string
	Err   error
}

func (e *PullError) Error() string { return e.Err.Error() }
func (e *PullError) Unwrap() error { return e.Err }

// UpgradeError is a replacement that a retry with the same settings would repeat: the image
// does not exist, the container cannot be created or started, exits, or does not come up within
// the bound. The old proxy has been started again (Restored) unless RestoreErr says why not.
type UpgradeError struct {
	Image  string
	Reason string
	// ExitCode of the new container when it exited; -1 when it did not.
	ExitCode int
	// LastLog is the last line the new container logged.
	LastLog    string
	Restored   bool
	RestoreErr error
	// Outage is how long the ports were closed, from stopping the old proxy to it answering
	// again; zero when it was never stopped.
	Outage time.Duration
	// Steps says how the outage was spent.
	Steps string
}

func (e *UpgradeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s with image %s %s", ContainerName, e.Image, e.Reason)
	if e.ExitCode >= 0 {
		fmt.Fprintf(&b, " (exit code %d)", e.ExitCode)
	}
	if e.LastLog != "" {
		fmt.Fprintf(&b, "; last log line: %q", e.LastLog)
	}
	switch {
	case e.RestoreErr != nil:
		fmt.Fprintf(&b, "; restoring the old proxy failed: %v", e.RestoreErr)
	case e.Outage > 0:
		fmt.Fprintf(&b, "; the old proxy was restored (ports closed for %s)", e.Outage.Round(time.Millisecond))
	default:
		b.WriteString("; the old proxy was not touched")
	}
	return b.String()
}

// Replace swaps the host's proxy for one with settings s without losing the old one: it pulls
// the image, sets the running proxy aside (renamed to AsideName), creates the new one, stops
// the old, starts the new and waits until its admin API answers with every route the old one
// had. Only then does the old container go. When the new one exits or does not answer within
// `within`, it is removed and the old one is started again under its name (an *UpgradeError).
// Other errors (the connection dropped) can leave the host mid-way: Recover settles it.
func Replace(ctx context.Context, cli *client.Client, admin *Admin, s Settings, within time.Duration) (Replaced, error) {
	if err := docker.EnsureNetwork(ctx, cli, Network); err != nil {
		return Replaced{}, err
	}
	cur, err := Observe(ctx, cli)
	if err != nil {
		return Replaced{}, err
	}
	if cur.Aside {
		return Replaced{}, fmt.Errorf("%s exists: an earlier replacement is unfinished", AsideName)
	}
	// A failed replacement the controller did not get to remove.
	if err := removeIfProxy(ctx, cli, FailedName); err != nil {
		return Replaced{}, err
	}
	res := Replaced{OldID: cur.ID, OldImage: cur.Image}
	fail := func(reason string) (Replaced, error) {
		return res, &UpgradeError{Image: s.Image, Reason: reason, ExitCode: -1, Restored: true}
	}
	if res.Pulled, err = docker.EnsureImage(ctx, cli, s.Image, ""); err != nil {
		if isMissingImage(err) {
			return fail("cannot be pulled: " + err.Error())
		}
		return res, &PullError{Image: s.Image, Err: err}
	}
	opts, err := s.CreateOptions()
	if err != nil {
		return fail("has invalid settings: " + err.Error())
	}
	var before RouteState
	if cur.Running {
		if st, err := admin.RouteState(ctx); err == nil {
			before = st
		}
	}
	if !cur.Exists {
		// Nothing to set aside: a plain create.
		id, err := createProxy(ctx, cli, opts)
		if err == nil {
			res.NewID, err = startProxy(ctx, cli, id, opts)
		}
		return res, err
	}
	if _, err := cli.ContainerRename(ctx, cur.ID, client.ContainerRenameOptions{NewName: AsideName}); err != nil {
		return res, fmt.Errorf("setting the old %s aside: %w", ContainerName, err)
	}
	// On trial, the new one is not restarted by Docker: one that exits stays exited (its exit
	// code and logs at hand), instead of holding the container in a restart loop.
	policy := opts.HostConfig.RestartPolicy
	opts.HostConfig.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyDisabled}
	newID, err := createProxy(ctx, cli, opts)
	if err != nil {
		uerr := &UpgradeError{Image: s.Image, Reason: "cannot be created: " + err.Error(), ExitCode: -1}
		uerr.RestoreErr = restoreAside(context.WithoutCancel(ctx), cli, admin, cur.ID, "", cur.Running, within, nil)
		uerr.Restored = uerr.RestoreErr == nil
		return res, uerr
	}
	res.NewID = newID
	t0 := time.Now()
	var st steps
	st.start()
	if cur.Running {
		timeout := stopTimeout
		if _, err := cli.ContainerStop(ctx, cur.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
			rerr := restoreAside(context.WithoutCancel(ctx), cli, admin, cur.ID, newID, true, within, nil)
			return res, errors.Join(fmt.Errorf("stopping the old %s: %w", ContainerName, err), rerr)
		}
		st.done("stop")
	}
	reason, exitCode := "", -1
	if newID, err = startProxy(ctx, cli, newID, opts); err != nil {
		reason = "cannot be started: " + err.Error()
	} else {
		st.done("start")
		res.NewID = newID
		reason, exitCode = waitUp(ctx, cli, admin, newID, before, false, t0.Add(within), within)
		st.done("up")
	}
	if reason == "" {
		res.Outage, res.Steps = time.Since(t0), st.b.String()
		// A namespace network made while it started, which the old proxy was attached to; on
		// failure the Server's next pass attaches it.
		_ = attachAll(ctx, cli, newID)
		if _, err := cli.ContainerUpdate(ctx, newID, client.ContainerUpdateOptions{RestartPolicy: &policy}); err != nil {
			// The next pass sets it (ApplyRestartPolicy); the new proxy serves meanwhile.
			return res, fmt.Errorf("setting the restart policy of the new %s: %w", ContainerName, err)
		}
		if _, err := cli.ContainerRemove(ctx, cur.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !docker.IsNotFound(err) {
			// The next Recover removes it: the new proxy runs the desired settings.
			return res, fmt.Errorf("removing the old %s: %w", ContainerName, err)
		}
		return res, nil
	}
	uerr := &UpgradeError{Image: s.Image, Reason: reason, ExitCode: exitCode}
	rctx := context.WithoutCancel(ctx)
	// The failed one steps out of the way (its logs read once the old proxy serves again).
	drop := newID
	if newID != "" {
		zero := 0
		if _, err := cli.ContainerRename(rctx, newID, client.ContainerRenameOptions{NewName: FailedName}); err == nil {
			st.done("rename new aside")
			_, _ = cli.ContainerStop(rctx, newID, client.ContainerStopOptions{Timeout: &zero})
			st.done("stop new")
			drop = ""
		} else {
			uerr.LastLog = LastLogLine(rctx, cli, newID) // before restoreAside removes it
		}
	}
	uerr.RestoreErr = restoreAside(rctx, cli, admin, cur.ID, drop, cur.Running, within, &st)
	uerr.Restored = uerr.RestoreErr == nil
	if cur.Running {
		uerr.Outage, uerr.Steps = time.Since(t0), st.b.String()
	}
	if newID != "" && drop == "" {
		uerr.LastLog = LastLogLine(rctx, cli, newID)
		_, _ = cli.ContainerRemove(rctx, newID, client.ContainerRemoveOptions{Force: true})
	}
	return res, uerr
}

// waitUp waits until the new proxy answers with every route of before, and says why not when
// it exits or the deadline passes first.
// An older proxy (ErrLegacyProxy) counts as up only when legacyOK: when it is the old one being
// started again.
func waitUp(ctx context.Context, cli *client.Client, admin *Admin, id string, before RouteState, legacyOK bool, deadline time.Time, within time.Duration) (string, int) {
	var last error
	for {
		ins, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return "could not be inspected: " + err.Error(), -1
		}
		if st := ins.Container.State; st != nil && (!st.Running || st.Restarting) {
			return "exited before its admin API answered", st.ExitCode
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		last = admin.Ready(actx)
		if legacyOK && errors.Is(last, ErrLegacyProxy) {
			last = nil
		}
		if last == nil && before != nil {
			var after RouteState
			if after, last = admin.RouteState(actx); last == nil {
				if missing := before.Missing(after); len(missing) > 0 {
					last = fmt.Errorf("routes not restored: %s", strings.Join(missing, ", "))
				}
			}
		}
		cancel()
		if last == nil {
			return "", -1
		}
		switch {
		case errors.Is(last, ErrNoRouteModule):
			return "lacks the route module of kamal-proxy", -1
		case errors.Is(last, ErrLegacyProxy):
			return "is an older kamal-proxy without the route table (its image lacks kamal_router)", -1
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Sprintf("did not come up within %s: %v", within, last), -1
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Recovered says what Recover did.
type Recovered string

const (
	RecoverNone     Recovered = ""
	RecoverFinished Recovered = "Finished" // the new proxy answered: the old one went
	RecoverRestored Recovered = "Restored" // the old proxy runs again under its name
)

// Recover settles a replacement that was interrupted (the controller stopped mid-way): when a
// proxy with settings s runs and answers within `within`, the one set aside is removed;
// otherwise whatever runs under ContainerName goes and the one set aside comes back. A failed
// replacement left behind is removed. It does nothing when neither is there.
func Recover(ctx context.Context, cli *client.Client, admin *Admin, s Settings, within time.Duration) (Recovered, error) {
	o, err := Observe(ctx, cli)
	if err != nil {
		return RecoverNone, err
	}
	if o.Failed {
		if err := removeIfProxy(ctx, cli, FailedName); err != nil {
			return RecoverNone, err
		}
	}
	if !o.Aside {
		return RecoverNone, nil
	}
	if o.Exists && o.Running && o.Hash == s.Hash() {
		if reason, _ := waitUp(ctx, cli, admin, o.ID, nil, false, time.Now().Add(within), within); reason == "" {
			if _, err := cli.ContainerRemove(ctx, o.AsideID, client.ContainerRemoveOptions{Force: true}); err != nil && !docker.IsNotFound(err) {
				return RecoverNone, err
			}
			return RecoverFinished, nil
		}
	}
	drop := ""
	if o.Exists {
		drop = o.ID
	}
	return RecoverRestored, restoreAside(ctx, cli, admin, o.AsideID, drop, true, within, nil)
}

// restoreAside removes the container drop (when set) and puts the proxy set aside back under
// its name, started when start is set, waiting until it answers.
func restoreAside(ctx context.Context, cli *client.Client, admin *Admin, asideID, drop string, start bool, within time.Duration, st *steps) error {
	ctx, cancel := context.WithTimeout(ctx, within+30*time.Second)
	defer cancel()
	if drop != "" {
		if _, err := cli.ContainerRemove(ctx, drop, client.ContainerRemoveOptions{Force: true}); err != nil && !docker.IsNotFound(err) {
			return fmt.Errorf("removing the new %s: %w", ContainerName, err)
		}
	}
	if _, err := cli.ContainerRename(ctx, asideID, client.ContainerRenameOptions{NewName: ContainerName}); err != nil {
		return fmt.Errorf("renaming %s back: %w", AsideName, err)
	}
	st.done("rename old back")
	if !start {
		return nil
	}
	if _, err := cli.ContainerStart(ctx, asideID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("starting the old %s: %w", ContainerName, err)
	}
	st.done("start old")
	if reason, _ := waitUp(ctx, cli, admin, asideID, nil, true, time.Now().Add(within), within); reason != "" {
		return fmt.Errorf("the old %s %s", ContainerName, reason)
	}
	st.done("old up")
	return nil
}

// ApplyRestartPolicy gives the proxy (o, as observed) the restart policy of settings s when it
// runs with another, as a replacement cut off while on trial does.
func ApplyRestartPolicy(ctx context.Context, cli *client.Client, o Observed, s Settings) (bool, error) {
	opts, err := s.CreateOptions()
	if err != nil || !o.Exists || o.RestartPolicy == opts.HostConfig.RestartPolicy {
		return false, err
	}
	policy := opts.HostConfig.RestartPolicy
	_, err = cli.ContainerUpdate(ctx, o.ID, client.ContainerUpdateOptions{RestartPolicy: &policy})
	return err == nil, err
}

// createProxy creates the proxy container with its initial config, not started.
func createProxy(ctx context.Context, cli *client.Client, opts client.ContainerCreateOptions) (string, error) {
	created, err := cli.ContainerCreate(ctx, opts)
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", ContainerName, err)
	}
	if _, err := cli.CopyToContainer(ctx, created.ID, client.CopyToContainerOptions{DestinationPath: "/", Content: configTar()}); err != nil {
		_, _ = cli.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true})
		return "", fmt.Errorf("writing %s config: %w", ContainerName, err)
	}
	// On every namespace network before it starts: it reaches every app when it takes over.
	if err := attachAll(ctx, cli, created.ID); err != nil {
		_, _ = cli.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true})
		return "", err
	}
	return created.ID, nil
}

// startProxy starts container id and returns its id. On a kernel older than 5.14, which lacks
// the listener migration sysctl, it recreates the container without it and returns the new id.
// A container that does not start is removed ("" returned).
func startProxy(ctx context.Context, cli *client.Client, id string, opts client.ContainerCreateOptions) (string, error) {
	_, err := cli.ContainerStart(ctx, id, client.ContainerStartOptions{})
	if err == nil {
		return id, nil
	}
	_, _ = cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	if !strings.Contains(err.Error(), migrateSysctl) {
		return "", fmt.Errorf("starting %s: %w", ContainerName, err)
	}
	delete(opts.HostConfig.Sysctls, migrateSysctl)
	if id, err = createProxy(ctx, cli, opts); err != nil {
		return "", err
	}
	if _, err := cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		_, _ = cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
		return "", fmt.Errorf("starting %s: %w", ContainerName, err)
	}
	return id, nil
}

// isMissingImage tells a reference the registry does not have from a registry that failed.
func isMissingImage(err error) bool {
	if docker.IsNotFound(err) {
		return true
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "manifest unknown") || strings.Contains(msg, "not found") || strings.Contains(msg, "repository does not exist")
}

// LastLogLine is the last non-empty line container id wrote to stdout or stderr, shortened;
// "" when there is none or the logs cannot be read.
func LastLogLine(ctx context.Context, cli *client.Client, id string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rc, err := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "20"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	raw, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, bytes.NewReader(raw)); err != nil {
		out.Reset()
		out.Write(raw) // a TTY container: not multiplexed
	}
	return lastLine(out.String())
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			if len(l) > 300 {
				l = l[:300] + "…"
			}
			return l
		}
	}
	return ""
}
