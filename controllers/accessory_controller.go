package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/conditions"
)

// AccessoryReconciler reconciles Accessories.
type AccessoryReconciler struct {
	client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=kamal.operator.dev,resources=accessories,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=kamal.operator.dev,resources=accessories/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=kamal.operator.dev,resources=accessories/finalizers,verbs=update

// Reconcile checks an Accessory's references and placement and reports them in status.
func (r *AccessoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	a := &kamalv1.Accessory{}
	if err := r.Get(ctx, req.NamespacedName, a); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	patcher := newStatusPatcher(r.Client, a)
	before := readyReason(a.Status.Conditions)
	defer func() {
		emitReadyTransition(r.Recorder, a, before, a.Status.Conditions)
		if err := patcher.patch(ctx, a, func(o client.Object) any { return o.(*kamalv1.Accessory).Status }); err != nil && retErr == nil {
			retErr = err
		}
	}()

	gen := a.Generation
	a.Status.ObservedGeneration = gen
	problem, err := checkRefs(ctx, r.Client, a.Namespace, refsOf(a))
	if err != nil {
		return ctrl.Result{}, err
	}
	if problem == nil {
		_, problem, err = placeAll(ctx, r.Client, a.Namespace, map[string]kamalv1.ServerSelector{"servers": a.Spec.Servers})
		if err != nil {
			return ctrl.Result{}, err
		}
	}
	if problem != nil {
		conditions.MarkStalled(&a.Status.Conditions, gen, problem.Reason, problem.Message)
		return ctrl.Result{}, nil
	}
	conditions.MarkUnknown(&a.Status.Conditions, gen, kamalv1.ReasonPending, "references and placement are valid; this build does not run containers on hosts")
	return ctrl.Result{}, nil
}

// SetupWithManager registers the controller and its watches.
func (r *AccessoryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	c := mgr.GetClient()
	return ctrl.NewControllerManagedBy(mgr).
		For(&kamalv1.Accessory{}).
		Watches(&corev1.Secret{}, referrers(c, &kamalv1.AccessoryList{}, indexSecrets)).
		Watches(&corev1.ConfigMap{}, referrers(c, &kamalv1.AccessoryList{}, indexConfigMaps)).
		Watches(&kamalv1.Server{}, allInNamespace(c, &kamalv1.AccessoryList{})).
		Named("accessory").
		Complete(r)
}
