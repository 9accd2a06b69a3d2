package plugin

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kamal-operator/kamal-operator/internal/kamalimport"
)

func init() { commands = append(commands, newImportCommand) }

type osFS struct{}

func (osFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

func newImportCommand(o *Options) *cobra.Command {
	var destination, secretsFile, tag string
	cmd := &cobra.Command{
		Use:   "import CONFIG [-d DESTINATION] [--secrets-file FILE] [--tag TAG]",
		Short: "Print the Servers, Deployment, Accessories and Secrets for a Kamal deploy.yml",
		Long: `import reads a Kamal deploy.yml (with -d, deploy.DESTINATION.yml merged over it, as Kamal
does) and prints the kamal-operator objects that do the same, as YAML to apply with kubectl.
Each key of deploy.yml that has no place in them is reported on stderr with the reason.

Only <%= ENV["NAME"] %> and <%= ENV.fetch("NAME") %> ERB tags are evaluated; any other tag is
refused. Secret values are REPLACE_ME unless --secrets-file gives them literally: a line that
needs a shell ($(...), backticks, $VAR) is never run. The SSH private key is never read: the
output's first comment has the kubectl command that makes its Secret. Nothing is sent to the
cluster; the namespace is -n or the kubeconfig context's.`,
		Example: `  kubectl kamal import config/deploy.yml --tag "$(git rev-parse --short HEAD)" -n shop > shop.yaml
  kubectl kamal import config/deploy.yml -d staging --secrets-file .kamal/secrets.staging --tag v42 -n shop-staging`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			res, err := kamalimport.Import(kamalimport.Input{
				FS: osFS{}, ConfigPath: args[0], Destination: destination, SecretsPath: secretsFile,
				Tag: tag, Namespace: o.importNamespace(), Getenv: os.LookupEnv,
			})
			if err != nil {
				return err
			}
			out, err := res.YAML()
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(o.Streams.ErrOut, "warning:", w)
			}
			_, err = o.Streams.Out.Write(out)
			return err
		},
	}
	cmd.Flags().StringVarP(&destination, "destination", "d", "", "Kamal destination: merge deploy.DESTINATION.yml over the config")
	cmd.Flags().StringVar(&secretsFile, "secrets-file", "", "dotenv file with the secrets' literal values (e.g. .kamal/secrets)")
	cmd.Flags().StringVar(&tag, "tag", "", "image tag (the version) when deploy.yml's image has none")
	return cmd
}

// importNamespace is -n, else the kubeconfig context's namespace, else none: import works
// without a kubeconfig and never contacts the cluster.
func (o *Options) importNamespace() string {
	if o.Flags.Namespace != nil && *o.Flags.Namespace != "" {
		return *o.Flags.Namespace
	}
	raw, err := o.Flags.ToRawKubeConfigLoader().RawConfig()
	if err != nil {
		return ""
	}
	name := raw.CurrentContext
	if o.Flags.Context != nil && *o.Flags.Context != "" {
		name = *o.Flags.Context
	}
	if ctx := raw.Contexts[name]; ctx != nil {
		return ctx.Namespace
	}
	return ""
}
