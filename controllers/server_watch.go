package controllers

// The watch of Servers by Deployments and Accessories. A namespace may hold thousands of
// Servers, each reporting its state: a change of one wakes only the objects that select it,
// and only when it changed something they read.

import (
	"context"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// indexSelects indexes Deployments and Accessories by the Servers they select, in any
// namespace: "namespace/name" for a Server named, "namespace/*" for a label selector there
// (matched against the Server's labels when one changes).
const indexSelects = "kamal.operator.dev/selects"

// selectsValues are an object's indexSelects values.
func selectsValues(objNamespace string, sels ...kamalv1.ServerSelector) []string {
	seen := map[string]bool{}
	for _, sel := range sels {
		ns := selectorNamespace(objNamespace, sel)
		if sel.Selector != nil {
			seen[ns+"/*"] = true
		}
		for _, n := range sel.Names {
			seen[ns+"/"+n] = true
		}
	}
	return sortedKeys(seen)
}

func setupSelectsIndex(ctx context.Context, mgr ctrl.Manager) error {
	for _, obj := range []client.Object{&kamalv1.Deployment{}, &kamalv1.Accessory{}} {
		if err := mgr.GetFieldIndexer().IndexField(ctx, obj, indexSelects, func(o client.Object) []string {
			return selectsValues(o.GetNamespace(), selectorsOf(o)...)
		}); err != nil {
			return err
		}
	}
	return nil
}

// serverUsers maps a changed Server to the objects of list's kind that select it, for the
// changes serverChanged lets through. On an update both the old and the new Server are mapped,
// so an object whose selector no longer matches after a relabelling is woken too, to leave.
func serverUsers(c client.Client, list client.ObjectList) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(selectingObjects(c, list))
}

// selectingObjects lists the objects of list's kind that name the Server or select it by
// labels. A Server being deleted waits for everything on its host to be removed, which any
// object of its namespace may have left there (it may no longer select it): it wakes them all.
func selectingObjects(c client.Reader, list client.ObjectList) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		srv, ok := obj.(*kamalv1.Server)
		if !ok {
			return nil
		}
		var reqs []reconcile.Request
		seen := map[types.NamespacedName]bool{}
		add := func(o client.Object, labelled bool) {
			key := client.ObjectKeyFromObject(o)
			if !seen[key] && (!labelled || selectsByLabels(o, srv)) {
				seen[key] = true
				reqs = append(reqs, reconcile.Request{NamespacedName: key})
			}
		}
		queries := []struct {
			opt      client.ListOption
			labelled bool
		}{
			{client.MatchingFields{indexSelects: srv.Namespace + "/" + srv.Name}, false},
			{client.MatchingFields{indexSelects: srv.Namespace + "/*"}, true},
		}
		if !srv.DeletionTimestamp.IsZero() {
			queries = append(queries, struct {
				opt      client.ListOption
				labelled bool
			}{client.InNamespace(srv.Namespace), false})
		}
		for _, q := range queries {
			l := list.DeepCopyObject().(client.ObjectList)
			if err := c.List(ctx, l, q.opt); err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "listing the users of a Server")
				return nil
			}
			_ = meta.EachListItem(l, func(o runtime.Object) error {
				if m, ok := o.(client.Object); ok {
					add(m, q.labelled)
				}
				return nil
			})
		}
		return reqs
	}
}

// selectsByLabels: one of obj's label selectors of srv's namespace matches srv's labels. An
// invalid selector counts as a match: the object reports it.
func selectsByLabels(obj client.Object, srv *kamalv1.Server) bool {
	for _, sel := range selectorsOf(obj) {
		if sel.Selector == nil || selectorNamespace(obj.GetNamespace(), sel) != srv.Namespace {
			continue
		}
		ls, err := metav1.LabelSelectorAsSelector(sel.Selector)
		if err != nil || ls.Matches(labels.Set(srv.Labels)) {
			return true
		}
	}
	return false
}

// serverChanged lets through the Server updates that can change what a Deployment or
// Accessory does or reports: its spec, labels, deletion, host identity, facts, or a condition's
// status, reason or generation. A reworded message or a recorded proxy hash wakes no one.
var serverChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	o, ok := e.ObjectOld.(*kamalv1.Server)
	n, ok2 := e.ObjectNew.(*kamalv1.Server)
	if !ok || !ok2 {
		return true
	}
	return o.Generation != n.Generation || !maps.Equal(o.Labels, n.Labels) ||
		!o.DeletionTimestamp.Equal(n.DeletionTimestamp) ||
		o.Status.HostKeyFingerprint != n.Status.HostKeyFingerprint ||
		!equality.Semantic.DeepEqual(o.Status.Facts, n.Status.Facts) ||
		!slices.Equal(conditionStates(o.Status.Conditions), conditionStates(n.Status.Conditions))
}}

type conditionState struct {
	typ, reason string
	status      metav1.ConditionStatus
	generation  int64
}

func conditionStates(conds []metav1.Condition) []conditionState {
	out := make([]conditionState, len(conds))
	for i, c := range conds {
		out[i] = conditionState{c.Type, c.Reason, c.Status, c.ObservedGeneration}
	}
	slices.SortFunc(out, func(a, b conditionState) int {
		switch {
		case a.typ < b.typ:
			return -1
		case a.typ > b.typ:
			return 1
		}
		return 0
	})
	return out
}
