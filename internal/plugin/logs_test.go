package plugin

import (
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/kamal-operator/kamal-operator/internal/accessory"
)

func TestLogContainers(t *testing.T) {
	c := func(id string, created int64, state container.ContainerState, labels ...string) container.Summary {
		l := map[string]string{}
		for _, k := range labels {
			l[k] = "true"
		}
		return container.Summary{ID: id, Created: created, State: state, Labels: l}
	}
	ids := func(cs []container.Summary) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.ID)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		name      string
		cs        []container.Summary
		one, many string
	}{
		{name: "none"},
		{
			name: "the running one, not a newer stopped one",
			cs:   []container.Summary{c("v1", 1, container.StateExited), c("v2", 2, container.StateRunning), c("v3", 3, container.StateExited)},
			one:  "v2", many: "v2",
		},
		{
			name: "mid-deploy: the newest running, or both",
			cs:   []container.Summary{c("v1", 1, container.StateRunning), c("v2", 2, container.StateRunning)},
			one:  "v2", many: "v2,v1",
		},
		{
			name: "nothing runs: the newest",
			cs:   []container.Summary{c("v2", 2, container.StateExited), c("v3", 3, container.StateCreated), c("v1", 1, container.StateExited)},
			one:  "v3", many: "v3",
		},
		{
			name: "an accessory's setup container is not its logs",
			cs:   []container.Summary{c("db", 1, container.StateExited), c("setup", 2, container.StateRunning, accessory.LabelSetup)},
			one:  "db", many: "db",
		},
	} {
		if got := ids(logContainers(tc.cs, false)); got != tc.one {
			t.Errorf("%s: logContainers = %q, want %q", tc.name, got, tc.one)
		}
		if got := ids(logContainers(tc.cs, true)); got != tc.many {
			t.Errorf("%s: logContainers(all) = %q, want %q", tc.name, got, tc.many)
		}
	}
}
