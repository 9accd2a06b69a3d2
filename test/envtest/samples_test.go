package envtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// applySamples creates every object of config/samples in namespace ns.
func applySamples(t *testing.T, ns string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "config", "samples", "kamal_*.yaml"))
	if err != nil || len(files) != 3 {
		t.Fatalf("want 3 samples, got %v (%v)", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---\n") {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			u.SetNamespace(ns)
			if err := k8s.Create(context.Background(), u); err != nil {
				t.Fatalf("sample %s refused: %v", filepath.Base(f), err)
			}
		}
	}
}

func TestSamplesAreAcceptedWithDefaults(t *testing.T) {
	ns := newNamespace(t)
	applySamples(t, ns)
	ctx := context.Background()

	var srv kamalv1.Server
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web-1"}, &srv); err != nil {
		t.Fatal(err)
	}
	if srv.Spec.HostKeyPolicy != kamalv1.HostKeyPinned || srv.Spec.Docker.SocketPath != "/var/run/docker.sock" ||
		srv.Spec.Docker.Bootstrap != kamalv1.DockerBootstrapNever || srv.Spec.Proxy.HTTPPort != 80 ||
		srv.Spec.Proxy.HTTPSPort != 443 || srv.Spec.Proxy.Enabled == nil || !*srv.Spec.Proxy.Enabled ||
		srv.Spec.KeepAliveInterval == nil || srv.Spec.KeepAliveInterval.Duration.String() != "3s" || srv.Spec.KeepAliveCountMax != 3 ||
		srv.Spec.AllowedNamespaces == nil || srv.Spec.AllowedNamespaces.From != kamalv1.NamespacesFromSame {
		t.Errorf("Server defaults not applied: %+v", srv.Spec)
	}

	var acc kamalv1.Accessory
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dokuya-postgres"}, &acc); err != nil {
		t.Fatal(err)
	}
	if acc.Spec.DeletionPolicy != kamalv1.DeletionRetain {
		t.Errorf("Accessory deletionPolicy = %q, want Retain", acc.Spec.DeletionPolicy)
	}
	if acc.Spec.Port == nil || acc.Spec.Port.String() != "127.0.0.1:5432:5432" {
		t.Errorf("Accessory port = %v", acc.Spec.Port)
	}

	var d kamalv1.Deployment
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dokuya"}, &d); err != nil {
		t.Fatal(err)
	}
	r := d.Spec.Rollout
	if d.Spec.PrimaryRole != "web" || d.Spec.RetainContainers != 5 || r.MaxParallel.IntValue() != 1 ||
		r.Wait.Duration != 0 || r.ReadinessDelay.Duration.String() != "7s" || r.StopTimeout.Duration.String() != "30s" ||
		r.DeployTimeout.Duration.String() != "30s" || r.DrainTimeout.Duration.String() != "30s" {
		t.Errorf("Deployment defaults not applied: primaryRole=%q retain=%d rollout=%+v", d.Spec.PrimaryRole, d.Spec.RetainContainers, r)
	}
	if len(d.Spec.Roles) != 2 || d.Spec.Roles["jobs"].Cmd[0] != "bin/jobs" {
		t.Errorf("roles = %+v", d.Spec.Roles)
	}
}

// A new object reads as in progress to kstatus until the controller has observed it: its
// status.observedGeneration starts at -1 (the object the API server answers the create with,
// before any controller wrote its status).
func TestNewObjectStatusStartsUnobserved(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	d := validDeployment(ns)
	d.Spec.Suspend = true
	if err := k8s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	if d.Status.ObservedGeneration != -1 {
		t.Errorf("status.observedGeneration = %d, want -1", d.Status.ObservedGeneration)
	}
}

// A suspended Deployment says so in status for its current generation, instead of keeping the
// status of a spec it no longer has.
func TestSuspendedDeploymentSaysSo(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	d := validDeployment(ns)
	d.Spec.Suspend = true
	if err := k8s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		var got kamalv1.Deployment
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: d.Name}, &got); err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, kamalv1.ConditionReady)
		if got.Status.ObservedGeneration != got.Generation || c == nil || c.Status != metav1.ConditionUnknown || c.Reason != kamalv1.ReasonSuspended {
			return fmt.Errorf("observedGeneration %d of %d, Ready %+v", got.Status.ObservedGeneration, got.Generation, c)
		}
		if meta.FindStatusCondition(got.Status.Conditions, kamalv1.ConditionReconciling) != nil || meta.FindStatusCondition(got.Status.Conditions, kamalv1.ConditionStalled) != nil {
			return fmt.Errorf("Reconciling or Stalled present while suspended: %+v", got.Status.Conditions)
		}
		return nil
	})
}

// The shared-hosts sample (a platform namespace's Server admitting team namespaces, and a team's
// Deployment placing on it) is accepted as written, its namespaces mapped to the test's.
func TestSharedHostsSampleIsAccepted(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "config", "samples", "shared-hosts", "shared-hosts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	namespaces := map[string]string{"platform": newNamespace(t), "team-a": newNamespace(t)}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		ns, ok := namespaces[u.GetNamespace()]
		if !ok {
			t.Fatalf("%s %s: namespace %q is neither platform nor team-a", u.GetKind(), u.GetName(), u.GetNamespace())
		}
		u.SetNamespace(ns)
		if err := k8s.Create(context.Background(), u, client.DryRunAll); err != nil {
			t.Errorf("%s %s refused: %v", u.GetKind(), u.GetName(), err)
		}
	}
}
