package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/moby/api/types/container"
	dockerclient "github.com/moby/moby/client"

	"github.com/kamal-operator/kamal-operator/internal/logmerge"
	"github.com/kamal-operator/kamal-operator/internal/oneoff"
)

// releaseRoleOf is the role whose servers run a Deployment's release command.
func releaseRoleOf(w *workload) (string, error) {
	d := w.Deployment
	if d == nil {
		return "", errors.New("--release: only a Deployment has a release command")
	}
	if r := d.Spec.Rollout.Release; r != nil && r.Role != "" {
		return r.Role, nil
	}
	return w.primaryRole(), nil
}

// dumpRelease writes the output of the Deployment's newest release container, found by its
// labels on the placements' servers (the release runs on one server of its role).
func (lo *logsOptions) dumpRelease(ctx context.Context, w *workload, hosts []*host, ps []placement, out *logmerge.Output, opts dockerclient.ContainerLogsOptions) error {
	o := w.Object()
	var newest *container.Summary
	var at *host
	label := ""
	seen := map[*host]bool{}
	for i, h := range hosts {
		if h == nil || seen[h] {
			continue
		}
		seen[h] = true
		cs, err := h.Docker.ContainerList(ctx, dockerclient.ContainerListOptions{All: true, Filters: oneoff.ReleaseFilters(o.GetNamespace(), o.GetName())})
		if err != nil {
			fmt.Fprintf(lo.Streams.ErrOut, "%s: %s\n", ps[i], explain(err))
			continue
		}
		for j := range cs.Items {
			if c := &cs.Items[j]; newest == nil || c.Created > newest.Created {
				newest, at, label = c, h, logmerge.Label(ps[i].Server, "release")
			}
		}
	}
	if newest == nil {
		return fmt.Errorf("no release container of %s on its servers: no release has run since the last one was removed", w)
	}
	if _, err := streamLogs(ctx, at, newest.ID, opts, out, label, 0); err != nil {
		return err
	}
	return out.Err()
}
