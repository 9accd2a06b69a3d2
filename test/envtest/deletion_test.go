package envtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/controllers"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

func gone(obj client.Object) func() error {
	return func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); !apierrors.IsNotFound(err) {
			return fmt.Errorf("%s still there (%v)", obj.GetName(), err)
		}
		return nil
	}
}

// holds is a condition: obj, read again, has finalizer (or, with want false, has not).
func holds(obj client.Object, finalizer string, want bool) func() error {
	return func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		if slices.Contains(obj.GetFinalizers(), finalizer) != want {
			return fmt.Errorf("%s has finalizers %v, want %s: %v", obj.GetName(), obj.GetFinalizers(), finalizer, want)
		}
		return nil
	}
}

// A Server being deleted whose host cannot be reached waits while a Deployment may still run
// there, and says so; its key Secret stays as long as the Server does. Here the host never
// answers (loopback port 1), so the Server is let go by hand, as its message says.
func TestServerBeingDeletedWaitsForItsDeploymentsAndKeepsItsKey(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	key := sshKeySecret(t, ns, "deploy-key")
	srv := validServer(ns)
	d := validDeployment(ns)
	for _, obj := range []client.Object{key, srv, d} {
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, waitFor, holds(key, controllers.KeySecretFinalizer, true))
	waitReady(t, d, func() []metav1.Condition { return d.Status.Conditions }, kamalv1.ReasonUnreachable)

	if err := k8s.Delete(ctx, srv); err != nil {
		t.Fatal(err)
	}
	c := waitReady(t, srv, func() []metav1.Condition { return srv.Status.Conditions }, kamalv1.ReasonServerDeleting)
	for _, want := range []string{"not reachable", "Deployment app", controllers.ServerFinalizer} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("Server message %q does not say %q", c.Message, want)
		}
	}
	eventually(t, waitFor, func() error { return framework.FindEvent(k8s, ns, srv.Name, kamalv1.ReasonServerDeleting) })
	// The Deployment counts it no more, and says why it has nowhere to run.
	c = waitReady(t, d, func() []metav1.Condition { return d.Status.Conditions }, kamalv1.ReasonServerDeleting)
	if !strings.Contains(c.Message, "Server web-1 is being deleted") || !strings.Contains(c.Message, "role web") {
		t.Errorf("Deployment message %q", c.Message)
	}

	// The key Secret, deleted meanwhile (as deleting the namespace would), stays while the
	// Server does.
	if err := k8s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(key), key); err != nil || key.DeletionTimestamp == nil {
		t.Fatalf("the key Secret of a Server went first (%v)", err)
	}

	// Given up by hand: the Server goes, and with it the hold on its key Secret.
	patch := client.MergeFrom(srv.DeepCopy())
	srv.Finalizers = slices.DeleteFunc(srv.Finalizers, func(f string) bool { return f == controllers.ServerFinalizer })
	if err := k8s.Patch(ctx, srv, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitFor, gone(srv))
	eventually(t, waitFor, gone(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name}}))
	waitReady(t, d, func() []metav1.Condition { return d.Status.Conditions }, kamalv1.ReasonServerNotFound)
}

// A key Secret no Server names any more loses the hold.
func TestKeySecretIsReleasedWhenNoServerNamesIt(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	key := sshKeySecret(t, ns, "old-key")
	srv := validServer(ns)
	srv.Spec.SSHKeySecretRef.Name = "old-key"
	for _, obj := range []client.Object{key, srv} {
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, waitFor, holds(key, controllers.KeySecretFinalizer, true))
	framework.Eventually(t, waitFor, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(srv), srv); err != nil {
			return err
		}
		srv.Spec.SSHKeySecretRef.Name = "new-key"
		return k8s.Update(ctx, srv)
	})
	eventually(t, waitFor, holds(key, controllers.KeySecretFinalizer, false))

	// One still held when its last Server went while the controller was down is let go too.
	stale := sshKeySecret(t, ns, "stale-key")
	stale.Finalizers = []string{controllers.KeySecretFinalizer}
	if err := k8s.Create(ctx, stale); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitFor, holds(stale, controllers.KeySecretFinalizer, false))
}
