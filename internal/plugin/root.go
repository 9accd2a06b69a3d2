// Package plugin holds the commands of kubectl-kamal. They read Deployments, Accessories and
// Servers with the user's own Kubernetes credentials (the standard kubeconfig flags) and reach
// hosts the way the controller does: the Server's key Secret, host keys verified against the
// Server's pinned or recorded keys, the Docker Engine API over one SSH connection per host.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// Options are what every command shares: the kubeconfig flags and the terminal.
type Options struct {
	Flags   *genericclioptions.ConfigFlags
	Streams genericiooptions.IOStreams
}

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(kamalv1.AddToScheme(scheme))
}

// NewCommand is `kubectl kamal` with its subcommands.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{Flags: genericclioptions.NewConfigFlags(true), Streams: streams}
	root := &cobra.Command{
		Use:   "kubectl-kamal",
		Short: "Day-to-day commands for apps run by kamal-operator: status, logs, exec, shell, rollback, import",
		Long: `kubectl kamal works with kamal-operator's Deployments and Accessories from the terminal.

Commands that reach hosts (logs, exec, shell) read the Server objects and their SSH key Secrets
with your own Kubernetes credentials and connect the way the controller does: host keys are
verified against the Server's pinned or recorded keys, and Docker is driven through its Engine
API over one SSH connection per host. Reading a Server's key Secret amounts to root on its
hosts: these commands are for the team that owns the Servers.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Help and usage say "kubectl kamal", as users type it.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl kamal"},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	o.Flags.AddFlags(root.PersistentFlags())
	for _, add := range commands {
		root.AddCommand(add(o))
	}
	return root
}

// commands are the subcommands; each file adds its own in an init function.
var commands []func(*Options) *cobra.Command

// ExitError ends the process with Code and nothing printed: the exit code of a command run
// on a host, passed through as kubectl exec does.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit code %d", e.Code) }

// Main runs cmd and returns the process's exit code: a command's own exit code, or 1 with the
// error printed.
func Main(cmd *cobra.Command, streams genericiooptions.IOStreams) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cmd.ExecuteContext(ctx)
	var exit *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.Code
	default:
		fmt.Fprintln(streams.ErrOut, "error:", explain(err))
		return 1
	}
}

// Namespace is the namespace of the command: -n, else the kubeconfig context's.
func (o *Options) Namespace() (string, error) {
	ns, _, err := o.Flags.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// Client is a client with the user's credentials, reading from the API server directly.
func (o *Options) Client() (client.Client, error) {
	cfg, err := o.Flags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}
