package plugin

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func init() { commands = append(commands, newRestartCommand) }

func newRestartCommand(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "restart DEPLOYMENT",
		Short: "Restart every container of a Deployment with a rolling deploy of the same version",
		Long: `restart sets spec.restartedAt to now. The controller then replaces every container of
every role with a new one of the same image, through the normal rollout: health-checked,
batch by batch, the old one draining, so the app keeps answering. Kamal's app boot.

Objects applied by Argo CD or Flux may have the field removed by a sync that replaces the
whole object, which restarts once more: commit the field to Git to keep it.`,
		Example: `  kubectl kamal restart dokuya
  kubectl kamal status dokuya -w     # follow the restart`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, d, err := getDeployment(cmd, o, args[0])
			if err != nil {
				return err
			}
			var prev *time.Time
			if d.Spec.RestartedAt != nil {
				prev = &d.Spec.RestartedAt.Time
			}
			at := restartTime(prev, time.Now())
			patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"restartedAt": at.Format(time.RFC3339)}})
			if err := c.Patch(cmd.Context(), d, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return err
			}
			what := "deployment " + d.Name
			fmt.Fprintf(o.Streams.Out, "%s: restartedAt %s: every container restarts with a rolling deploy of %s\n", what, at.Format(time.RFC3339), d.Spec.Image)
			warnGitOps(o.Streams.ErrOut, what, d)
			return nil
		},
	}
}

// restartTime is the restartedAt to set at now: now in whole seconds (the field's precision),
// or a second after prev when a restart in the same second set it, so the value always changes.
func restartTime(prev *time.Time, now time.Time) time.Time {
	at := now.UTC().Truncate(time.Second)
	if prev != nil && !at.After(*prev) {
		at = prev.UTC().Truncate(time.Second).Add(time.Second)
	}
	return at
}
