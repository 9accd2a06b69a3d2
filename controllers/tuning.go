package controllers

import "time"

// Defaults of Options' worker counts and resync periods. A Server's first reconcile waits on
// its host (the dial, the proxy's pull and start, its health): one slow host must not hold up
// the others, and 1,000 new Servers through one worker take most of an hour (docs/scale.md).
const (
	DefaultDeploymentWorkers = 4
	DefaultServerWorkers     = 16
	DefaultAccessoryWorkers  = 4
	DefaultDeploymentResync  = deploymentResync
	DefaultServerResync      = serverResync
	DefaultAccessoryResync   = accessoryResync
)

// orDefault is v, or def when v is zero or less.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
