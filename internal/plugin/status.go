package plugin

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/release"
)

func init() { commands = append(commands, newStatusCommand) }

// statusEvents is how many of the object's latest events status shows.
const statusEvents = 10

func newStatusCommand(o *Options) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "status DEPLOYMENT|ACCESSORY",
		Short: "Show where a Deployment or Accessory runs, its conditions and its latest events",
		Long: `status shows a Deployment's roles, the Servers each runs on, and the container, version
and state there (an Accessory's Servers and containers), then its conditions and latest events.
It reads the API only: what the controller last saw on the hosts, not the hosts themselves.
Kamal's app details.

With -w it redraws on every change until interrupted: follow a rollout, a restart or a
rollback as it moves from server to server.`,
		Example: `  kubectl kamal status dokuya
  kubectl kamal status accessory/dokuya-postgres
  kubectl kamal status dokuya -w`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, err := o.Namespace()
			if err != nil {
				return err
			}
			cfg, err := o.Flags.ToRESTConfig()
			if err != nil {
				return err
			}
			c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
			if err != nil {
				return err
			}
			s := &statusReader{c: c, ns: ns, arg: args[0], errOut: o.Streams.ErrOut}
			if !follow {
				w, events, err := s.read(cmd.Context())
				if err != nil {
					return err
				}
				_, err = fmt.Fprint(o.Streams.Out, renderStatus(w, events, time.Now()))
				return err
			}
			return s.follow(cmd.Context(), o.Streams.Out)
		},
	}
	cmd.Flags().BoolVarP(&follow, "watch", "w", false, "redraw on every change until interrupted")
	return cmd
}

// statusReader reads what status shows.
type statusReader struct {
	c           client.WithWatch
	ns, arg     string
	errOut      io.Writer
	eventsNoted bool
	// until, when set, ends follow after a drawing for which it says done, or fails.
	until func(*workload) (done bool, err error)
}

// read is the workload and its latest events. Events the user may not list are left out,
// with a note once.
func (s *statusReader) read(ctx context.Context) (*workload, []corev1.Event, error) {
	w, err := getWorkload(ctx, s.c, s.ns, s.arg)
	if err != nil {
		return nil, nil, err
	}
	return w, s.events(ctx, w), ctx.Err()
}

// reread reads the object of w again, and its events.
func (s *statusReader) reread(ctx context.Context, w *workload) (*workload, []corev1.Event, error) {
	obj := w.Object().DeepCopyObject().(client.Object)
	if err := s.c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return nil, nil, err
	}
	n := &workload{}
	switch o := obj.(type) {
	case *kamalv1.Deployment:
		n.Deployment = o
	case *kamalv1.Accessory:
		n.Accessory = o
	}
	return n, s.events(ctx, n), ctx.Err()
}

func (s *statusReader) events(ctx context.Context, w *workload) []corev1.Event {
	var list corev1.EventList
	if err := s.c.List(ctx, &list, client.InNamespace(s.ns), client.MatchingFields{"involvedObject.uid": string(w.Object().GetUID())}); err != nil {
		if ctx.Err() == nil && !s.eventsNoted {
			s.eventsNoted = true
			fmt.Fprintf(s.errOut, "Warning: events left out: %v\n", explain(err))
		}
		return nil
	}
	return list.Items
}

// follow draws the status, then again after each change of the object or its events, until
// ctx ends (Ctrl-C: no error). On a terminal each drawing replaces the last; otherwise they
// follow each other, a blank line apart.
func (s *statusReader) follow(ctx context.Context, out io.Writer) error {
	w, events, err := s.read(ctx)
	if err != nil {
		return err
	}
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	obj := w.Object()
	var list client.ObjectList = &kamalv1.DeploymentList{}
	if w.Accessory != nil {
		list = &kamalv1.AccessoryList{}
	}
	// The watches open before the reading drawn first, so no change falls between them.
	watchObject := func(ctx context.Context) (watch.Interface, error) {
		return s.c.Watch(ctx, list, client.InNamespace(s.ns), client.MatchingFields{"metadata.name": obj.GetName()})
	}
	first, err := watchObject(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	go watchChanges(ctx, first, watchObject, notify)
	watchEvents := func(ctx context.Context) (watch.Interface, error) {
		return s.c.Watch(ctx, &corev1.EventList{}, client.InNamespace(s.ns), client.MatchingFields{"involvedObject.uid": string(obj.GetUID())})
	}
	// Events the user may not watch are read again on the object's changes only.
	if first, err := watchEvents(ctx); err == nil {
		go watchChanges(ctx, first, watchEvents, notify)
	}
	if w, events, err = s.reread(ctx, w); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	terminal := isTerminal(out)
	var last string
	for drawn := 0; ; drawn++ {
		// Ages change on their own: a drawing is new when it differs at a fixed time.
		if key := renderStatus(w, events, time.Time{}); key != last || drawn == 0 {
			last = key
			text := renderStatus(w, events, time.Now())
			switch {
			case terminal:
				text = "\x1b[H\x1b[2J" + text
			case drawn > 0:
				text = "\n" + text
			}
			if _, err := fmt.Fprint(out, text); err != nil {
				return err
			}
		}
		if s.until != nil {
			if done, err := s.until(w); done || err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		// A status write often comes with an event or two: draw them together.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		next, nextEvents, err := s.reread(ctx, w)
		switch {
		case ctx.Err() != nil:
			return nil
		case apierrors.IsNotFound(err):
			return fmt.Errorf("%s was deleted", w)
		case err != nil:
			return err
		}
		w, events = next, nextEvents
	}
}

// watchChanges calls notify on every event of w, then of the watches start opens when the
// server ends the last one, until ctx ends.
func watchChanges(ctx context.Context, w watch.Interface, start func(context.Context) (watch.Interface, error), notify func()) {
	for {
		if w != nil {
			for range w.ResultChan() {
				notify()
			}
			w.Stop()
			// What changed while no watch was open is read again.
			notify()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		w, _ = start(ctx)
	}
}

// isTerminal: out is a terminal, where a drawing may clear the screen.
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Status symbols, as kubectl argo rollouts draws them.
const (
	symHealthy     = "✔"
	symProgressing = "◌"
	symDegraded    = "✖"
	symSuspended   = "॥"
	symUnknown     = "?"
	symUnreachable = "⚠"
)

// overallStatus is the workload's status in a word, with its symbol, and the message that
// explains it (empty when healthy), read as kstatus reads the conditions.
func overallStatus(generation, observed int64, conds []metav1.Condition, suspended bool) (string, string) {
	ready := meta.FindStatusCondition(conds, kamalv1.ConditionReady)
	msg := ""
	if ready != nil && ready.Status != metav1.ConditionTrue {
		msg = ready.Message
	}
	switch {
	case suspended:
		return symSuspended + " Suspended", msg
	case meta.IsStatusConditionTrue(conds, kamalv1.ConditionStalled):
		return symDegraded + " Stalled", meta.FindStatusCondition(conds, kamalv1.ConditionStalled).Message
	case observed < generation:
		return symProgressing + " Progressing", "the controller has not acted on the latest spec yet"
	case meta.IsStatusConditionTrue(conds, kamalv1.ConditionReconciling):
		return symProgressing + " Progressing", msg
	case ready == nil || ready.Status == metav1.ConditionUnknown:
		return symUnknown + " Unknown", msg
	case ready.Status == metav1.ConditionTrue:
		return symHealthy + " Healthy", ""
	default:
		return symDegraded + " Degraded", msg
	}
}

func stateSymbol(s kamalv1.TargetState) string {
	switch s {
	case kamalv1.TargetRunning:
		return symHealthy
	case kamalv1.TargetFailed:
		return symDegraded
	case kamalv1.TargetUnreachable:
		return symUnreachable
	default:
		return symProgressing
	}
}

// treeNode is a line of the tree: name, kind, status, version, info, and its children.
type treeNode struct {
	name, kind, status, version, info string
	children                          []*treeNode
}

// renderStatus is what status prints for w and its events at now (pure: a zero now leaves
// ages out, for comparing drawings).
func renderStatus(w *workload, events []corev1.Event, now time.Time) string {
	obj := w.Object()
	var (
		conds                 []metav1.Condition
		observed              int64
		suspended             bool
		image, serving, ready string
		root                  *treeNode
	)
	if d := w.Deployment; d != nil {
		conds, observed, suspended = d.Status.Conditions, d.Status.ObservedGeneration, d.Spec.Suspend
		image, serving, ready = d.Spec.Image, d.Status.Image, d.Status.ServersReady
		root = deploymentTree(d)
	} else {
		a := w.Accessory
		conds, observed = a.Status.Conditions, a.Status.ObservedGeneration
		image, serving, ready = a.Spec.Image, a.Status.Image, a.Status.ServersReady
		root = accessoryTree(a)
	}
	status, message := overallStatus(obj.GetGeneration(), observed, conds, suspended)
	root.status = status

	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Name:\t%s\n", obj.GetName())
	fmt.Fprintf(tw, "Namespace:\t%s\n", obj.GetNamespace())
	fmt.Fprintf(tw, "Kind:\t%s\n", w.Kind())
	fmt.Fprintf(tw, "Status:\t%s\n", status)
	if message != "" {
		fmt.Fprintf(tw, "Message:\t%s\n", oneLine(message))
	}
	switch {
	case serving == "" || serving == image:
		fmt.Fprintf(tw, "Image:\t%s\n", image)
	default:
		fmt.Fprintf(tw, "Image:\t%s (serving: %s)\n", image, serving)
	}
	if ready == "" {
		ready = "0/0"
	}
	fmt.Fprintf(tw, "Servers:\t%s ready\n", ready)
	_ = tw.Flush()

	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tSTATUS\tVERSION\tINFO")
	writeTree(tw, root, "", "")
	_ = tw.Flush()

	var rows [][]string
	if d := w.Deployment; d != nil && d.Status.TargetsNotListed > 0 {
		// The tree lists only the targets that are not Running: these count them all.
		b.WriteString("\nTargets:\n")
		for _, c := range d.Status.Summary {
			rows = append(rows, []string{c.Role, c.Version, stateSymbol(c.State) + " " + string(c.State), fmt.Sprint(c.Count)})
		}
		writeTable(&b, []string{"ROLE", "VERSION", "STATE", "COUNT"}, rows)
		rows = nil
	}

	b.WriteString("\nConditions:\n")
	for _, c := range conds {
		rows = append(rows, []string{c.Type, string(c.Status), c.Reason, ageAt(c.LastTransitionTime.Time, now), oneLine(c.Message)})
	}
	writeTable(&b, []string{"TYPE", "STATUS", "REASON", "AGE", "MESSAGE"}, rows)

	b.WriteString("\nEvents:\n")
	rows = nil
	for _, e := range latestEvents(events, statusEvents) {
		a := ageAt(eventTime(&e), now)
		if n := eventCount(&e); n > 1 {
			a += fmt.Sprintf(" (x%d)", n)
		}
		rows = append(rows, []string{a, e.Type, e.Reason, oneLine(e.Message)})
	}
	writeTable(&b, []string{"AGE", "TYPE", "REASON", "MESSAGE"}, rows)
	return trimLines(b.String())
}

// writeTable writes rows under header, indented, in aligned columns; <none> without rows.
func writeTable(b *strings.Builder, header []string, rows [][]string) {
	if len(rows) == 0 {
		b.WriteString("  <none>\n")
		return
	}
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	for _, r := range append([][]string{header}, rows...) {
		fmt.Fprintf(tw, "  %s\n", strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

// trimLines drops the padding tabwriter leaves after a row's last non-empty cell.
func trimLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// deploymentTree is the Deployment → its roles (primary first, then removed ones the status
// still lists) → the Servers of each.
func deploymentTree(d *kamalv1.Deployment) *treeNode {
	root := &treeNode{name: "⟳ " + d.Name, kind: "Deployment", version: d.Status.Version}
	primary := d.Spec.PrimaryRole
	if primary == "" {
		primary = "web"
	}
	roles := release.SortedRoles(d.Spec.Roles, primary)
	byRole := map[string][]kamalv1.TargetStatus{}
	for _, t := range d.Status.Targets {
		if _, ok := byRole[t.Role]; !ok && !slices.Contains(roles, t.Role) {
			roles = append(roles, t.Role)
		}
		byRole[t.Role] = append(byRole[t.Role], t)
	}
	for _, r := range roles {
		ts := byRole[r]
		sort.Slice(ts, func(i, j int) bool { return ts[i].Server < ts[j].Server })
		running := 0
		role := &treeNode{name: "# " + r, kind: "Role"}
		if _, ok := d.Spec.Roles[r]; !ok {
			role.info = "removed from the spec"
		}
		for _, t := range ts {
			if t.State == kamalv1.TargetRunning && t.Version == release.Version(d.Spec.Image) {
				running++
			}
			role.children = append(role.children, &treeNode{
				name: "□ " + t.Server, kind: "Server", status: stateSymbol(t.State) + " " + string(t.State),
				version: t.Version, info: joinInfo(t.Container, t.Message),
			})
		}
		total := len(ts)
		if d.Status.TargetsNotListed > 0 {
			// A bounded status: the counts cover the targets the list leaves out.
			running, total = 0, 0
			for _, c := range d.Status.Summary {
				if c.Role != r {
					continue
				}
				total += int(c.Count)
				if c.State == kamalv1.TargetRunning && c.Version == release.Version(d.Spec.Image) {
					running += int(c.Count)
				}
			}
			if more := total - len(ts); more > 0 {
				role.children = append(role.children, &treeNode{name: fmt.Sprintf("… %d more", more), info: "not listed (see Targets)"})
			}
		}
		sym := symHealthy
		if running < total || total == 0 {
			sym = symProgressing
		}
		role.status = fmt.Sprintf("%s %d/%d", sym, running, total)
		root.children = append(root.children, role)
	}
	return root
}

// accessoryTree is the Accessory → its Servers.
func accessoryTree(a *kamalv1.Accessory) *treeNode {
	img := a.Status.Image
	if img == "" {
		img = a.Spec.Image
	}
	root := &treeNode{name: "⟳ " + a.Name, kind: "Accessory", version: release.Version(img)}
	ss := append([]kamalv1.AccessoryServerStatus(nil), a.Status.Servers...)
	sort.Slice(ss, func(i, j int) bool { return ss[i].Server < ss[j].Server })
	for _, s := range ss {
		root.children = append(root.children, &treeNode{
			name: "□ " + s.Server, kind: "Server", status: stateSymbol(s.State) + " " + string(s.State),
			info: joinInfo(s.Container, s.Message),
		})
	}
	if n := a.Status.ServersNotListed; n > 0 {
		root.children = append(root.children, &treeNode{name: fmt.Sprintf("… %d more", n), info: "not listed (Running)"})
	}
	return root
}

// writeTree writes n and its children with unicode branches: prefix is the branch of n's own
// line, indent the one its children's lines continue.
func writeTree(w io.Writer, n *treeNode, prefix, indent string) {
	fmt.Fprintf(w, "%s%s\t%s\t%s\t%s\t%s\n", prefix, n.name, n.kind, n.status, n.version, n.info)
	for i, c := range n.children {
		last := i == len(n.children)-1
		branch, cont := "├──", "│  "
		if last {
			branch, cont = "└──", "   "
		}
		writeTree(w, c, indent+branch, indent+cont)
	}
}

func joinInfo(container, message string) string {
	switch {
	case message == "":
		return container
	case container == "":
		return oneLine(message)
	default:
		return container + ": " + oneLine(message)
	}
}

// oneLine keeps a message on its table row.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// ageAt is age, or nothing for a zero now (a drawing compared, not shown).
func ageAt(t, now time.Time) string {
	if now.IsZero() {
		return ""
	}
	return age(t, now)
}

// eventTime is when an event last happened: events.k8s.io events (the controller's) carry it
// in series or eventTime, core ones in lastTimestamp.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

func eventCount(e *corev1.Event) int32 {
	if e.Series != nil && e.Series.Count > 0 {
		return e.Series.Count
	}
	return e.Count
}

// latestEvents are the n latest of events, oldest first, as kubectl describe lists them.
func latestEvents(events []corev1.Event, n int) []corev1.Event {
	es := append([]corev1.Event(nil), events...)
	sort.SliceStable(es, func(i, j int) bool { return eventTime(&es[i]).Before(eventTime(&es[j])) })
	if len(es) > n {
		es = es[len(es)-n:]
	}
	return es
}
