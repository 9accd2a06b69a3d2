package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// LegacyNetwork is the one network every namespace's containers shared before each namespace
// had its own. The proxy stays on it (its create request names it, and changing that would
// replace every proxy); containers still on it are moved to their namespace's network.
const LegacyNetwork = "kamal"

// networkPrefix starts the name of every namespace network.
const networkPrefix = "kamal-"

// maxNetworkName keeps a network name a DNS label, so "<container>.<network>" resolves in
// Docker's DNS like any name. Docker itself sets no length limit on network names.
const maxNetworkName = 63

// NamespaceNetwork is the Docker network of a namespace's containers on every host:
// "kamal-<namespace>". A namespace is a DNS label of at most 63 characters; a name that would
// be longer than 63 keeps the first 48 characters of the namespace and adds 8 hex digits of a
// hash of all of it, so two namespaces never share a network.
func NamespaceNetwork(namespace string) string {
	if len(networkPrefix)+len(namespace) <= maxNetworkName {
		return networkPrefix + namespace
	}
	sum := sha256.Sum256([]byte("kamal-network-v1\x00" + namespace))
	cut := strings.TrimRight(namespace[:maxNetworkName-len(networkPrefix)-9], "-")
	return networkPrefix + cut + "-" + hex.EncodeToString(sum[:])[:8]
}

// NetworkLabels mark a namespace's network as the controller's, for that namespace.
func NetworkLabels(namespace string) map[string]string {
	return map[string]string{kamalv1.LabelManagedBy: kamalv1.ManagerName, kamalv1.LabelNamespace: namespace}
}

// Owned says labels mark something the controller made (managed-by kamal-operator) and carry
// every label of want with its value. Everything the controller stops or removes on a host is
// checked with it first: a container or network of the same name made by someone else, or of
// another namespace or object, is left alone.
func Owned(labels, want map[string]string) bool {
	if labels[kamalv1.LabelManagedBy] != kamalv1.ManagerName {
		return false
	}
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// Reserved names on every host: the proxy's containers (kamal-proxy, and kamal-proxy-previous
// and kamal-proxy-failed during a replacement) and the accessory setup containers
// (kamal-setup-…). The API refuses them as accessory names, so no accessory takes one first.
const (
	ReservedProxyName   = "kamal-proxy"
	ReservedSetupPrefix = "kamal-setup-"
)

// ReservedName says whether name is one of the controller's own container names.
func ReservedName(name string) bool {
	return name == ReservedProxyName || strings.HasPrefix(name, ReservedProxyName+"-") || strings.HasPrefix(name, ReservedSetupPrefix)
}

// ForeignError is a container or network that holds a name the controller uses but was not
// made by it (or belongs to another namespace or object): it is left alone.
type ForeignError struct {
	Kind, Name, Owner string
}

func (e *ForeignError) Error() string {
	owner := "was not made by " + kamalv1.ManagerName
	if e.Owner != "" {
		owner = "belongs to " + e.Owner
	}
	return fmt.Sprintf("the host has a %s named %s that %s: it is left alone", e.Kind, e.Name, owner)
}

// PoolsExhaustedError is a network Docker could not create because its address pools are
// used up: each namespace has one network on each host it uses.
type PoolsExhaustedError struct {
	Network string
	Err     error
}

func (e *PoolsExhaustedError) Error() string {
	return fmt.Sprintf("creating network %s: Docker has no free address pool left for it (every namespace on a host has its own network, "+
		"and Docker's default pools hold about 30): give Docker more with default-address-pools in /etc/docker/daemon.json "+
		"and restart it (see the README, Troubleshooting): %v", e.Network, e.Err)
}

func (e *PoolsExhaustedError) Unwrap() error { return e.Err }

// isPoolsExhausted reads Docker's answer: "could not find an available, non-overlapping IPv4
// address pool among the defaults" (20.10 to 26), "all predefined address pools have been fully
// subnetted" (27 and newer).
func isPoolsExhausted(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "non-overlapping ipv4 address pool") || strings.Contains(msg, "address pools have been fully subnetted")
}

// IsPoolsExhausted reports whether err is, or wraps, a *PoolsExhaustedError.
func IsPoolsExhausted(err error) bool {
	var pe *PoolsExhaustedError
	return errors.As(err, &pe)
}

// EnsureNamespaceNetwork creates namespace's bridge network (NamespaceNetwork) when the host
// lacks it and returns its name. A network of that name that is not the controller's for this
// namespace is a *ForeignError: nothing joins it.
func EnsureNamespaceNetwork(ctx context.Context, cli *client.Client, namespace string) (string, error) {
	name := NamespaceNetwork(namespace)
	for range 2 {
		in, err := cli.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
		if err == nil {
			if in.Network.Name != name || !Owned(in.Network.Labels, NetworkLabels(namespace)) {
				return "", &ForeignError{Kind: "network", Name: name}
			}
			return name, nil
		}
		if !IsNotFound(err) {
			return "", err
		}
		created, err := cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: NetworkLabels(namespace)})
		switch {
		case err == nil:
			return name, keepOldest(ctx, cli, namespace, name, created.ID)
		case isPoolsExhausted(err):
			return "", &PoolsExhaustedError{Network: name, Err: err}
		case !IsConflict(err):
			return "", fmt.Errorf("creating network %s: %w", name, err)
		}
		// Made meanwhile (Docker allows two networks of one name; the check above sees them).
	}
	return name, nil
}

// keepOldest removes the network id just made when another of the same name exists that is
// older: an engine before API 1.44 creates a second network of a name unless asked not to, and
// this client cannot ask. Of two made at once, both see the same oldest one.
func keepOldest(ctx context.Context, cli *client.Client, namespace, name, id string) error {
	res, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.
		Add("label", kamalv1.LabelManagedBy+"="+kamalv1.ManagerName).
		Add("label", kamalv1.LabelNamespace+"="+namespace)})
	if err != nil {
		return err
	}
	oldest, oldestAt := "", time.Time{}
	for _, n := range res.Items {
		if n.Name == name && (oldest == "" || n.Created.Before(oldestAt) || n.Created.Equal(oldestAt) && n.ID < oldest) {
			oldest, oldestAt = n.ID, n.Created
		}
	}
	if oldest == "" || oldest == id {
		return nil
	}
	if _, err := cli.NetworkRemove(ctx, id, client.NetworkRemoveOptions{}); err != nil && !IsNotFound(err) {
		return fmt.Errorf("removing a second network %s: %w", name, err)
	}
	return nil
}

// RemoveNetworkIfOwned removes namespace's network when it is the controller's for that
// namespace; Docker refuses while a container is still attached. It says whether it removed
// one.
func RemoveNetworkIfOwned(ctx context.Context, cli *client.Client, namespace string) (bool, error) {
	name := NamespaceNetwork(namespace)
	in, err := cli.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if in.Network.Name != name || !Owned(in.Network.Labels, NetworkLabels(namespace)) {
		return false, nil
	}
	if _, err := cli.NetworkRemove(ctx, in.Network.ID, client.NetworkRemoveOptions{}); err != nil && !IsNotFound(err) {
		return false, fmt.Errorf("removing network %s: %w", name, err)
	}
	return true, nil
}

// RemoveContainerIfOwned force-removes the container nameOrID when Owned(its labels, want),
// by its ID (so a container made meanwhile under the name is never hit). A missing container
// is (false, nil); one that is not the controller's, or is another object's, is a
// *ForeignError, and stays.
func RemoveContainerIfOwned(ctx context.Context, cli *client.Client, nameOrID string, want map[string]string) (bool, error) {
	in, err := cli.ContainerInspect(ctx, nameOrID, client.ContainerInspectOptions{})
	if IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c := in.Container
	var labels map[string]string
	if c.Config != nil {
		labels = c.Config.Labels
	}
	if !Owned(labels, want) {
		return false, &ForeignError{Kind: "container", Name: strings.TrimPrefix(c.Name, "/"), Owner: OwnerOf(labels)}
	}
	if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !IsNotFound(err) {
		return false, err
	}
	return true, nil
}

// OwnerOf names what a container of the controller belongs to ("namespace shop, Deployment
// web"), "" for one the controller did not make.
func OwnerOf(labels map[string]string) string {
	if labels[kamalv1.LabelManagedBy] != kamalv1.ManagerName {
		return ""
	}
	ns := labels[kamalv1.LabelNamespace]
	switch {
	case labels[kamalv1.LabelDeployment] != "":
		return "Deployment " + ns + "/" + labels[kamalv1.LabelDeployment]
	case labels[kamalv1.LabelAccessory] != "":
		return "Accessory " + ns + "/" + labels[kamalv1.LabelAccessory]
	case labels[kamalv1.LabelPrefix+"proxy"] == "true":
		return "the proxy"
	}
	return kamalv1.ManagerName
}

// Connect attaches container to network with aliases; a container already attached is fine
// (its aliases then stay as they are).
func Connect(ctx context.Context, cli *client.Client, net, container string, aliases []string) error {
	var ep *network.EndpointSettings
	if len(aliases) > 0 {
		ep = &network.EndpointSettings{Aliases: aliases}
	}
	_, err := cli.NetworkConnect(ctx, net, client.NetworkConnectOptions{Container: container, EndpointConfig: ep})
	if err != nil && alreadyAttached(err) {
		return nil
	}
	return err
}

// Disconnect detaches container from network; one not attached, or gone, is fine.
func Disconnect(ctx context.Context, cli *client.Client, net, container string) error {
	_, err := cli.NetworkDisconnect(ctx, net, client.NetworkDisconnectOptions{Container: container})
	if err != nil && (IsNotFound(err) || strings.Contains(err.Error(), "is not connected")) {
		return nil
	}
	return err
}

// alreadyAttached reads Docker's refusal to connect a container to a network it is on.
func alreadyAttached(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "already exists in network") || strings.Contains(msg, "already attached")
}

// AddressOn is the container's IPv4 address on the first of networks it is attached to, and
// that network's name.
func AddressOn(ns *container.NetworkSettings, networks ...string) (netip.Addr, string) {
	if ns == nil {
		return netip.Addr{}, ""
	}
	for _, n := range networks {
		if ep := ns.Networks[n]; ep != nil && ep.IPAddress.IsValid() {
			return ep.IPAddress, n
		}
	}
	return netip.Addr{}, ""
}
