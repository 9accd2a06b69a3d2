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

// ServerReconciler reconciles Servers.
type ServerReconciler struct {
	client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=kamal.operator.dev,resources=servers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=kamal.operator.dev,resources=servers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=kamal.operator.dev,resources=servers/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets;configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile checks a Server's references and reports them in status.
func (r *ServerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	srv := &kamalv1.Server{}
	if err := r.Get(ctx, req.NamespacedName, srv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	patcher := newStatusPatcher(r.Client, srv)
	before := readyReason(srv.Status.Conditions)
	defer func() {
		emitReadyTransition(r.Recorder, srv, before, srv.Status.Conditions)
		if err := patcher.patch(ctx, srv, func(o client.Object) any { return o.(*kamalv1.Server).Status }); err != nil && retErr == nil {
			retErr = err
		}
	}()

	gen := srv.Generation
	srv.Status.ObservedGeneration = gen
	problem, err := checkRefs(ctx, r.Client, srv.Namespace, refsOf(srv))
	if err != nil {
		return ctrl.Result{}, err
	}
	if problem != nil {
		conditions.MarkStalled(&srv.Status.Conditions, gen, problem.Reason, problem.Message)
		return ctrl.Result{}, nil
	}
	conditions.MarkUnknown(&srv.Status.Conditions, gen, kamalv1.ReasonPending, "references are valid; this build does not connect to hosts")
	return ctrl.Result{}, nil
}

// SetupWithManager registers the controller and its watches.
func (r *ServerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&kamalv1.Server{}).
		Watches(&corev1.Secret{}, referrers(mgr.GetClient(), &kamalv1.ServerList{}, indexSecrets)).
		Named("server").
		Complete(r)
}
