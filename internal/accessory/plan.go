package accessory

import "slices"

// Observed is one container of the accessory found on a host.
type Observed struct {
	ID      string
	Name    string
	Hash    string
	Running bool
	// Health is Docker's health status: "", "starting", "healthy" or "unhealthy".
	Health string
	// Setup marks a leftover setup container.
	Setup bool
	// Networks the container is attached to.
	Networks []string
	// Files are the targets of the files written for the container (FilesLabel); FilesKnown
	// is false for a container that does not say.
	Files      []string
	FilesKnown bool
}

// Action is the next step on a host.
type Action string

const (
	// ActionNone: the container runs with the desired spec.
	ActionNone Action = ""
	// ActionCreate: nothing runs; write the files, create and start.
	ActionCreate Action = "Create"
	// ActionStart: the desired container exists but is stopped (drift): start it.
	ActionStart Action = "Start"
	// ActionRecreate: the spec changed: write the files, stop and remove the old container,
	// create and start the new one on the same data.
	ActionRecreate Action = "Recreate"
)

// Plan is what to do on one host.
type Plan struct {
	Action Action
	// Current is the container with one of the accessory's names (HostNames), if any.
	Current *Observed
	// Remove are containers of the accessory that must go: setup leftovers, or ones under
	// an earlier container name.
	Remove []Observed
}

// PlanHost decides the next step from the accessory's containers on a host; names are the
// names its container may have (HostNames). Of two containers under them (one plain, one
// suffixed), the one with the desired hash, then the running one, is current.
func PlanHost(observed []Observed, names []string, hash string) Plan {
	var p Plan
	for i := range observed {
		o := observed[i]
		switch {
		case o.Setup || !slices.Contains(names, o.Name):
			p.Remove = append(p.Remove, o)
		case p.Current == nil || better(o, *p.Current, hash):
			if p.Current != nil {
				p.Remove = append(p.Remove, *p.Current)
			}
			p.Current = &o
		default:
			p.Remove = append(p.Remove, o)
		}
	}
	switch {
	case p.Current == nil:
		p.Action = ActionCreate
	case p.Current.Hash != hash:
		p.Action = ActionRecreate
	case !p.Current.Running:
		p.Action = ActionStart
	}
	return p
}

// Ready says whether the host's container serves: running, and healthy when the image has a
// health check.
func (p Plan) Ready() bool {
	return p.Action == ActionNone && p.Current.Running && (p.Current.Health == "" || p.Current.Health == "healthy")
}

// better says whether a is a better current container than b: the desired hash first, then
// running.
func better(a, b Observed, hash string) bool {
	if (a.Hash == hash) != (b.Hash == hash) {
		return a.Hash == hash
	}
	return a.Running && !b.Running
}
