package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
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

// KeySecretReconciler holds the SSH key Secrets of Servers: it is woken by Servers (created,
// changed, gone) for the Secrets they name, and never watches Secrets itself.
type KeySecretReconciler struct {
	client.Client
}

// Reconcile sets KeySecretFinalizer on a Secret some Server names and removes it from one no
// Server names any more. Only the finalizer list is patched (with the read resourceVersion as
// a precondition); the Secret's data is never sent.
func (r *KeySecretReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var secret corev1.Secret
	if err := r.Get(ctx, req.NamespacedName, &secret); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var servers kamalv1.ServerList
	if err := r.List(ctx, &servers, client.InNamespace(req.Namespace), client.MatchingFields{indexSecrets: req.Name}); err != nil {
		return ctrl.Result{}, err
	}
	inUse := len(servers.Items) > 0 // the index holds exactly the Secrets a Server connects with
	switch {
	case inUse && secret.DeletionTimestamp.IsZero():
		// A Secret being deleted takes no new finalizer; a Server reading it meanwhile is told
		// it is missing only once it is gone.
		return ctrl.Result{}, ensureFinalizer(ctx, r.Client, &secret, KeySecretFinalizer)
	case !inUse:
		return ctrl.Result{}, removeFinalizer(ctx, r.Client, &secret, KeySecretFinalizer)
	}
	return ctrl.Result{}, nil
}

// SetupWithManager wakes the reconciler for the key Secrets of every Server event; an update
// wakes the Secrets of both the old and the new spec.
func (r *KeySecretReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("sshkeysecret").
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
