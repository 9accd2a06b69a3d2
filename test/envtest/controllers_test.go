package envtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/controllers"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

const waitFor = 20 * time.Second

func sshKeySecret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type:       corev1.SecretTypeSSHAuth,
		Data:       map[string][]byte{corev1.SSHAuthPrivateKey: pem.EncodeToMemory(block)},
	}
}

// readyCondition waits until obj's Ready condition, for its current generation, has the reason.
func waitReady(t *testing.T, obj client.Object, conds func() []metav1.Condition, reason string) *metav1.Condition {
	t.Helper()
	var got *metav1.Condition
	eventually(t, waitFor, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		got = meta.FindStatusCondition(conds(), kamalv1.ConditionReady)
		if got == nil || got.Reason != reason || got.ObservedGeneration != obj.GetGeneration() {
			return fmt.Errorf("Ready = %+v, want reason %s", got, reason)
		}
		return nil
	})
	return got
}

func TestServerStallsOnMissingOrInvalidKeySecret(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	srv := validServer(ns)
	if err := k8s.Create(ctx, srv); err != nil {
		t.Fatal(err)
	}
	conds := func() []metav1.Condition { return srv.Status.Conditions }

	c := waitReady(t, srv, conds, kamalv1.ReasonSecretNotFound)
	if !strings.Contains(c.Message, `Secret "deploy-key"`) || !strings.Contains(c.Message, "spec.sshKeySecretRef") {
		t.Errorf("message %q does not name the Secret and field", c.Message)
	}
	if s := framework.Kstatus(t, srv); s != status.FailedStatus {
		t.Errorf("kstatus = %s, want Failed while stalled", s)
	}
	eventually(t, waitFor, func() error { return framework.FindEvent(k8s, ns, srv.Name, kamalv1.ReasonSecretNotFound) })

	// The wrong type is named; the key content never is.
	wrong := sshKeySecret(t, ns, "deploy-key")
	wrong.Type = corev1.SecretTypeOpaque
	if err := k8s.Create(ctx, wrong); err != nil {
		t.Fatal(err)
	}
	c = waitReady(t, srv, conds, kamalv1.ReasonInvalidSecret)
	if !strings.Contains(c.Message, `want "kubernetes.io/ssh-auth"`) {
		t.Errorf("message %q does not say which type is needed", c.Message)
	}

	// A Secret's type is immutable: replace it with a right one, holding garbage. The Server
	// names it, so it is kept (deleting the namespace must not take a Server's key before the
	// Server is done with its host): it goes once the finalizer is removed by hand.
	eventually(t, waitFor, holds(wrong, controllers.KeySecretFinalizer, true))
	if err := k8s.Delete(ctx, wrong); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(wrong), wrong); err != nil || wrong.DeletionTimestamp == nil {
		t.Fatalf("the key Secret in use went at once (%v)", err)
	}
	patch := client.MergeFrom(wrong.DeepCopy())
	wrong.Finalizers = nil
	if err := k8s.Patch(ctx, wrong, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitFor, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(wrong), &corev1.Secret{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})
	bad := sshKeySecret(t, ns, "deploy-key")
	bad.Data[corev1.SSHAuthPrivateKey] = []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0\n-----END OPENSSH PRIVATE KEY-----\n")
	if err := k8s.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	c = waitReady(t, srv, conds, kamalv1.ReasonInvalidSecret)
	if strings.Contains(c.Message, "c2VjcmV0") {
		t.Errorf("message leaks key material: %q", c.Message)
	}

	// A usable key clears the stall; the controller then dials (loopback port 1, refused) and
	// reports the host unreachable, which retrying may fix: Reconciling, not Stalled.
	good := sshKeySecret(t, ns, "deploy-key")
	eventually(t, waitFor, func() error { // again after a conflict with the controller's finalizer
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(bad), bad); err != nil {
			return err
		}
		bad.Data = good.Data
		return k8s.Update(ctx, bad)
	})
	c = waitReady(t, srv, conds, kamalv1.ReasonUnreachable)
	if !strings.Contains(c.Message, "connection refused") {
		t.Errorf("message %q does not say why", c.Message)
	}
	if meta.FindStatusCondition(srv.Status.Conditions, kamalv1.ConditionStalled) != nil {
		t.Errorf("Stalled still present: %+v", srv.Status.Conditions)
	}
	if s := framework.Kstatus(t, srv); s != status.InProgressStatus {
		t.Errorf("kstatus = %s, want InProgress while unreachable", s)
	}
	if r := meta.FindStatusCondition(srv.Status.Conditions, kamalv1.ConditionReachable); r == nil || r.Status != metav1.ConditionFalse {
		t.Errorf("Reachable = %+v, want False", r)
	}
}

func TestDeploymentStallsOnMissingReferencesAndPlacement(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	d := validDeployment(ns)
	d.Spec.Env = []kamalv1.EnvVar{{Name: "DATABASE_URL", ValueFrom: &kamalv1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "app-secrets"}, Key: "DATABASE_URL"}}}}
	d.Spec.Roles["jobs"] = kamalv1.Role{Servers: kamalv1.ServerSelector{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "jobs"}}}}
	if err := k8s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	conds := func() []metav1.Condition { return d.Status.Conditions }

	c := waitReady(t, d, conds, kamalv1.ReasonSecretNotFound)
	if !strings.Contains(c.Message, `"app-secrets"`) || !strings.Contains(c.Message, "spec.env[DATABASE_URL]") {
		t.Errorf("message %q does not name the Secret and the variable", c.Message)
	}

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-secrets"}, StringData: map[string]string{"OTHER": "x"}}
	if err := k8s.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	c = waitReady(t, d, conds, kamalv1.ReasonInvalidSecret)
	if !strings.Contains(c.Message, `has no key "DATABASE_URL"`) {
		t.Errorf("message %q", c.Message)
	}
	sec.StringData = map[string]string{"DATABASE_URL": "postgres://u:p@db/app"}
	if err := k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	waitReady(t, d, conds, kamalv1.ReasonServerNotFound)

	// The named Server appears; the jobs role's selector still matches nothing.
	if err := k8s.Create(ctx, validServer(ns)); err != nil {
		t.Fatal(err)
	}
	c = waitReady(t, d, conds, kamalv1.ReasonNoServers)
	if !strings.Contains(c.Message, "role jobs") {
		t.Errorf("message %q does not name the role", c.Message)
	}

	// A matching Server clears it; the hosts cannot be reached (the Servers' key Secret is
	// missing), which the status names, and which retrying may fix.
	jobs := validServer(ns)
	jobs.Name, jobs.Labels = "jobs-1", map[string]string{"tier": "jobs"}
	jobs.Spec.Port = 2 // another host than web-1's, or it would be a duplicate
	if err := k8s.Create(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	c = waitReady(t, d, conds, kamalv1.ReasonUnreachable)
	if !strings.Contains(c.Message, "jobs-1") || !strings.Contains(c.Message, "web-1") {
		t.Errorf("message %q does not name the unreachable servers", c.Message)
	}
	if d.Status.ServersReady != "0/2" || len(d.Status.Targets) != 2 || d.Status.Targets[0].State != kamalv1.TargetUnreachable {
		t.Errorf("status = %s %+v", d.Status.ServersReady, d.Status.Targets)
	}
	for _, c := range d.Status.Conditions {
		if strings.Contains(c.Message, "postgres://") {
			t.Errorf("condition leaks a secret value: %+v", c)
		}
	}
}

func TestAccessoryStallsOnMissingConfigMapKey(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	if err := k8s.Create(ctx, validServer(ns)); err != nil {
		t.Fatal(err)
	}
	a := validAccessory(ns)
	a.Spec.Files = []kamalv1.AccessoryFile{{Target: "/etc/postgresql/extra.conf",
		ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "pg-conf"}, Key: "extra.conf"}}}
	if err := k8s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	conds := func() []metav1.Condition { return a.Status.Conditions }
	c := waitReady(t, a, conds, kamalv1.ReasonConfigMapNotFound)
	if !strings.Contains(c.Message, `"pg-conf"`) || !strings.Contains(c.Message, "spec.files[/etc/postgresql/extra.conf]") {
		t.Errorf("message %q", c.Message)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-conf"}, Data: map[string]string{"extra.conf": "max_connections = 50"}}
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	// The inputs are whole now: the controller goes to the host, which is unreachable here.
	c = waitReady(t, a, conds, kamalv1.ReasonUnreachable)
	if len(a.Status.Servers) != 1 || a.Status.Servers[0].State != kamalv1.TargetUnreachable || a.Status.ServersReady != "0/1" {
		t.Errorf("servers %s %+v", a.Status.ServersReady, a.Status.Servers)
	}
}
