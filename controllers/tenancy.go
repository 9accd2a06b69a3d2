package controllers

// Tenancy: which namespaces may place on a Server (spec.allowedNamespaces), what guests — objects
// placed on a Server of another namespace — may ask (the guest policy), and one Server object
// per host (a younger Server of a host is a duplicate and never touches it). The decisions are
// internal/tenancy's; this file reads the cluster for them, and wires the indexes and watches
// that re-queue what a change affects.

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/conditions"
	"github.com/kamal-operator/kamal-operator/internal/placement"
	"github.com/kamal-operator/kamal-operator/internal/servertarget"
	"github.com/kamal-operator/kamal-operator/internal/tenancy"
)

// The controller reads Namespace labels for spec.allowedNamespaces from Selector.
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

const (
	// indexHostIdentity indexes Servers by tenancy.HostIdentities, to find the other Servers of
	// a host across namespaces.
	indexHostIdentity = "kamal.operator.dev/host"
	// indexGuestOf indexes Deployments and Accessories by the Servers of other namespaces they
	// select: "namespace/name" for a name, "namespace/*" for a label selector, and "*" for any,
	// so a change of such a Server, or a relabelled Namespace, re-queues them.
	indexGuestOf = "kamal.operator.dev/guest-of"
	anyGuest     = "*"
)

// serverRef is how a Deployment or Accessory names a Server in its placement and status: the
// name for a Server of its own namespace, "namespace/name" for one of another.
func serverRef(objNamespace string, srv *kamalv1.Server) string {
	if srv.Namespace == objNamespace {
		return srv.Name
	}
	return srv.Namespace + "/" + srv.Name
}

// serverKeyOf reads a serverRef back.
func serverKeyOf(objNamespace, ref string) types.NamespacedName {
	return servertarget.RefKey(objNamespace, ref)
}

// selectorNamespace is the namespace a selector picks Servers in.
func selectorNamespace(objNamespace string, sel kamalv1.ServerSelector) string {
	if sel.Namespace != "" {
		return sel.Namespace
	}
	return objNamespace
}

// guestOfValues are an object's indexGuestOf values.
func guestOfValues(objNamespace string, sels ...kamalv1.ServerSelector) []string {
	seen := map[string]bool{}
	for _, sel := range sels {
		ns := selectorNamespace(objNamespace, sel)
		if ns == objNamespace {
			continue
		}
		seen[anyGuest] = true
		if sel.Selector != nil {
			seen[ns+"/*"] = true
		}
		for _, n := range sel.Names {
			seen[ns+"/"+n] = true
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

func selectorsOf(obj client.Object) []kamalv1.ServerSelector {
	switch o := obj.(type) {
	case *kamalv1.Deployment:
		var out []kamalv1.ServerSelector
		for _, name := range sortedKeys(o.Spec.Roles) {
			out = append(out, o.Spec.Roles[name].Servers)
		}
		return out
	case *kamalv1.Accessory:
		return []kamalv1.ServerSelector{o.Spec.Servers}
	}
	return nil
}

// setupTenancyIndexes registers indexHostIdentity and indexGuestOf.
func setupTenancyIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &kamalv1.Server{}, indexHostIdentity, func(o client.Object) []string {
		return tenancy.HostIdentities(o.(*kamalv1.Server))
	}); err != nil {
		return err
	}
	for _, obj := range []client.Object{&kamalv1.Deployment{}, &kamalv1.Accessory{}} {
		if err := idx.IndexField(ctx, obj, indexGuestOf, func(o client.Object) []string {
			return guestOfValues(o.GetNamespace(), selectorsOf(o)...)
		}); err != nil {
			return err
		}
	}
	return nil
}

// hostOwner returns the Server that manages srv's host when that is another, older Server,
// with what the two share (see tenancy.Owner); nil when srv is the owner.
func hostOwner(ctx context.Context, c client.Reader, srv *kamalv1.Server) (*kamalv1.Server, string, error) {
	var candidates []kamalv1.Server
	for _, id := range tenancy.HostIdentities(srv) {
		var l kamalv1.ServerList
		// Read only (the owner is only named): no copy of each Server on every pass.
		if err := c.List(ctx, &l, client.MatchingFields{indexHostIdentity: id}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, "", err
		}
		candidates = append(candidates, l.Items...)
	}
	owner, how := tenancy.Owner(srv, candidates)
	return owner, how, nil
}

// duplicateMessage says, on a duplicate Server, which Server manages its host.
func duplicateMessage(owner *kamalv1.Server, how string) string {
	return fmt.Sprintf("Server %s, the older one, manages this host (%s): this Server never touches it; delete one of them (when %s goes, this one takes over)",
		serverKey(owner), how, serverKey(owner))
}

// forgetStaleFingerprint clears status.hostKeyFingerprint when it was not seen under the current
// spec (the address may have changed since): a stale key would make a Server of the old host
// look like a duplicate of this one. connect records it again.
func forgetStaleFingerprint(srv *kamalv1.Server) {
	if c := meta.FindStatusCondition(srv.Status.Conditions, kamalv1.ConditionReachable); c == nil || c.ObservedGeneration != srv.Generation {
		srv.Status.HostKeyFingerprint = ""
	}
}

// checkHostOwner stalls a Server whose host an older Server manages, before anything is done
// on the host: by address and port before connecting, by host key after. A connection the
// reconcile opened is closed, so no other controller uses it; nil result means continue.
func (r *ServerReconciler) checkHostOwner(ctx context.Context, srv *kamalv1.Server) (*ctrl.Result, error) {
	owner, how, err := hostOwner(ctx, r.Client, srv)
	if err != nil || owner == nil {
		return nil, err
	}
	r.Fleet.Forget(serverKey(srv))
	gen, msg := srv.Generation, duplicateMessage(owner, how)
	conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionReachable, metav1.ConditionFalse, kamalv1.ReasonDuplicateServer, "not connected: "+msg)
	conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionDockerReady, metav1.ConditionUnknown, kamalv1.ReasonDuplicateServer, "not managed by this Server")
	conditions.Set(&srv.Status.Conditions, gen, kamalv1.ConditionProxyReady, metav1.ConditionUnknown, kamalv1.ReasonDuplicateServer, "not managed by this Server")
	conditions.MarkStalled(&srv.Status.Conditions, gen, kamalv1.ReasonDuplicateServer, msg)
	// The owner's deletion, or a change of either Server, wakes this one (sameHost).
	return done(ctrl.Result{})
}

// namespaceLabels reads the labels of a Namespace; one being deleted or gone has none.
func namespaceLabels(ctx context.Context, c client.Reader, name string) (map[string]string, error) {
	var ns corev1.Namespace
	if err := c.Get(ctx, types.NamespacedName{Name: name}, &ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return ns.Labels, nil
}

// admission decides, for the objects of one namespace, which Servers they may use: Servers of
// another namespace must allow it, and no Server that duplicates another is used.
type admission struct {
	c         client.Reader
	namespace string
	labels    map[string]string
	read      bool
}

// refuse returns the problem that keeps the object off srv, nil when it may use it.
func (a *admission) refuse(ctx context.Context, srv *kamalv1.Server) (*refProblem, error) {
	if tenancy.NeedsNamespaceLabels(srv, a.namespace) && !a.read {
		l, err := namespaceLabels(ctx, a.c, a.namespace)
		if err != nil {
			return nil, err
		}
		a.labels, a.read = l, true
	}
	ok, err := tenancy.Allows(srv, a.namespace, a.labels)
	if err != nil || !ok {
		msg := fmt.Sprintf("Server %s does not allow namespace %s (its spec.allowedNamespaces: %s); nothing is placed",
			serverKey(srv), a.namespace, tenancy.DescribeAllowed(srv))
		if err != nil {
			msg += ": " + err.Error()
		}
		return &refProblem{Reason: kamalv1.ReasonNamespaceNotAllowed, Message: msg}, nil
	}
	owner, how, err := hostOwner(ctx, a.c, srv)
	if err != nil || owner == nil {
		return nil, err
	}
	return &refProblem{Reason: kamalv1.ReasonDuplicateServer, Message: fmt.Sprintf(
		"Server %s is a duplicate: %s, the older one, manages its host (%s); nothing runs through it until one of them is deleted",
		serverKey(srv), serverKey(owner), how)}, nil
}

// guestRefs are the Servers of other namespaces an object may have containers on: those its
// selectors pick now (allowed or not: connectServers decides) and those its status names.
func guestRefs(ctx context.Context, c client.Reader, objNamespace string, sels []kamalv1.ServerSelector, inStatus []string) ([]string, error) {
	seen := map[string]bool{}
	for _, ref := range inStatus {
		if strings.Contains(ref, "/") {
			seen[ref] = true
		}
	}
	for _, sel := range sels {
		ns := selectorNamespace(objNamespace, sel)
		if ns == objNamespace {
			continue
		}
		var l kamalv1.ServerList
		if err := c.List(ctx, &l, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		picked, _, err := placement.Select(sel, l.Items)
		if err != nil {
			continue // the selector is reported by placement
		}
		for _, name := range picked {
			seen[ns+"/"+name] = true
		}
	}
	return sortedKeys(seen), nil
}

func deploymentGuests(ctx context.Context, c client.Reader, d *kamalv1.Deployment) ([]string, error) {
	var inStatus []string
	for _, t := range d.Status.Targets {
		inStatus = append(inStatus, t.Server)
	}
	more, err := serversOfNamespaces(ctx, c, d.Status.GuestNamespaces)
	if err != nil {
		return nil, err
	}
	return guestRefs(ctx, c, d.Namespace, selectorsOf(d), append(inStatus, more...))
}

// serversOfNamespaces are the serverRefs of every Server of namespaces: a bounded status does
// not name every Server an object ran on, so each Server of the namespaces it placed on is
// looked at.
func serversOfNamespaces(ctx context.Context, c client.Reader, namespaces []string) ([]string, error) {
	var refs []string
	for _, ns := range namespaces {
		var l kamalv1.ServerList
		if err := c.List(ctx, &l, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for i := range l.Items {
			refs = append(refs, ns+"/"+l.Items[i].Name)
		}
	}
	return refs, nil
}

func accessoryGuests(ctx context.Context, c client.Reader, a *kamalv1.Accessory) ([]string, error) {
	var inStatus []string
	for _, s := range a.Status.Servers {
		inStatus = append(inStatus, s.Server)
	}
	more, err := serversOfNamespaces(ctx, c, a.Status.GuestNamespaces)
	if err != nil {
		return nil, err
	}
	return guestRefs(ctx, c, a.Namespace, selectorsOf(a), append(inStatus, more...))
}

// guestProblem is the GuestPolicy problem of an object placed as a guest, nil when the policy
// allows everything it asks. placed maps a selection (role) to its serverRefs.
func guestProblem(placed map[string][]string, check func(guestSelections []string) []tenancy.Violation) *refProblem {
	var guests, where []string
	for _, sel := range sortedKeys(placed) {
		for _, ref := range placed[sel] {
			if strings.Contains(ref, "/") {
				guests = append(guests, sel)
				where = append(where, ref)
				break
			}
		}
	}
	if len(guests) == 0 {
		return nil
	}
	vs := check(guests)
	if len(vs) == 0 {
		return nil
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.String()
	}
	return &refProblem{Reason: kamalv1.ReasonGuestPolicy, Message: fmt.Sprintf(
		"placed on Servers of another namespace (%s), where the controller's guest policy refuses: %s; nothing is placed",
		strings.Join(where, ", "), strings.Join(parts, "; "))}
}

// sameHost maps a changed Server to the other Servers of its host, so a duplicate notices its
// owner's deletion (and takes over) or a new older Server of its host.
func sameHost(c client.Client) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
		srv, ok := obj.(*kamalv1.Server)
		if !ok {
			return nil
		}
		var reqs []reconcile.Request
		for _, id := range tenancy.HostIdentities(srv) {
			var l kamalv1.ServerList
			if err := c.List(ctx, &l, client.MatchingFields{indexHostIdentity: id}, client.UnsafeDisableDeepCopy); err != nil { // read only
				ctrl.LoggerFrom(ctx).Error(err, "listing the Servers of a host")
				return nil
			}
			for _, s := range l.Items {
				// One being deleted has nothing to learn: its finalizer runs on its own.
				if s.UID != srv.UID && s.DeletionTimestamp.IsZero() {
					reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&s)})
				}
			}
		}
		return reqs
	})
}

// namespaceGuests maps a relabelled Namespace to its objects of list's kind that place on
// Servers of other namespaces: a Server's allowedNamespaces selector may now match it, or not.
// watched are the namespaces the cache holds (nil: all); the others have no objects to wake.
func namespaceGuests(c client.Client, list client.ObjectList, watched []string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
		if watched != nil && !slices.Contains(watched, obj.GetName()) {
			return nil
		}
		l := list.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, l, client.InNamespace(obj.GetName()), client.MatchingFields{indexGuestOf: anyGuest}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing the guests of a namespace")
			return nil
		}
		return requestsFor(l)
	})
}
