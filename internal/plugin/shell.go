package plugin

import "github.com/spf13/cobra"

func init() { commands = append(commands, newShellCommand) }

// shellCommands are tried in order: the first the image has is the shell.
var shellCommands = [][]string{{"bash"}, {"sh"}}

func newShellCommand(o *Options) *cobra.Command {
	eo := &execOptions{Options: o, stdin: true, tty: true, reuse: true}
	cmd := &cobra.Command{
		Use:   "shell DEPLOYMENT|ACCESSORY [--role ROLE] [--server SERVER]",
		Short: "An interactive shell in the running container: bash, else sh",
		Long: `shell is exec -it --reuse -- bash: an interactive shell in the workload's running container.
When the image has no bash, it runs sh and says so.`,
		Example: `  kubectl kamal shell dokuya
  kubectl kamal shell dokuya --role jobs --server web-2
  kubectl kamal shell accessory/db`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eo.run(cmd.Context(), args[0], shellCommands)
		},
	}
	eo.addTargetFlags(cmd)
	return cmd
}
