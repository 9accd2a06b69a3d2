package release

import "sort"

// Observed is a container of the role seen on a host.
type Observed struct {
	ID      string
	Name    string
	Hash    string
	Version string
	Image   string
	Running bool
	// Health is Docker's health status ("", "starting", "healthy", "unhealthy").
	Health  string
	Created int64
}

// Plan is the next work on one host for one role.
type Plan struct {
	// Desired is the container with the desired hash, if one exists (running or stopped: a
	// retained version is restarted, not recreated — a rollback pulls nothing).
	Desired *Observed
	// Old are running containers of other hashes, to stop once Desired serves.
	Old []Observed
	// Prune are stopped containers beyond the retention count, oldest first.
	Prune []Observed
	// Converged: Desired runs, the route (for a proxied role) points at it, nothing old runs.
	Converged bool
	// NameTaken says another container holds the role's name without the hash
	// (Role.ContainerName(hash, false)), so the new one takes the name with it.
	NameTaken bool
}

// PlanTarget decides what one host needs for one role. routedTo is the container the proxy
// route sends to ("" for a role without the proxy); baseName is the role's container name
// for the desired version, not taken (Role.ContainerName(hash, false)).
func PlanTarget(hash, baseName string, observed []Observed, proxied bool, routedTo string, retain int) Plan {
	var p Plan
	var stopped []Observed
	for i := range observed {
		o := observed[i]
		if o.Name == baseName && o.Hash != hash {
			p.NameTaken = true
		}
		switch {
		case o.Hash == hash && (!proxied || ValidDNSLabel(o.Name)) && (p.Desired == nil || o.Running && !p.Desired.Running):
			// A proxied container whose name is no DNS label (made before names were kept
			// to 63 characters) cannot be reached by the proxy: it is replaced, not kept.
			if p.Desired != nil && !p.Desired.Running {
				stopped = append(stopped, *p.Desired)
			}
			p.Desired = &o
		case o.Running:
			p.Old = append(p.Old, o)
		default:
			stopped = append(stopped, o)
		}
	}
	sort.Slice(stopped, func(i, j int) bool { return stopped[i].Created > stopped[j].Created })
	if len(stopped) > retain {
		p.Prune = stopped[retain:]
		sort.Slice(p.Prune, func(i, j int) bool { return p.Prune[i].Created < p.Prune[j].Created })
	}
	p.Converged = p.Desired != nil && p.Desired.Running && len(p.Old) == 0 &&
		(!proxied || routedTo == p.Desired.Name) && p.Desired.Health != "unhealthy"
	return p
}

// BatchSize is how many of n servers deploy at once for maxParallel (a count, or a percentage
// rounded down, at least 1).
func BatchSize(n int, count int, percent int) int {
	size := count
	if percent > 0 {
		size = n * percent / 100
	}
	return max(1, min(size, max(n, 1)))
}
