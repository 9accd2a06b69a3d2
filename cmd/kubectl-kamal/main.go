// Command kubectl-kamal is the kubectl plugin of kamal-operator: `kubectl kamal status`, `logs`,
// `exec`, `shell`, `history`, `rollback`, `restart` and `import`, once it is on PATH.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kamal-operator/kamal-operator/internal/plugin"
)

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	os.Exit(plugin.Main(plugin.NewCommand(streams), streams))
}
