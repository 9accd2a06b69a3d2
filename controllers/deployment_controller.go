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

// DeploymentReconciler reconciles Deployments.
type DeploymentReconciler struct {
	client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=kamal.operator.dev,resources=deployments,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=kamal.operator.dev,resources=deployments/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=kamal.operator.dev,resources=deployments/finalizers,verbs=update

// Reconcile checks a Deployment's references and placement and reports them in status.
func (r *DeploymentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	d := &kamalv1.Deployment{}
	if err := r.Get(ctx, req.NamespacedName, d); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if d.Spec.Suspend {
		return ctrl.Result{}, nil
	}
	patcher := newStatusPatcher(r.Client, d)
	before := readyReason(d.Status.Conditions)
	defer func() {
		emitReadyTransition(r.Recorder, d, before, d.Status.Conditions)
		if err := patcher.patch(ctx, d, func(o client.Object) any { return o.(*kamalv1.Deployment).Status }); err != nil && retErr == nil {
			retErr = err
		}
	}()

	gen := d.Generation
	d.Status.ObservedGeneration = gen
	problem, err := checkRefs(ctx, r.Client, d.Namespace, refsOf(d))
	if err != nil {
		return ctrl.Result{}, err
	}
	if problem == nil {
		selectors := make(map[string]kamalv1.ServerSelector, len(d.Spec.Roles))
		for name, role := range d.Spec.Roles {
			selectors["role "+name] = role.Servers
		}
		_, problem, err = placeAll(ctx, r.Client, d.Namespace, selectors)
		if err != nil {
			return ctrl.Result{}, err
		}
	}
	if problem != nil {
		conditions.MarkStalled(&d.Status.Conditions, gen, problem.Reason, problem.Message)
		return ctrl.Result{}, nil
	}
	conditions.MarkUnknown(&d.Status.Conditions, gen, kamalv1.ReasonPending, "references and placement are valid; this build does not deploy to hosts")
	return ctrl.Result{}, nil
}

// SetupWithManager registers the controller and its watches.
func (r *DeploymentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	c := mgr.GetClient()
	return ctrl.NewControllerManagedBy(mgr).
		For(&kamalv1.Deployment{}).
		Watches(&corev1.Secret{}, referrers(c, &kamalv1.DeploymentList{}, indexSecrets)).
		Watches(&corev1.ConfigMap{}, referrers(c, &kamalv1.DeploymentList{}, indexConfigMaps)).
		Watches(&kamalv1.Accessory{}, referrers(c, &kamalv1.DeploymentList{}, indexAccessories)).
		Watches(&kamalv1.Server{}, allInNamespace(c, &kamalv1.DeploymentList{})).
		Named("deployment").
		Complete(r)
}
