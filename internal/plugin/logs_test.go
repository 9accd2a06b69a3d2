package plugin

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"k8s.io/cli-runtime/pkg/genericiooptions"

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

// The command's flags fit with the kubeconfig flags of the root (no shorthand taken twice),
// and bad values are refused before anything is read.
func TestLogsFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{args: []string{"logs", "--help"}, want: "--timestamps"},
		{args: []string{"logs", "app", "--since", "yesterday"}, want: "--since"},
		{args: []string{"logs", "app", "--grep", "("}, want: "--grep"},
	} {
		var out, errOut bytes.Buffer
		streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
		cmd := NewCommand(streams)
		cmd.SetArgs(append([]string{"-n", "ns"}, tc.args...))
		err := cmd.Execute()
		if got := out.String() + errOut.String() + fmt.Sprint(err); !strings.Contains(got, tc.want) {
			t.Errorf("%v: got %q, want %q in it", tc.args, got, tc.want)
		}
	}
}
