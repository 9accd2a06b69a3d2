// Package debian installs Debian packages on this machine for the test hosts and fixture images.
package debian

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Install runs `apt-get update`, then `apt-get install` of pkgs (no recommends, existing config
// files kept), non-interactively with env added. A failure returns the tail of apt's output.
func Install(ctx context.Context, env []string, pkgs ...string) error {
	env = append(append(os.Environ(), "DEBIAN_FRONTEND=noninteractive"), env...)
	for _, args := range [][]string{
		{"update"},
		append([]string{"install", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold"}, pkgs...),
	} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			tail := string(out)
			if len(tail) > 4000 {
				tail = tail[len(tail)-4000:]
			}
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tail)
		}
	}
	return nil
}
