package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/refs"
)

// KeySecretFinalizer keeps a Secret a Server connects with (spec.sshKeySecretRef,
// spec.jumpHost.sshKeySecretRef) while any Server names it. Deleting a namespace deletes its
// Secrets in parallel with everything else; without this, a Server's key could go before the
// Deployments and Accessories on it have removed their containers, and they could not.
const KeySecretFinalizer = "kamal.operator.dev/in-use"

// The key Secret finalizer is added and removed with patches.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;update;patch

// KeySecretReconciler holds the SSH key Secrets of Servers. It is woken by Servers (created,
// changed, gone) for the Secrets they name, and by Secrets that hold its finalizer (so one whose
// last Server went while the controller was down is let go after a restart). It reads and
// writes only the Secrets' metadata.
type KeySecretReconciler struct {
	client.Client
}

// Reconcile sets KeySecretFinalizer on a Secret some Server names and removes it from one no
// Server names any more. Only the finalizer list is patched (with the read resourceVersion as
// a precondition); the Secret's data is neither read nor sent.
func (r *KeySecretReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	secret := &metav1.PartialObjectMetadata{}
	secret.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.Get(ctx, req.NamespacedName, secret); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var servers kamalv1.ServerList
	if err := r.List(ctx, &servers, client.InNamespace(req.Namespace), client.MatchingFields{indexSecrets: req.Name}); err != nil {
		return ctrl.Result{}, err
	}
	inUse := len(servers.Items) > 0 // the index holds exactly the Secrets a Server connects with
	switch {
	case inUse && secret.DeletionTimestamp.IsZero():
		// (The API refuses new finalizers on an object being deleted.)
		return ctrl.Result{}, ensureFinalizer(ctx, r.Client, secret, KeySecretFinalizer)
	case !inUse:
		return ctrl.Result{}, removeFinalizer(ctx, r.Client, secret, KeySecretFinalizer)
	}
	return ctrl.Result{}, nil
}

// SetupWithManager wakes the reconciler for the key Secrets of every Server event; an update
// wakes the Secrets of both the old and the new spec.
func (r *KeySecretReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("sshkeysecret").
		WatchesMetadata(&corev1.Secret{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return controllerutil.ContainsFinalizer(o, KeySecretFinalizer)
		}))).
		Watches(&kamalv1.Server{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
			srv, ok := obj.(*kamalv1.Server)
			if !ok {
				return nil
			}
			var reqs []reconcile.Request
			for _, name := range refs.Names(refs.Server(srv), "Secret") {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: srv.Namespace, Name: name}})
			}
			return reqs
		})).
		Complete(r)
}
