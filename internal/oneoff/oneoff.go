// Package oneoff names and collects the one-off containers on hosts: those kubectl-kamal starts
// (exec without --reuse) and a Deployment's release containers. They carry labels of their own
// kind, so nothing takes them for a deployed version; the rule by which the controller removes
// those a killed plugin left behind leaves release containers to their Deployment.
package oneoff

import (
	"sort"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// Kinds of one-off containers.
const (
	KindExec = "exec"
	// KindRelease is a Deployment's release command of one revision (spec.rollout.release). It
	// is the Deployment's to remove: kept, stopped, for its logs until the next release starts.
	KindRelease = "release"
)

// LabelRevision is the revision a release container ran for.
const LabelRevision = kamalv1.LabelPrefix + "revision"

// ReleaseLabels identify the release container of a Deployment's revision.
func ReleaseLabels(namespace, deployment, revision string) map[string]string {
	l := Labels(namespace, KindRelease, "Deployment", deployment)
	l[LabelRevision] = revision
	return l
}

// ReleaseFilters select a Deployment's release containers on a host (of every revision).
func ReleaseFilters(namespace, deployment string) client.Filters {
	return client.Filters{}.
		Add("label", kamalv1.LabelManagedBy+"="+kamalv1.ManagerName).
		Add("label", kamalv1.LabelNamespace+"="+namespace).
		Add("label", kamalv1.LabelOneOff+"="+KindRelease).
		Add("label", kamalv1.LabelOneOffFor+"=Deployment/"+deployment)
}

// Labels identify a one-off container of kind started for the workload kind/name ("Deployment"
// or "Accessory") of namespace. It is the controller's (managed-by) and its namespace's, so the
// namespace's network stays while it runs, but it has no deployment or accessory label.
func Labels(namespace, kind, workloadKind, name string) map[string]string {
	return map[string]string{
		kamalv1.LabelManagedBy: kamalv1.ManagerName,
		kamalv1.LabelNamespace: namespace,
		kamalv1.LabelOneOff:    kind,
		kamalv1.LabelOneOffFor: workloadKind + "/" + name,
	}
}

// Filters select every one-off container on a host.
func Filters() client.Filters {
	return client.Filters{}.
		Add("label", kamalv1.LabelManagedBy+"="+kamalv1.ManagerName).
		Add("label", kamalv1.LabelOneOff)
}

// Grace periods after which the controller removes a one-off container: an exited one soon (the
// plugin that started it removes it itself once it has read its exit code), a running one only
// after a long time (an interactive console may run for hours).
const (
	DefaultExitedGrace  = 5 * time.Minute
	DefaultRunningGrace = 24 * time.Hour
)

// Expired returns the IDs of the one-off containers among cs to remove at now: exited ones
// created more than exitedGrace ago, running ones created more than runningGrace ago; and when
// the earliest of the others expires (zero when none will). Containers without LabelOneOff are
// never returned, nor release containers: their Deployment removes them.
func Expired(cs []container.Summary, now time.Time, exitedGrace, runningGrace time.Duration) (ids []string, next time.Time) {
	for _, c := range cs {
		if k := c.Labels[kamalv1.LabelOneOff]; k == "" || k == KindRelease || c.Labels[kamalv1.LabelManagedBy] != kamalv1.ManagerName {
			continue
		}
		grace := runningGrace
		if c.State != container.StateRunning && c.State != container.StateRestarting && c.State != container.StatePaused {
			grace = exitedGrace
		}
		at := time.Unix(c.Created, 0).Add(grace)
		if !now.Before(at) {
			ids = append(ids, c.ID)
			continue
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	sort.Strings(ids)
	return ids, next
}
