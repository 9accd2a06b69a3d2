package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	dockerclient "github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/kamal-operator/kamal-operator/internal/accessory"
	"github.com/kamal-operator/kamal-operator/internal/logmerge"
)

func init() { commands = append(commands, newLogsCommand) }

// defaultTail is Kamal's: the last 100 lines of each container, unless --since or --grep say
// which lines are wanted.
const defaultTail = 100

type logsOptions struct {
	*Options
	role, server string
	follow       bool
	since        string
	tail         int
	grep         string
	timestamps   bool
	release      bool
}

func newLogsCommand(o *Options) *cobra.Command {
	lo := &logsOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "logs DEPLOYMENT|ACCESSORY",
		Short: "Show the logs of a Deployment's or Accessory's containers on every host",
		Long: `Show the logs of the workload's current container on each of its servers (each role of a
Deployment on each server), merged, each line prefixed with the server and the role.

The current container is the running one, else the newest. Its stdout and stderr both go to
stdout, as with kamal app logs. Without --tail, --since or --grep, the last 100 lines of each
container are shown.

With -f the logs are followed: when a deploy starts a new container (a new version, a restart),
its lines follow without restarting the command; the old container's end when it stops.

With --release, the output of the Deployment's latest release command (spec.rollout.release)
is shown instead: its container is kept, stopped, until the next release starts.`,
		Example: `  kubectl kamal logs myapp
  kubectl kamal logs myapp --role jobs --server web-2 --since 10m
  kubectl kamal logs myapp -f --grep 'status=5[0-9][0-9]'
  kubectl kamal logs accessory/myapp-db --tail 20 --timestamps
  kubectl kamal logs myapp --release`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("tail") {
				lo.tail = -1
				if lo.since == "" && lo.grep == "" {
					lo.tail = defaultTail
				}
			}
			return lo.run(cmd.Context(), args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&lo.role, "role", "", "only this role of the Deployment")
	f.StringVar(&lo.server, "server", "", "only this Server (as the workload names it)")
	f.BoolVarP(&lo.follow, "follow", "f", false, "keep following, across deploys, until interrupted")
	f.StringVar(&lo.since, "since", "", "only lines since a duration ago (10m, 2h) or a time (RFC 3339)")
	f.IntVar(&lo.tail, "tail", defaultTail, "the last N lines of each container, -1 for all; all by default with --since or --grep")
	f.StringVar(&lo.grep, "grep", "", "only lines matching this regular expression (Go syntax)")
	f.BoolVar(&lo.timestamps, "timestamps", false, "show Docker's timestamp of each line")
	f.BoolVar(&lo.release, "release", false, "the output of the Deployment's latest release command")
	return cmd
}

func (lo *logsOptions) run(ctx context.Context, arg string) error {
	var since time.Time
	if lo.since != "" {
		var err error
		if since, err = logmerge.Since(lo.since, time.Now()); err != nil {
			return err
		}
	}
	var grep *regexp.Regexp
	if lo.grep != "" {
		var err error
		if grep, err = regexp.Compile(lo.grep); err != nil {
			return fmt.Errorf("--grep: %w", err)
		}
	}
	ns, err := lo.Namespace()
	if err != nil {
		return err
	}
	c, err := lo.Client()
	if err != nil {
		return err
	}
	w, err := getWorkload(ctx, c, ns, arg)
	if err != nil {
		return err
	}
	if lo.release && lo.role == "" {
		if lo.role, err = releaseRoleOf(w); err != nil {
			return err
		}
	}
	ps, err := w.placements(lo.role, lo.server)
	if err != nil {
		return err
	}

	hs := newHosts(c)
	defer hs.Close()
	hosts, err := lo.connect(ctx, hs, w, ps)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted
		}
		return err
	}

	labels := make([]string, len(ps))
	for i, p := range ps {
		labels[i] = logmerge.Label(p.Server, p.Role)
	}
	labels = logmerge.Pad(labels)
	out := logmerge.NewOutput(lo.Streams.Out, logmerge.Options{Color: colorful(lo.Streams.Out), Grep: grep, Timestamps: lo.timestamps})
	first := dockerclient.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: lo.follow}
	if !since.IsZero() {
		first.Since = logmerge.EngineTime(since)
	}
	if lo.tail >= 0 {
		first.Tail = strconv.Itoa(lo.tail)
	}

	if lo.release {
		return lo.dumpRelease(ctx, w, hosts, ps, out, first)
	}

	failed := 0
	report := func(p placement, err error) {
		if ctx.Err() != nil {
			return
		}
		failed++
		fmt.Fprintf(lo.Streams.ErrOut, "%s: %s\n", p, explain(err))
	}
	reachable := 0
	if !lo.follow {
		// One placement after the other, so each one's lines stay together.
		for i, p := range ps {
			if hosts[i] == nil {
				continue
			}
			reachable++
			if err := lo.dump(ctx, w, hosts[i], p, out, labels[i], i, first); err != nil {
				report(p, err)
			}
			if err := out.Err(); err != nil {
				return err
			}
		}
	} else {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, p := range ps {
			if hosts[i] == nil {
				continue
			}
			reachable++
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := lo.followPlacement(ctx, w, hosts[i], p, out, labels[i], i, first); err != nil {
					mu.Lock()
					report(p, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	switch {
	case ctx.Err() != nil:
		// Interrupted: the normal end of -f.
		return nil
	case out.Err() != nil:
		return out.Err()
	case failed == reachable:
		return fmt.Errorf("no logs could be read from %s", w)
	}
	return nil
}

// connect connects to the hosts of ps at once, one connection per Server, and returns each
// placement's host (nil for a host that could not be reached, which is reported on stderr).
// When none can be reached it returns the error: the only one, or the one every host gave
// (a Secret the user may not read), as it is, so the explanation of it is kept.
func (lo *logsOptions) connect(ctx context.Context, hs *hosts, w *workload, ps []placement) ([]*host, error) {
	hosts := make([]*host, len(ps))
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hosts[i], errs[i] = hs.connect(ctx, w.Object().GetNamespace(), p.Server)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// One failure per Server (a Server's roles share its connection).
	var failed []placement
	var failures []error
	seen := map[string]bool{}
	reached := 0
	for i, p := range ps {
		switch {
		case errs[i] == nil:
			reached++
		case !seen[p.Server]:
			seen[p.Server] = true
			failed = append(failed, p)
			failures = append(failures, errs[i])
		}
	}
	if reached == 0 {
		same := true
		for _, err := range failures[1:] {
			same = same && explain(err) == explain(failures[0])
		}
		if same {
			// Returned as it is: explain finds what it is (a Secret the user may not read).
			return nil, failures[0]
		}
	}
	for i, err := range failures {
		fmt.Fprintf(lo.Streams.ErrOut, "%s: %s\n", failed[i].Server, explain(err))
	}
	if reached == 0 {
		return nil, fmt.Errorf("none of the %d servers of %s could be reached", len(failures), w)
	}
	return hosts, nil
}

// dump writes the logs of the placement's current container.
func (lo *logsOptions) dump(ctx context.Context, w *workload, h *host, p placement, out *logmerge.Output, label string, index int, opts dockerclient.ContainerLogsOptions) error {
	cs, err := h.Docker.ContainerList(ctx, dockerclient.ContainerListOptions{All: true, Filters: w.filters(p.Role)})
	if err != nil {
		return err
	}
	current := logContainers(cs.Items, false)
	if len(current) == 0 {
		return fmt.Errorf("no container of %s on this server", w)
	}
	_, err = streamLogs(ctx, h, current[0].ID, opts, out, label, index)
	return err
}

// followPlacement follows the logs of the placement's current container, and of every
// container of the placement that starts afterwards, until ctx ends. It watches the host's
// Docker events for those starts, over the host's one connection.
func (lo *logsOptions) followPlacement(parent context.Context, w *workload, h *host, p placement, out *logmerge.Output, label string, index int, first dockerclient.ContainerLogsOptions) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	go func() {
		// A lost connection ends this placement, not the others.
		select {
		case <-h.Conn.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	// Watch first, then list: a container started in between is in both, and followed once.
	watching := time.Now()
	evs := h.Docker.Events(ctx, dockerclient.EventsListOptions{Filters: startFilters(w, p.Role)})
	cs, err := h.Docker.ContainerList(ctx, dockerclient.ContainerListOptions{All: true, Filters: w.filters(p.Role)})
	if err != nil {
		return err
	}

	type followed struct {
		active bool
		// again: it started again while its stream was still open.
		again bool
		last  time.Time
	}
	state := map[string]*followed{}
	type ended struct {
		id   string
		last time.Time
		err  error
	}
	done := make(chan ended)
	active := 0
	follow := func(id string, opts dockerclient.ContainerLogsOptions) {
		st := state[id]
		if st == nil {
			st = &followed{}
			state[id] = st
		}
		st.active = true
		active++
		go func() {
			last, err := streamLogs(ctx, h, id, opts, out, label, index)
			done <- ended{id: id, last: last, err: err}
		}()
	}
	// A container seen before resumes after its last line; a new one is shown from its start.
	again := func(id string) dockerclient.ContainerLogsOptions {
		opts := dockerclient.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: true}
		if st := state[id]; st != nil && !st.last.IsZero() {
			opts.Since = logmerge.EngineTime(st.last.Add(time.Nanosecond))
		}
		return opts
	}
	for _, c := range logContainers(cs.Items, true) {
		follow(c.ID, first)
	}
	if active == 0 {
		fmt.Fprintf(lo.Streams.ErrOut, "%s: no container of %s yet; waiting for one to start\n", p, w)
	}

	var backoff time.Duration
	var retry <-chan time.Time
	for ctx.Err() == nil {
		select {
		case m := <-evs.Messages:
			watching, backoff = time.Unix(0, m.TimeNano), 0
			if m.Action != events.ActionStart || m.Actor.Attributes[accessory.LabelSetup] != "" {
				continue
			}
			switch st := state[m.Actor.ID]; {
			case st != nil && st.active:
				st.again = true
			default:
				follow(m.Actor.ID, again(m.Actor.ID))
			}
		case e := <-done:
			active--
			st := state[e.id]
			st.active = false
			if e.last.After(st.last) {
				st.last = e.last
			}
			if e.err != nil && ctx.Err() == nil {
				fmt.Fprintf(lo.Streams.ErrOut, "%s: logs of container %.12s: %s\n", p, e.id, explain(e.err))
			}
			if st.again {
				st.again = false
				follow(e.id, again(e.id))
			}
		case err := <-evs.Err:
			if ctx.Err() != nil {
				break
			}
			select {
			case <-h.Conn.Done():
				cancel() // reported below
				continue
			default:
			}
			// The engine ended the stream (it restarted): watch again, from the last event
			// seen, after a pause that grows while it keeps failing.
			if backoff == 0 {
				fmt.Fprintf(lo.Streams.ErrOut, "%s: docker events: %v; watching again\n", p, err)
			}
			backoff = min(max(2*backoff, time.Second), 30*time.Second)
			evs = dockerclient.EventsResult{}
			retry = time.After(backoff)
		case <-retry:
			retry = nil
			evs = h.Docker.Events(ctx, dockerclient.EventsListOptions{Filters: startFilters(w, p.Role), Since: logmerge.EngineTime(watching)})
		case <-ctx.Done():
		}
	}
	for ; active > 0; active-- {
		<-done
	}
	if parent.Err() == nil {
		// Not interrupted: the connection to the host is gone.
		return errors.New("connection lost")
	}
	return nil
}

// startFilters select the starts of the workload's containers of role.
func startFilters(w *workload, role string) dockerclient.Filters {
	return w.filters(role).Add("type", string(events.ContainerEventType)).Add("event", string(events.ActionStart))
}

// streamLogs writes the logs of container id to out until they end (at once, or when the
// container stops with Follow), and returns the time of the last line.
func streamLogs(ctx context.Context, h *host, id string, opts dockerclient.ContainerLogsOptions, out *logmerge.Output, label string, index int) (time.Time, error) {
	// A container with a TTY has one stream, not multiplexed.
	insp, err := h.Docker.ContainerInspect(ctx, id, dockerclient.ContainerInspectOptions{})
	if err != nil {
		return time.Time{}, err
	}
	rc, err := h.Docker.ContainerLogs(ctx, id, opts)
	if err != nil {
		return time.Time{}, err
	}
	defer rc.Close()
	stdout, stderr := out.Source(label, index), out.Source(label, index)
	if insp.Container.Config != nil && insp.Container.Config.Tty {
		_, err = io.Copy(stdout, rc)
	} else {
		_, err = stdcopy.StdCopy(stdout, stderr, rc)
	}
	stdout.Flush()
	stderr.Flush()
	last := stdout.Last()
	if stderr.Last().After(last) {
		last = stderr.Last()
	}
	if ctx.Err() != nil || out.Err() != nil {
		// Interrupted, or the output is gone: not a problem of this container.
		return last, nil
	}
	return last, err
}

// logContainers are the containers among cs whose logs are shown: the running one (the
// newest of those running), else the newest; with all, every running one (during a deploy
// both the old and the new version run). An accessory's setup containers are not its
// logs.
func logContainers(cs []container.Summary, all bool) []container.Summary {
	var own []container.Summary
	for _, c := range cs {
		if c.Labels[accessory.LabelSetup] == "" {
			own = append(own, c)
		}
	}
	sort.SliceStable(own, func(i, j int) bool {
		if own[i].Created != own[j].Created {
			return own[i].Created > own[j].Created
		}
		return own[i].ID > own[j].ID
	})
	var running []container.Summary
	for _, c := range own {
		if c.State == container.StateRunning || c.State == container.StateRestarting || c.State == container.StatePaused {
			running = append(running, c)
		}
	}
	switch {
	case len(running) > 0 && all:
		return running
	case len(running) > 0:
		return running[:1]
	case len(own) > 0:
		return own[:1]
	}
	return nil
}

// colorful says whether to colour the output: on a terminal, unless NO_COLOR is set
// (no-color.org).
func colorful(w io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
