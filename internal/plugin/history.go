package plugin

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func init() { commands = append(commands, newHistoryCommand) }

func newHistoryCommand(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "history DEPLOYMENT",
		Short: "List the versions a Deployment has rolled out, newest first",
		Long: `history lists status.history: each image the Deployment rolled out to every target, with
its version and when the rollout completed. The one serving now is marked with *. Any of them
can be rolled back to with kubectl kamal rollback DEPLOYMENT VERSION while the hosts retain it
(spec.retainContainers); an older one is pulled again.`,
		Example: `  kubectl kamal history dokuya`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, d, err := getDeployment(cmd, o, args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(o.Streams.Out, renderHistory(d, time.Now()))
			return err
		},
	}
}

// renderHistory is the history table of d at now. The marked entry is the newest of the image
// serving (status.image); a spec.image not yet serving everywhere is said below the table.
func renderHistory(d *kamalv1.Deployment, now time.Time) string {
	var b strings.Builder
	if len(d.Status.History) == 0 {
		fmt.Fprintf(&b, "deployment %s has no completed rollout yet", d.Name)
		if d.Spec.Image != "" {
			fmt.Fprintf(&b, " (rolling out %s)", d.Spec.Image)
		}
		b.WriteString("\n")
		return b.String()
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tVERSION\tIMAGE\tDEPLOYED AT\tAGE")
	marked := false
	for _, h := range d.Status.History {
		mark := ""
		if !marked && h.Image == d.Status.Image {
			mark, marked = "*", true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", mark, h.Version, h.Image, h.DeployedAt.UTC().Format(time.RFC3339), age(h.DeployedAt.Time, now))
	}
	_ = tw.Flush()
	if d.Spec.Image != d.Status.Image {
		fmt.Fprintf(&b, "\nspec.image is %s: rolling out, or halted (see kubectl kamal status %s)\n", d.Spec.Image, d.Name)
	}
	return b.String()
}

// age is how long ago t was, as kubectl prints ages; <unknown> for no time.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}
