package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/refs"
)

// Field indexes from a referenced object's name to the objects that refer to it, so a changed
// Secret, ConfigMap, Server or Accessory wakes exactly the objects that use it.
const (
	indexSecrets     = "kamal.operator.dev/secrets"
	indexConfigMaps  = "kamal.operator.dev/configmaps"
	indexServers     = "kamal.operator.dev/servers"
	indexAccessories = "kamal.operator.dev/accessories"
)

func refsOf(obj client.Object) []refs.Ref {
	switch o := obj.(type) {
	case *kamalv1.Server:
		return refs.Server(o)
	case *kamalv1.Deployment:
		return refs.Deployment(o)
	case *kamalv1.Accessory:
		return refs.Accessory(o)
	}
	return nil
}

// SetupIndexes registers the reference indexes for the three kinds.
func SetupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	kinds := map[string]string{indexSecrets: "Secret", indexConfigMaps: "ConfigMap", indexServers: "Server", indexAccessories: "Accessory"}
	for _, obj := range []client.Object{&kamalv1.Server{}, &kamalv1.Deployment{}, &kamalv1.Accessory{}} {
		for index, kind := range kinds {
			kind := kind
			if err := mgr.GetFieldIndexer().IndexField(ctx, obj, index, func(o client.Object) []string {
				return refs.Names(refsOf(o), kind)
			}); err != nil {
				return err
			}
		}
	}
	if err := setupSelectsIndex(ctx, mgr); err != nil {
		return err
	}
	if err := setupClaimIndex(ctx, mgr); err != nil {
		return err
	}
	return setupTenancyIndexes(ctx, mgr)
}

// referrers maps a changed object to reconcile requests for the objects of list's kind that
// name it in the given index.
func referrers(c client.Client, list client.ObjectList, index string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
		l := list.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, l, client.InNamespace(obj.GetNamespace()), client.MatchingFields{index: obj.GetName()}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing referrers", "index", index)
			return nil
		}
		return requestsFor(l)
	})
}

func requestsFor(l client.ObjectList) []reconcile.Request {
	var reqs []reconcile.Request
	_ = meta.EachListItem(l, func(o runtime.Object) error {
		if m, ok := o.(client.Object); ok {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()}})
		}
		return nil
	})
	return reqs
}
