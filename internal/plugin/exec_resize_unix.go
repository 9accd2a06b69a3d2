//go:build !windows

package plugin

import (
	"os"
	"os/signal"
	"syscall"
)

// notifyResize sends to c when the local terminal's size changes.
func notifyResize(c chan<- os.Signal) { signal.Notify(c, syscall.SIGWINCH) }
