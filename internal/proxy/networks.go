package proxy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
)

// The proxy reaches app containers by name on their namespace's network, so it is attached to
// every namespace network of its host (and stays on the old shared network, where containers
// not moved yet are). A proxy being made is attached before it starts, so a replacement
// reaches every app before it takes over.

// labelProxy marks the proxy's containers.
const labelProxy = kamalv1.LabelPrefix + "proxy"

// proxyLabels are what a container must carry to be treated as the proxy: anything else named
// kamal-proxy… is never stopped, renamed or removed.
func proxyLabels() map[string]string { return map[string]string{labelProxy: "true"} }

// IsProxy says whether labels mark a proxy container the controller made.
func IsProxy(labels map[string]string) bool { return docker.Owned(labels, proxyLabels()) }

// removeIfProxy force-removes the container name when it is a proxy container; one that is not
// stays (a *docker.ForeignError).
func removeIfProxy(ctx context.Context, cli *client.Client, name string) error {
	_, err := docker.RemoveContainerIfOwned(ctx, cli, name, proxyLabels())
	return err
}

// NamespaceNetworks lists the host's namespace networks (the controller's), by name.
func NamespaceNetworks(ctx context.Context, cli *client.Client) ([]network.Summary, error) {
	res, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.
		Add("label", kamalv1.LabelManagedBy+"="+kamalv1.ManagerName).
		Add("label", kamalv1.LabelNamespace)})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(res.Items, func(a, b network.Summary) int { return strings.Compare(a.Name, b.Name) })
	return res.Items, nil
}

// Networks are the networks the proxy container id (or name) is attached to.
func Networks(ctx context.Context, cli *client.Client, id string) ([]string, error) {
	in, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	if ns := in.Container.NetworkSettings; ns != nil {
		for n := range ns.Networks {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// attachAll connects proxy container id to every namespace network of the host it is not on.
// A network removed meanwhile is skipped.
func attachAll(ctx context.Context, cli *client.Client, id string) error {
	nets, err := NamespaceNetworks(ctx, cli)
	if err != nil {
		return err
	}
	on, err := Networks(ctx, cli, id)
	if err != nil {
		return err
	}
	for _, n := range nets {
		if slices.Contains(on, n.Name) {
			continue
		}
		if err := docker.Connect(ctx, cli, n.ID, id, nil); err != nil && !docker.IsNotFound(err) {
			return fmt.Errorf("attaching %s to network %s: %w", ContainerName, n.Name, err)
		}
	}
	return nil
}

// Attach connects the host's proxy to network, when the host runs one and it is not attached
// yet; it says whether it attached it. A container named kamal-proxy that is not the proxy is
// a *docker.ForeignError.
func Attach(ctx context.Context, cli *client.Client, net string) (bool, error) {
	in, err := cli.ContainerInspect(ctx, ContainerName, client.ContainerInspectOptions{})
	if docker.IsNotFound(err) {
		return false, nil // none yet: it is attached to every network when made
	}
	if err != nil {
		return false, err
	}
	c := in.Container
	if err := checkProxy(c.Config); err != nil {
		return false, err
	}
	if c.NetworkSettings != nil && c.NetworkSettings.Networks[net] != nil {
		return false, nil
	}
	if err := docker.Connect(ctx, cli, net, c.ID, nil); err != nil {
		return false, fmt.Errorf("attaching %s to network %s: %w", ContainerName, net, err)
	}
	return true, nil
}

// Detach disconnects the host's proxy from network; a proxy that is not attached, or none, is
// fine.
func Detach(ctx context.Context, cli *client.Client, net string) error {
	in, err := cli.ContainerInspect(ctx, ContainerName, client.ContainerInspectOptions{})
	if docker.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	c := in.Container
	if c.Config == nil || !IsProxy(c.Config.Labels) || c.NetworkSettings == nil || c.NetworkSettings.Networks[net] == nil {
		return nil
	}
	if err := docker.Disconnect(ctx, cli, net, c.ID); err != nil {
		return fmt.Errorf("detaching %s from network %s: %w", ContainerName, net, err)
	}
	return nil
}
