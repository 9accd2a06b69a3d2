package controllers

import "time"

// Defaults of Options' worker counts and resync periods. One Server controller worker
// suffices while each reconcile of a connected host is a few quick Engine API calls; raise it
// for fleets whose hosts connect slowly.
const (
	DefaultDeploymentWorkers = 4
	DefaultServerWorkers     = 1
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
