package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	dockerclient "github.com/moby/moby/client"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/conditions"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/internal/placement"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/internal/remote"
)

// releaseRecheck is how often a Server being deleted looks again at what it waits for, besides
// the watches of Deployments, Accessories and Servers that wake it.
const releaseRecheck = 10 * time.Second

// finalize lets a deleted Server go once nothing of its namespace runs on its host: the
// Deployments and Accessories remove their containers, routes and files from a Server being
// deleted (it counts for them no more), and the Server waits for that, so no container with
// secret env is left running unmanaged. Then the proxy goes, unless another Server manages the
// host. A host that cannot be reached for good (refused key, missing Secret) does not hold the
// Server; one that is only unreachable does while something may still run there.
func (r *ServerReconciler) finalize(ctx context.Context, srv *kamalv1.Server) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(srv, ServerFinalizer) {
		return ctrl.Result{}, nil
	}
	if ok, err := stillFinalizing(ctx, r.APIReader, srv, ServerFinalizer); !ok || err != nil {
		return ctrl.Result{}, err
	}
	if owner, _, err := hostOwner(ctx, r.Client, srv); err != nil {
		return ctrl.Result{}, err
	} else if owner != nil {
		// A duplicate never touches the host, not even to clean up: it is the owner's.
		r.Fleet.Forget(serverKey(srv))
		return ctrl.Result{}, removeFinalizer(ctx, r.Client, srv, ServerFinalizer)
	}
	patcher := newStatusPatcher(r.Client, srv)
	waiting, err := r.release(ctx, srv)
	if waiting != "" || err != nil {
		if err == nil {
			r.sayWaiting(srv, waiting)
		}
		if perr := patcher.patch(ctx, srv, func(o client.Object) any { return o.(*kamalv1.Server).Status }); perr != nil && err == nil {
			err = perr
		}
		return ctrl.Result{RequeueAfter: releaseRecheck}, err
	}
	r.Fleet.Forget(serverKey(srv))
	return ctrl.Result{}, removeFinalizer(ctx, r.Client, srv, ServerFinalizer)
}

// sayWaiting puts what the Server waits for in its conditions, with an event when it changed.
func (r *ServerReconciler) sayWaiting(srv *kamalv1.Server, msg string) {
	if c := meta.FindStatusCondition(srv.Status.Conditions, kamalv1.ConditionReady); c == nil || c.Reason != kamalv1.ReasonServerDeleting || c.Message != msg {
		r.Recorder.Eventf(srv, nil, corev1.EventTypeNormal, kamalv1.ReasonServerDeleting, "Delete", "%s", msg)
	}
	conditions.MarkNotReady(&srv.Status.Conditions, srv.Generation, kamalv1.ReasonServerDeleting, msg)
}

// release does what the Server's deletion needs on its host; it returns what it still waits
// for ("" when the finalizer may go).
func (r *ServerReconciler) release(ctx context.Context, srv *kamalv1.Server) (string, error) {
	var servers kamalv1.ServerList
	if err := r.List(ctx, &servers, client.InNamespace(srv.Namespace)); err != nil {
		return "", err
	}
	// A Server behind this one needs it to reach its own host, for its own cleanup.
	var jumpers []string
	for _, s := range servers.Items {
		if s.Name != srv.Name && s.Spec.JumpHost != nil && s.Spec.JumpHost.ServerName == srv.Name {
			jumpers = append(jumpers, s.Name)
		}
	}
	if len(jumpers) > 0 {
		return fmt.Sprintf("being deleted: waiting for Server %s, which connects through it, to go first", strings.Join(jumpers, ", ")), nil
	}
	var deployments kamalv1.DeploymentList
	if err := r.List(ctx, &deployments, client.InNamespace(srv.Namespace)); err != nil {
		return "", err
	}
	var accessories kamalv1.AccessoryList
	if err := r.List(ctx, &accessories, client.InNamespace(srv.Namespace)); err != nil {
		return "", err
	}
	host, lost, err := r.hostToRelease(ctx, srv)
	if err != nil {
		return "", err
	}
	if host == nil {
		users := placedOn(srv, deployments.Items, accessories.Items)
		switch {
		case len(users) == 0:
			r.Recorder.Eventf(srv, nil, corev1.EventTypeWarning, "CleanupSkipped", "Delete", "proxy container left on the host: %s", lost.msg)
		case lost.forGood:
			r.Recorder.Eventf(srv, nil, corev1.EventTypeWarning, "CleanupSkipped", "Delete",
				"the host cannot be reached (%s): whatever %s left there keeps running", lost.msg, strings.Join(users, ", "))
		default:
			return fmt.Sprintf("being deleted: the host is not reachable (%s), so it cannot be seen whether %s left it; waiting (to give up, remove the finalizer %s)",
				lost.msg, strings.Join(users, ", "), ServerFinalizer), nil
		}
		return "", nil
	}
	opCtx, cancel := context.WithTimeout(ctx, hostOpTimeout)
	defer cancel()
	ours, err := host.Docker.ContainerList(opCtx, dockerclient.ContainerListOptions{All: true,
		Filters: dockerclient.Filters{}.Add("label", kamalv1.LabelNamespace+"="+srv.Namespace)})
	if err != nil {
		return "", err
	}
	waits, orphans := hostUsers(srv, ours.Items, deployments.Items, accessories.Items)
	guests, err := r.guestsOnHost(opCtx, srv, host)
	if err != nil {
		return "", err
	}
	waits = append(waits, guests...)
	if len(waits) > 0 {
		return "being deleted: waiting for " + strings.Join(waits, ", ") + " to leave the host", nil
	}
	if len(orphans) > 0 {
		r.Recorder.Eventf(srv, nil, corev1.EventTypeWarning, "CleanupSkipped", "Delete",
			"containers whose Deployment or Accessory no longer exists are left on the host: %s", strings.Join(orphans, ", "))
	}
	return "", r.releaseProxy(opCtx, srv, host)
}

// lostHost says why a host could not be reached, and whether retrying can change that.
type lostHost struct {
	msg     string
	forGood bool
}

// hostToRelease is the host's connection: the open one, else a new one. A nil host comes with
// why; an error is a failed read of the cluster, to retry.
func (r *ServerReconciler) hostToRelease(ctx context.Context, srv *kamalv1.Server) (*fleet.Host, lostHost, error) {
	if h := r.Fleet.Cached(serverKey(srv)); h != nil {
		return h, lostHost{}, nil
	}
	target, problem, err := targetFor(ctx, r.Client, srv, false)
	if err != nil {
		return nil, lostHost{}, err
	}
	if problem != nil {
		return nil, lostHost{msg: problem.Message, forGood: true}, nil
	}
	opCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	host, err := r.Fleet.Connect(opCtx, serverKey(srv), target, srv.Spec.Docker.SocketPath)
	if err != nil {
		return nil, lostHost{msg: err.Error(), forGood: remote.IsHostKeyMismatch(err) || remote.IsAuthFailure(err)}, nil
	}
	return host, lostHost{}, nil
}

// releaseProxy removes the proxy from a host no other Server manages (the same address; kept
// simple on purpose) and where no app container is left.
func (r *ServerReconciler) releaseProxy(ctx context.Context, srv *kamalv1.Server, host *fleet.Host) error {
	var all kamalv1.ServerList
	if err := r.List(ctx, &all); err != nil {
		return err
	}
	for _, o := range all.Items {
		if o.Spec.Address == srv.Spec.Address && o.DeletionTimestamp.IsZero() && !(o.Namespace == srv.Namespace && o.Name == srv.Name) {
			r.Recorder.Eventf(srv, nil, corev1.EventTypeNormal, "ProxyKept", "Delete", "Server %s/%s also manages %s: its proxy stays", o.Namespace, o.Name, srv.Spec.Address)
			return nil
		}
	}
	apps, err := host.Docker.ContainerList(ctx, dockerclient.ContainerListOptions{All: true, Filters: dockerclient.Filters{}.Add("label", kamalv1.LabelDeployment)})
	if err != nil {
		return err
	}
	if n := len(apps.Items); n > 0 {
		r.Recorder.Eventf(srv, nil, corev1.EventTypeWarning, "ProxyKept", "Delete", "%d app containers of other namespaces still use the proxy: it stays", n)
		return nil
	}
	if err := proxy.Remove(ctx, host.Docker); err != nil {
		return fmt.Errorf("removing the proxy: %w", err)
	}
	r.Recorder.Eventf(srv, nil, corev1.EventTypeNormal, "ProxyRemoved", "Delete", "removed the proxy from %s", srv.Spec.Address)
	_, _ = convergeNetworks(ctx, host) // namespace networks with nothing left go too
	return nil
}

// hostUsers says what a Server being deleted waits for, from the containers of its namespace on
// its host: waits names the Deployments and Accessories that exist and have containers there
// (they remove them), and those being deleted that are placed on it, whose cleanup may still
// need it (an Accessory's data folder, after a Server's deletion made it leave the host);
// orphans names the containers whose object is gone. Both sorted.
func hostUsers(srv *kamalv1.Server, containers []container.Summary, deployments []kamalv1.Deployment, accessories []kamalv1.Accessory) (waits, orphans []string) {
	ns := srv.Namespace
	counts := map[string]int{}
	exists := map[string]string{} // "Deployment a" -> a note
	for _, d := range deployments {
		note := ""
		if d.Spec.Suspend {
			note = "; suspended, it changes nothing on hosts until resumed or deleted"
		}
		exists["Deployment "+d.Name] = note
	}
	for _, a := range accessories {
		exists["Accessory "+a.Name] = ""
	}
	for _, c := range containers {
		l := c.Labels
		if l[kamalv1.LabelNamespace] != ns {
			continue
		}
		var owner string
		switch {
		case l[kamalv1.LabelDeployment] != "":
			owner = "Deployment " + l[kamalv1.LabelDeployment]
		case l[kamalv1.LabelAccessory] != "":
			owner = "Accessory " + l[kamalv1.LabelAccessory]
		default:
			continue
		}
		if _, ok := exists[owner]; !ok {
			orphans = append(orphans, containerName(c.Names)+" ("+owner+")")
			continue
		}
		counts[owner]++
	}
	var deleting []kamalv1.Deployment
	for _, d := range deployments {
		if !d.DeletionTimestamp.IsZero() {
			deleting = append(deleting, d)
		}
	}
	var deletingAcc []kamalv1.Accessory
	for _, a := range accessories {
		if !a.DeletionTimestamp.IsZero() {
			deletingAcc = append(deletingAcc, a)
		}
	}
	for _, owner := range placedOn(srv, deleting, deletingAcc) {
		if _, ok := counts[owner]; !ok {
			counts[owner] = 0
		}
	}
	for _, owner := range sortedKeys(counts) {
		switch n := counts[owner]; n {
		case 0:
			waits = append(waits, owner+" (being deleted)")
		case 1:
			waits = append(waits, fmt.Sprintf("%s (1 container%s)", owner, exists[owner]))
		default:
			waits = append(waits, fmt.Sprintf("%s (%d containers%s)", owner, n, exists[owner]))
		}
	}
	slices.Sort(orphans)
	return waits, orphans
}

// placedOn names the Deployments and Accessories that select srv or report it in status: what
// may run on its host when the host cannot be looked at.
func placedOn(srv *kamalv1.Server, deployments []kamalv1.Deployment, accessories []kamalv1.Accessory) []string {
	servers := []kamalv1.Server{*srv}
	selects := func(sel kamalv1.ServerSelector) bool {
		picked, _ := placement.Leaving(sel, servers)
		return len(picked) > 0
	}
	var users []string
	for _, d := range deployments {
		on := slices.ContainsFunc(d.Status.Targets, func(t kamalv1.TargetStatus) bool { return t.Server == srv.Name })
		for _, role := range d.Spec.Roles {
			on = on || selects(role.Servers)
		}
		if on {
			users = append(users, "Deployment "+d.Name)
		}
	}
	for _, a := range accessories {
		if selects(a.Spec.Servers) || slices.ContainsFunc(a.Status.Servers, func(s kamalv1.AccessoryServerStatus) bool { return s.Server == srv.Name }) {
			users = append(users, "Accessory "+a.Name)
		}
	}
	slices.Sort(users)
	return users
}

// terminatingServers wakes the Servers being deleted in the namespace of a changed Deployment
// or Accessory: they may be waiting for it to leave their hosts.
func terminatingServers(c client.Client) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
		var servers kamalv1.ServerList
		if err := c.List(ctx, &servers, client.InNamespace(obj.GetNamespace())); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		for _, s := range servers.Items {
			if !s.DeletionTimestamp.IsZero() {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&s)})
			}
		}
		return reqs
	})
}

// jumpServer wakes the jump Server a changed Server connects through: a jump Server being
// deleted waits for the Servers behind it to go.
func jumpServer() handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
		s, ok := obj.(*kamalv1.Server)
		if !ok || s.Spec.JumpHost == nil || s.Spec.JumpHost.ServerName == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: s.Namespace, Name: s.Spec.JumpHost.ServerName}}}
	})
}

// guestsOnHost names the Deployments and Accessories of other namespaces that place on srv
// (spec.allowedNamespaces) and still have containers on its host: they leave it as they do a
// Server of their own being deleted, and the Server waits for them as for its own.
func (r *ServerReconciler) guestsOnHost(ctx context.Context, srv *kamalv1.Server, host *fleet.Host) ([]string, error) {
	users := map[string]bool{}
	for _, list := range []client.ObjectList{&kamalv1.DeploymentList{}, &kamalv1.AccessoryList{}} {
		for _, key := range []string{srv.Namespace + "/" + srv.Name, srv.Namespace + "/" + anyGuest} {
			l := list.DeepCopyObject().(client.ObjectList)
			if err := r.List(ctx, l, client.MatchingFields{indexGuestOf: key}); err != nil {
				return nil, err
			}
			for _, req := range requestsFor(l) {
				kind := "Deployment"
				if _, ok := list.(*kamalv1.AccessoryList); ok {
					kind = "Accessory"
				}
				users[kind+" "+req.Namespace+"/"+req.Name] = true
			}
		}
	}
	if len(users) == 0 {
		return nil, nil
	}
	all, err := host.Docker.ContainerList(ctx, dockerclient.ContainerListOptions{All: true,
		Filters: dockerclient.Filters{}.Add("label", kamalv1.LabelManagedBy+"="+kamalv1.ManagerName)})
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, c := range all.Items {
		l := c.Labels
		ns := l[kamalv1.LabelNamespace]
		var owner string
		switch {
		case ns == "" || ns == srv.Namespace:
			continue
		case l[kamalv1.LabelDeployment] != "":
			owner = "Deployment " + ns + "/" + l[kamalv1.LabelDeployment]
		case l[kamalv1.LabelAccessory] != "":
			owner = "Accessory " + ns + "/" + l[kamalv1.LabelAccessory]
		default:
			continue
		}
		if users[owner] {
			counts[owner]++
		}
	}
	var waits []string
	for _, owner := range sortedKeys(counts) {
		waits = append(waits, fmt.Sprintf("%s (guest, %d containers)", owner, counts[owner]))
	}
	return waits, nil
}
