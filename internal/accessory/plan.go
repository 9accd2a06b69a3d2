package accessory

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
	// Current is the container with the accessory's name, if any.
	Current *Observed
	// Remove are containers of the accessory that must go: setup leftovers, or ones under
	// an earlier container name.
	Remove []Observed
}

// PlanHost decides the next step from the accessory's containers on a host.
func PlanHost(observed []Observed, containerName, hash string) Plan {
	var p Plan
	for i := range observed {
		o := observed[i]
		switch {
		case o.Setup || o.Name != containerName:
			p.Remove = append(p.Remove, o)
		default:
			p.Current = &o
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
