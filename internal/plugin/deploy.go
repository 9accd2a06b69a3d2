package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func init() { commands = append(commands, newDeployCommand) }

func newDeployCommand(o *Options) *cobra.Command {
	var (
		f       buildFlags
		build   bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "deploy DEPLOYMENT (--build [CONTEXT] | --image IMAGE)",
		Short: "Build a Deployment's image on a builder Server, push it, set it and follow the rollout",
		Long: `deploy --build builds CONTEXT (default ".") on a builder Server as kubectl kamal build does, tagged
with its Git commit, into the repository of the Deployment's spec.image, pushes it with the
Deployment's imagePullSecrets (or --registry-secret), sets spec.image to the new image and
follows the rollout as status -w draws it. Kamal's deploy.

It exits 0 once the Deployment is Ready with the new image, and non-zero when the rollout
stalls or --timeout passes. With --image IMAGE instead of --build it sets that image and
follows, without building.

Objects applied by Argo CD or Flux get their image back from Git at the next sync: commit the
new image to Git too.`,
		Example: `  kubectl kamal deploy dokuya --build
  kubectl kamal deploy dokuya --build --builder build-1 --build-arg RAILS_ENV=production ./app
  kubectl kamal deploy dokuya --image registry.example.com/dokuya:2f3c9a1`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !build && f.image == "" {
				return errors.New("deploy needs --build (build CONTEXT and roll it out) or --image IMAGE (roll out an image built already)")
			}
			if !build && len(args) > 1 {
				return errors.New("a build context is given without --build")
			}
			ctx := cmd.Context()
			c, d, err := getDeployment(cmd, o, args[0])
			if err != nil {
				return err
			}
			image := f.image
			if build {
				ns := d.Namespace
				if image, err = runBuild(ctx, o, c, ns, &f, d, contextArg(args[1:])); err != nil {
					return err
				}
			}
			return deployImage(ctx, o, c, d, image, timeout)
		},
	}
	cmd.Flags().BoolVar(&build, "build", false, "build CONTEXT on a builder Server and push it first")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for the rollout to complete")
	f.add(cmd.Flags(), "with --build: repository to push to (default: spec.image's); without: the image to set")
	return cmd
}

// deployImage sets d's spec.image to image and follows the rollout until the Deployment is
// Ready with it, stalls, or timeout passes.
func deployImage(ctx context.Context, o *Options, c client.Client, d *kamalv1.Deployment, image string, timeout time.Duration) error {
	what := "deployment " + d.Name
	before := d.Spec.Image
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"image": image}})
	if err := c.Patch(ctx, d, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return err
	}
	fmt.Fprintf(o.Streams.ErrOut, "%s: image %s → %s\n", what, before, image)
	warnGitOps(o.Streams.ErrOut, what, d)

	cfg, err := o.Flags.ToRESTConfig()
	if err != nil {
		return err
	}
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	gen := d.Generation // the patch's own generation: Patch updated d
	var outcome error
	done := false
	s := &statusReader{c: wc, ns: d.Namespace, arg: "deployment/" + d.Name, errOut: o.Streams.ErrOut,
		until: func(w *workload) (bool, error) {
			done, outcome = rolloutDone(w.Deployment, gen, image)
			return done, outcome
		}}
	if err := s.follow(fctx, o.Streams.Out); err != nil {
		return err
	}
	switch {
	case done:
		fmt.Fprintf(o.Streams.ErrOut, "%s: %s rolled out\n", what, image)
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%s: interrupted; the rollout of %s goes on (kubectl kamal status %s -w)", what, image, d.Name)
	default:
		return fmt.Errorf("%s: %s not rolled out after %s (kubectl kamal status %s)", what, image, timeout, d.Name)
	}
}

// rolloutDone says whether d has rolled image out for generation gen: Ready with status.image
// at image once the controller observed gen; an error when it is Stalled there.
func rolloutDone(d *kamalv1.Deployment, gen int64, image string) (bool, error) {
	if d == nil || d.Status.ObservedGeneration < gen {
		return false, nil
	}
	// A condition written for an older generation says nothing about this one.
	current := func(t string) bool {
		c := meta.FindStatusCondition(d.Status.Conditions, t)
		return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration >= gen
	}
	if current(kamalv1.ConditionStalled) {
		return false, fmt.Errorf("rollout of %s stalled: %s", image, meta.FindStatusCondition(d.Status.Conditions, kamalv1.ConditionStalled).Message)
	}
	return current(kamalv1.ConditionReady) && d.Status.Image == image, nil
}
