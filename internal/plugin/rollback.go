package plugin

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func init() { commands = append(commands, newRollbackCommand) }

func newRollbackCommand(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "rollback DEPLOYMENT [VERSION]",
		Short: "Set a Deployment's image back to an earlier version from its history",
		Long: `rollback sets spec.image to a version the Deployment ran before, from status.history
(see kubectl kamal history): by default the one before the current image; VERSION names one
by its version (tag) or its full image. The controller then rolls it out like any other
version, with zero downtime, starting the retained container when the host still has it.

Objects applied by Argo CD or Flux get their image back from Git at the next sync: commit the
rollback to Git too.`,
		Example: `  kubectl kamal rollback dokuya
  kubectl kamal rollback dokuya 2f3c9a1
  kubectl kamal rollback dokuya registry.example.com/dokuya:2f3c9a1`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, d, err := getDeployment(cmd, o, args[0])
			if err != nil {
				return err
			}
			want := ""
			if len(args) == 2 {
				want = args[1]
			}
			what := "deployment " + d.Name
			image, err := rollbackImage(d.Status.History, d.Spec.Image, want)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if image == d.Spec.Image {
				fmt.Fprintf(o.Streams.Out, "%s: image is already %s; nothing changed\n", what, image)
				return nil
			}
			// The test makes the change conditional on the image read, not on every status
			// write since: the rollback was chosen against that image.
			patch, _ := json.Marshal([]map[string]string{
				{"op": "test", "path": "/spec/image", "value": d.Spec.Image},
				{"op": "replace", "path": "/spec/image", "value": image},
			})
			before := d.Spec.Image
			if err := c.Patch(ctx, d, client.RawPatch(types.JSONPatchType, patch)); err != nil {
				now := &kamalv1.Deployment{}
				if gerr := c.Get(ctx, client.ObjectKeyFromObject(d), now); gerr == nil && now.Spec.Image != before {
					return fmt.Errorf("%s: spec.image changed to %s meanwhile; nothing changed (run rollback again to choose from the new history)", what, now.Spec.Image)
				}
				return err
			}
			fmt.Fprintf(o.Streams.Out, "%s: image %s → %s\n", what, before, image)
			warnGitOps(o.Streams.ErrOut, what, d)
			return nil
		},
	}
}

// getDeployment reads the Deployment arg names (NAME or deployment/NAME) in the command's
// namespace, and returns the client it used; an Accessory has no versions to go back to or
// roll.
func getDeployment(cmd *cobra.Command, o *Options, arg string) (client.Client, *kamalv1.Deployment, error) {
	ns, err := o.Namespace()
	if err != nil {
		return nil, nil, err
	}
	c, err := o.Client()
	if err != nil {
		return nil, nil, err
	}
	w, err := getWorkload(cmd.Context(), c, ns, arg)
	if err != nil {
		return nil, nil, err
	}
	if w.Deployment == nil {
		return nil, nil, fmt.Errorf("%s: %s applies to Deployments only", w, cmd.Name())
	}
	return c, w.Deployment, nil
}

// rollbackImage is the image a rollback of a Deployment whose spec.image is current sets,
// from its history (newest first). Without want, it is the entry before current: the previous
// deploy, or the last completed one when current never completed (a failed rollout). want
// names an entry by its full image or its version; a version two images share is ambiguous.
func rollbackImage(history []kamalv1.DeployedImage, current, want string) (string, error) {
	if want == "" {
		i := 0
		for i < len(history) && history[i].Image != current {
			i++
		}
		if i == len(history) { // current never completed: the last that did
			i = -1
		}
		for j := i + 1; j < len(history); j++ {
			if history[j].Image != current {
				return history[j].Image, nil
			}
		}
		return "", fmt.Errorf("no earlier version in status.history to roll back to (%s)", knownVersions(history, current))
	}
	var matches []string
	for _, h := range history {
		if h.Image == want {
			return h.Image, nil
		}
		if h.Version == want && !slices.Contains(matches, h.Image) {
			matches = append(matches, h.Image)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return "", fmt.Errorf("no version or image %q in status.history (%s)", want, knownVersions(history, current))
	default:
		return "", fmt.Errorf("version %q names several images in status.history: %s; give the full image", want, strings.Join(matches, ", "))
	}
}

// knownVersions lists the history for an error: "known: v2 (registry/app:v2, current), v1 (…)".
func knownVersions(history []kamalv1.DeployedImage, current string) string {
	if len(history) == 0 {
		return "the history is empty: no rollout has completed yet"
	}
	var s []string
	seen := map[string]bool{}
	for _, h := range history {
		if seen[h.Image] {
			continue
		}
		seen[h.Image] = true
		e := h.Version + " (" + h.Image
		if h.Image == current {
			e += ", current"
		}
		s = append(s, e+")")
	}
	return "known: " + strings.Join(s, ", ")
}
