package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/conditions"
)

// phase is one step of a reconcile. The one return convention of every phase: a nil result
// and a nil error let the next phase run; anything else ends the reconcile with that result
// and error. A problem that retrying soon cannot fix is a Stalled condition and a nil error; a
// transient one is returned, so controller-runtime logs it and retries with backoff.
type phase[S any] func(ctx context.Context, s S) (*ctrl.Result, error)

// runPhases runs phases in order until one ends the reconcile.
func runPhases[S any](ctx context.Context, s S, phases ...phase[S]) (ctrl.Result, error) {
	for _, p := range phases {
		res, err := p(ctx, s)
		if res != nil || err != nil {
			if res == nil {
				res = &ctrl.Result{}
			}
			return *res, err
		}
	}
	return ctrl.Result{}, nil
}

// done ends a reconcile with a requeue after the given result.
func done(res ctrl.Result) (*ctrl.Result, error) { return &res, nil }

// statusOf tells the shared boilerplate where a kind keeps its conditions and status.
type statusOf[T client.Object] struct {
	conditions func(T) *[]metav1.Condition
	status     func(T) any
}

// reconcileWithStatus is the boilerplate around a kind's normal reconcile, written once: add
// the finalizer (a patch, not an update of the whole object), record observedGeneration, run
// normal, then emit an event when Ready changed and patch the status when it changed.
func reconcileWithStatus[T client.Object](ctx context.Context, c client.Client, rec events.EventRecorder, obj T, finalizer string,
	kind statusOf[T], normal func(context.Context) (ctrl.Result, error)) (res ctrl.Result, retErr error) {
	if err := ensureFinalizer(ctx, c, obj, finalizer); err != nil {
		return ctrl.Result{}, err
	}
	patcher := newStatusPatcher(c, obj)
	before := readyReason(*kind.conditions(obj))
	defer func() {
		emitReadyTransition(rec, obj, before, *kind.conditions(obj))
		if err := patcher.patch(ctx, obj, func(o client.Object) any { return kind.status(o.(T)) }); err != nil && retErr == nil {
			retErr = err
		}
	}()
	defer recoverInto(&retErr)
	return normal(ctx)
}

// ensureFinalizer adds finalizer with a patch that fails on a concurrent change, so nothing
// else of the object is written.
func ensureFinalizer(ctx context.Context, c client.Client, obj client.Object, finalizer string) error {
	if controllerutil.ContainsFinalizer(obj, finalizer) {
		return nil
	}
	base := obj.DeepCopyObject().(client.Object)
	controllerutil.AddFinalizer(obj, finalizer)
	return c.Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

// removeFinalizer drops finalizer with a patch; an object already gone is fine.
func removeFinalizer(ctx context.Context, c client.Client, obj client.Object, finalizer string) error {
	if !controllerutil.ContainsFinalizer(obj, finalizer) {
		return nil
	}
	base := obj.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(obj, finalizer)
	return client.IgnoreNotFound(c.Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})))
}

// stillFinalizing reads obj past the cache (when reader is set) and reports whether it still
// holds finalizer: a reconcile queued while the finalizer went would otherwise redo the
// cleanup from a stale copy (and reconnect to a host already let go).
func stillFinalizing(ctx context.Context, reader client.Reader, obj client.Object, finalizer string) (bool, error) {
	if reader == nil {
		return true, nil
	}
	fresh := obj.DeepCopyObject().(client.Object)
	if err := reader.Get(ctx, client.ObjectKeyFromObject(obj), fresh); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return fresh.GetUID() == obj.GetUID() && controllerutil.ContainsFinalizer(fresh, finalizer), nil
}

// reportInert sets the FieldsNotActedOn condition from fields (removes it when there are
// none) and records a Warning event when the list changes, so a user who set a field that does
// nothing yet is told, in status and in `kubectl describe`.
func reportInert(rec events.EventRecorder, obj runtime.Object, conds *[]metav1.Condition, generation int64, fields []string) {
	if len(fields) == 0 {
		meta.RemoveStatusCondition(conds, kamalv1.ConditionInert)
		return
	}
	msg := inertMessage(fields)
	if c := meta.FindStatusCondition(*conds, kamalv1.ConditionInert); c == nil || c.Message != msg {
		rec.Eventf(obj, nil, corev1.EventTypeWarning, kamalv1.ReasonNotActedOn, "Reconcile", "%s", msg)
	}
	conditions.Set(conds, generation, kamalv1.ConditionInert, metav1.ConditionTrue, kamalv1.ReasonNotActedOn, msg)
}
