package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/accessory"
	"github.com/kamal-operator/kamal-operator/internal/servertarget"
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

// When no host can be reached because the user may not read the key Secret, the error is the
// KeyError itself (one message naming the Secret); hosts failing in different ways are each
// named on stderr.
func TestLogsConnectFailures(t *testing.T) {
	ns := "shop"
	server := func(name, secret string) *kamalv1.Server {
		return &kamalv1.Server{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       kamalv1.ServerSpec{Address: "192.0.2.1", SSHKeySecretRef: corev1.LocalObjectReference{Name: secret}},
		}
	}
	forbidden := interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if _, ok := obj.(*corev1.Secret); ok {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, key.Name, errors.New(`User "dev" cannot get resource "secrets"`))
		}
		return c.Get(ctx, key, obj, opts...)
	}}
	w := &workload{Deployment: &kamalv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}}}
	ps := []placement{{Server: "web-1", Role: "web"}, {Server: "web-2", Role: "web"}, {Server: "web-1", Role: "jobs"}}

	t.Run("forbidden everywhere", func(t *testing.T) {
		c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(server("web-1", "key"), server("web-2", "key")).WithInterceptorFuncs(forbidden).Build()
		var errOut bytes.Buffer
		lo := &logsOptions{Options: &Options{Streams: genericiooptions.IOStreams{Out: &bytes.Buffer{}, ErrOut: &errOut}}}
		hs := newHosts(c)
		defer hs.Close()
		_, err := lo.connect(context.Background(), hs, w, ps)
		var key *servertarget.KeyError
		if !errors.As(err, &key) || key.Namespace != ns || key.Name != "key" {
			t.Fatalf("error %v (%T) is not the KeyError of Secret shop/key", err, err)
		}
		if msg := explain(err); !strings.Contains(msg, "you may not read Secret shop/key") || !strings.Contains(msg, `"get"`) {
			t.Errorf("explained as %q", msg)
		}
		if errOut.Len() != 0 {
			t.Errorf("stderr: %q", errOut.String())
		}
	})

	t.Run("each its own way", func(t *testing.T) {
		// web-2 does not exist.
		c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(server("web-1", "key")).WithInterceptorFuncs(forbidden).Build()
		var errOut bytes.Buffer
		lo := &logsOptions{Options: &Options{Streams: genericiooptions.IOStreams{Out: &bytes.Buffer{}, ErrOut: &errOut}}}
		hs := newHosts(c)
		defer hs.Close()
		_, err := lo.connect(context.Background(), hs, w, ps)
		if err == nil || !strings.Contains(err.Error(), "none of the 2 servers") {
			t.Errorf("error %v", err)
		}
		got := errOut.String()
		if strings.Count(got, "you may not read") != 1 || !strings.Contains(got, "web-1: you may not read Secret shop/key") || !strings.Contains(got, "web-2: Server shop/web-2") {
			t.Errorf("stderr:\n%s", got)
		}
	})
}
