package controllers

// Namespace networks on hosts. Every namespace has its own Docker network on each host it uses
// (docker.NamespaceNetwork): its apps and accessories join it and reach each other by name, the
// proxy is attached to every one, and other namespaces' containers cannot resolve or reach
// what is on it. The Server controller moves containers made before (on the shared network
// "kamal") to their namespace's network without recreating them, attaches the proxy, and
// removes the networks of namespaces with nothing left on the host; the removal paths of
// Deployments and Accessories remove their namespace's network at once when they leave it
// empty.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	dockerclient "github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
)

// netLocks serialise, per host (its host key) and namespace, making the namespace's network
// together with a container on it, and removing the network when it holds nothing: a network is
// never removed between its check and the create that needs it, and an engine before API 1.44
// is never asked to make the same network twice at once. Two Server objects for one host share
// the lock.
var netLocks sync.Map

func lockNetwork(h *fleet.Host, namespace string) (unlock func()) {
	key := ssh.FingerprintSHA256(h.Conn.HostKey()) + "/" + namespace
	m, _ := netLocks.LoadOrStore(key, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// joinNetwork makes namespace's network on h (when missing) and attaches the proxy to it, and
// holds the network's lock until unlock: the caller creates its container on the network
// before it unlocks (Docker creates a container on a network that does not exist, and only its
// start fails). The proxy's attachment is best effort here (a container is made all the same on
// a host without a proxy, or with someone else's kamal-proxy); a proxied role attaches it again
// before its route moves.
func joinNetwork(ctx context.Context, h *fleet.Host, namespace string) (string, func(), error) {
	unlock := lockNetwork(h, namespace)
	net, err := docker.EnsureNamespaceNetwork(ctx, h.Docker, namespace)
	if err != nil {
		unlock()
		return "", nil, err
	}
	_, _ = proxy.Attach(ctx, h.Docker, net)
	return net, unlock, nil
}

// ensureNetwork makes namespace's network on h when missing, under its lock.
func ensureNetwork(ctx context.Context, h *fleet.Host, namespace string) error {
	defer lockNetwork(h, namespace)()
	_, err := docker.EnsureNamespaceNetwork(ctx, h.Docker, namespace)
	return err
}

// collectNetwork removes namespace's network from h when no container of the namespace is
// left there (stopped ones count: they start again on it), detaching the proxy first. It says
// whether it removed it.
func collectNetwork(ctx context.Context, h *fleet.Host, namespace string) (bool, error) {
	defer lockNetwork(h, namespace)()
	res, err := h.Docker.ContainerList(ctx, dockerclient.ContainerListOptions{All: true, Limit: 1, Filters: dockerclient.Filters{}.
		Add("label", kamalv1.LabelManagedBy+"="+kamalv1.ManagerName).
		Add("label", kamalv1.LabelNamespace+"="+namespace)})
	if err != nil || len(res.Items) > 0 {
		return false, err
	}
	if err := proxy.Detach(ctx, h.Docker, docker.NamespaceNetwork(namespace)); err != nil {
		return false, err
	}
	return docker.RemoveNetworkIfOwned(ctx, h.Docker, namespace)
}

// leaveNetwork is collectNetwork on a removal path (a Deployment or Accessory just took its
// containers off a host): best effort, since the Server controller retries. It returns what to
// say in an event when it removed the network, "" otherwise.
func leaveNetwork(ctx context.Context, h *fleet.Host, namespace, server string) string {
	if removed, err := collectNetwork(ctx, h, namespace); err != nil || !removed {
		return ""
	}
	return fmt.Sprintf("removed network %s from %s: nothing of namespace %s is left there", docker.NamespaceNetwork(namespace), server, namespace)
}

// hostContainer is a container of the controller's on a host, as the network plan sees it.
type hostContainer struct {
	ID, Name, Namespace string
	// Accessory: apps of the namespace reach it by its name, which stays an alias.
	Accessory bool
	Networks  []string
}

// netPlan is what a host's networks need.
type netPlan struct {
	// Ensure are namespaces whose network is missing while a container of theirs waits to join.
	Ensure []string
	// Connect are containers on the old shared network to attach to their namespace's.
	Connect []hostContainer
	// AttachProxy are namespace networks the proxy is not attached to.
	AttachProxy []string
	// Disconnect are containers to take off the old shared network: they are on their
	// namespace's, the proxy is there too, and so is every container of their namespace that
	// was on the shared one (so apps and accessories keep reaching each other).
	Disconnect []hostContainer
	// Collect are namespaces whose network holds no container of theirs.
	Collect []string
}

func (p netPlan) empty() bool {
	return len(p.Ensure)+len(p.Connect)+len(p.AttachProxy)+len(p.Disconnect)+len(p.Collect) == 0
}

// nsNetwork is a namespace network on a host: its name and, from its labels, its namespace.
type nsNetwork struct{ Name, Namespace string }

// planNetworks decides a host's network steps from its containers (every container of the
// controller with a namespace, in any state), its namespace networks, and the networks the
// proxy is attached to (proxyOn nil: no proxy). One pass connects; the next one, which sees the
// connections, disconnects.
func planNetworks(cs []hostContainer, networks []nsNetwork, proxyOn []string) netPlan {
	var p netPlan
	used := map[string]bool{}    // namespaces with a container on the host
	waiting := map[string]bool{} // namespaces with a container on the shared network only
	have := map[string]bool{}    // namespace networks the host has
	for _, n := range networks {
		have[n.Name] = true
	}
	for _, c := range cs {
		used[c.Namespace] = true
		net := docker.NamespaceNetwork(c.Namespace)
		if slices.Contains(c.Networks, docker.LegacyNetwork) && !slices.Contains(c.Networks, net) {
			waiting[c.Namespace] = true
			p.Connect = append(p.Connect, c)
			if !have[net] && !slices.Contains(p.Ensure, c.Namespace) {
				p.Ensure = append(p.Ensure, c.Namespace)
			}
		}
	}
	for _, c := range cs {
		net := docker.NamespaceNetwork(c.Namespace)
		proxyThere := proxyOn == nil || slices.Contains(proxyOn, net)
		if slices.Contains(c.Networks, docker.LegacyNetwork) && slices.Contains(c.Networks, net) && proxyThere && !waiting[c.Namespace] {
			p.Disconnect = append(p.Disconnect, c)
		}
	}
	for _, n := range networks {
		switch {
		case docker.NamespaceNetwork(n.Namespace) != n.Name:
			// Labelled for another namespace than its name says: not the controller's to touch.
		case !used[n.Namespace]:
			p.Collect = append(p.Collect, n.Namespace)
		case proxyOn != nil && !slices.Contains(proxyOn, n.Name):
			p.AttachProxy = append(p.AttachProxy, n.Name)
		}
	}
	slices.Sort(p.Ensure)
	slices.Sort(p.Collect)
	slices.Sort(p.AttachProxy)
	return p
}

// hostNetworks is what planNetworks needs of a host.
type hostNetworks struct {
	containers []hostContainer
	networks   []nsNetwork
	proxyOn    []string
}

// observeNetworks reads a host's containers, namespace networks and proxy attachments: three
// Engine API calls.
func observeNetworks(ctx context.Context, cli *dockerclient.Client) (hostNetworks, error) {
	var hn hostNetworks
	res, err := cli.ContainerList(ctx, dockerclient.ContainerListOptions{All: true, Filters: dockerclient.Filters{}.
		Add("label", kamalv1.LabelManagedBy+"="+kamalv1.ManagerName).
		Add("label", kamalv1.LabelNamespace)})
	if err != nil {
		return hn, err
	}
	for _, c := range res.Items {
		hn.containers = append(hn.containers, hostContainerOf(c))
	}
	nets, err := proxy.NamespaceNetworks(ctx, cli)
	if err != nil {
		return hn, err
	}
	for _, n := range nets {
		hn.networks = append(hn.networks, nsNetwork{Name: n.Name, Namespace: n.Labels[kamalv1.LabelNamespace]})
	}
	in, err := cli.ContainerInspect(ctx, proxy.ContainerName, dockerclient.ContainerInspectOptions{})
	switch {
	case docker.IsNotFound(err):
	case err != nil:
		return hn, err
	case in.Container.Config != nil && proxy.IsProxy(in.Container.Config.Labels):
		hn.proxyOn = []string{}
		if ns := in.Container.NetworkSettings; ns != nil {
			for n := range ns.Networks {
				hn.proxyOn = append(hn.proxyOn, n)
			}
		}
		slices.Sort(hn.proxyOn)
	}
	return hn, nil
}

func hostContainerOf(c container.Summary) hostContainer {
	hc := hostContainer{
		ID: c.ID, Name: containerName(c.Names), Namespace: c.Labels[kamalv1.LabelNamespace],
		Accessory: c.Labels[kamalv1.LabelAccessory] != "" && c.Labels[kamalv1.LabelPrefix+"setup"] != "true",
	}
	if ns := c.NetworkSettings; ns != nil {
		for n := range ns.Networks {
			hc.Networks = append(hc.Networks, n)
		}
		slices.Sort(hc.Networks)
	}
	return hc
}

// networkReport says what converging a host's networks did, for events.
type networkReport struct {
	moved, removed []string
}

// convergeNetworks moves the host's containers off the shared network onto their namespace's
// (connect first, then, once every one of a namespace is there and the proxy too, disconnect),
// attaches the proxy to every namespace network, and removes the networks of namespaces with
// nothing left. A few passes at most: each acts on what the one before did.
func convergeNetworks(ctx context.Context, h *fleet.Host) (networkReport, error) {
	var rep networkReport
	for range 3 {
		hn, err := observeNetworks(ctx, h.Docker)
		if err != nil {
			return rep, err
		}
		p := planNetworks(hn.containers, hn.networks, hn.proxyOn)
		if p.empty() {
			return rep, nil
		}
		for _, ns := range p.Ensure {
			net, unlock, err := joinNetwork(ctx, h, ns) // the proxy too, when there is one
			if err != nil {
				return rep, err
			}
			unlock()
			if hn.proxyOn != nil {
				p.AttachProxy = append(p.AttachProxy, net)
			}
		}
		for _, c := range p.Connect {
			var aliases []string
			if c.Accessory {
				aliases = []string{c.Name} // made before: named as apps reach it
			}
			if err := docker.Connect(ctx, h.Docker, docker.NamespaceNetwork(c.Namespace), c.ID, aliases); err != nil && !docker.IsNotFound(err) {
				return rep, err
			}
		}
		for _, n := range p.AttachProxy {
			if _, err := proxy.Attach(ctx, h.Docker, n); err != nil {
				return rep, err
			}
		}
		var unproven error
		if hn.proxyOn != nil && len(p.Disconnect) > 0 {
			p.Disconnect, unproven = reachedByProxy(ctx, h, p.Disconnect)
		}
		for _, c := range p.Disconnect {
			if err := docker.Disconnect(ctx, h.Docker, docker.LegacyNetwork, c.ID); err != nil {
				return rep, err
			}
			rep.moved = append(rep.moved, c.Name)
		}
		for _, ns := range p.Collect {
			removed, err := collectNetwork(ctx, h, ns)
			if err != nil {
				return rep, err
			}
			if removed {
				rep.removed = append(rep.removed, docker.NamespaceNetwork(ns))
			}
		}
		if unproven != nil {
			return rep, unproven
		}
	}
	return rep, nil
}

// reachedByProxy keeps, of cs, the containers the proxy is shown to reach on their namespace's
// network: one it routes to is probed there by name ("<container>.<network>:<port>", which
// Docker's DNS resolves on that network only; any HTTP answer will do), the others need no
// proof. A proxy without the probe (an older image) is taken at its word that it is attached.
// The error says which were not reached; they stay on the shared network for now.
func reachedByProxy(ctx context.Context, h *fleet.Host, cs []hostContainer) ([]hostContainer, error) {
	table, err := h.Proxy.RouteState(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the proxy's routes: %w", err)
	}
	ports := map[string]string{}
	for _, up := range table {
		if name, port, ok := strings.Cut(up, ":"); ok {
			ports[name] = port
		}
	}
	var out []hostContainer
	var errs []error
	for _, c := range cs {
		port, routed := ports[c.Name]
		if !routed {
			out = append(out, c)
			continue
		}
		net := docker.NamespaceNetwork(c.Namespace)
		_, err := h.Proxy.Probe(ctx, c.Name+"."+net+":"+port, "/", 5*time.Second)
		if err != nil && !errors.Is(err, proxy.ErrNoProbe) {
			errs = append(errs, fmt.Errorf("the proxy does not reach %s on network %s yet: %w", c.Name, net, err))
			continue
		}
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}

// reservedNameMessage says why a container name cannot be an accessory's.
func reservedNameMessage(name string) string {
	return fmt.Sprintf("container name %q is reserved: %s and %s-… are the proxy's containers and %s… the accessories' setup containers on every host; "+
		"set spec.containerName to another name", name, docker.ReservedProxyName, docker.ReservedProxyName, docker.ReservedSetupPrefix)
}
