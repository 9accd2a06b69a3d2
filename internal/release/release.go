// Package release turns a Deployment role into the container it should run — name, labels,
// env, options, spec hash — and decides, from the containers observed on a host, the next step
// on that host. It is pure: no I/O, so every decision is tested without hosts.
package release

import (
	"sort"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
)

// Version is the version an image reference names: its tag, or the first 12 hex digits of
// its digest.
func Version(image string) string {
	if i := strings.Index(image, "@sha256:"); i >= 0 {
		d := image[i+len("@sha256:"):]
		if len(d) > 12 {
			d = d[:12]
		}
		return d
	}
	last := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		return last[i+1:]
	}
	return "latest"
}

// Role is everything that shapes one role's containers, resolved: env values are final. Its
// spec hash covers the fields that define the container, through hashInputV1 (hash.go): a
// field added here is not in the hash until it is added there, under the rule written there.
type Role struct {
	Namespace  string
	Deployment string
	// UID of the Deployment: it keeps long container names apart across objects. Not hashed
	// (the hash is keyed with it).
	UID   string
	Name  string
	Image string
	Cmd   []string
	// Env in order, "NAME=value"; secret values included. Never logged.
	Env     []string
	Labels  map[string]string
	Volumes []string
	Options *kamalv1.ContainerOptions
	Logging *kamalv1.Logging
	// Proxy is the effective proxy of the role; nil when it has none. It shapes the route,
	// not the container, so it is not in the hash: a change rewrites the route in place.
	Proxy *Proxy
	// Restart is the restartedAt annotation: a new value rolls the same version again.
	Restart string
	// RestartedAt is spec.restartedAt (RFC 3339, UTC), empty when unset: a new value rolls the
	// same version again. Unset, it leaves the hash as it was before the field existed.
	RestartedAt string
}

// Version of the role's image.
func (r *Role) Version() string { return Version(r.Image) }

// ContainerName is the role's container name on a host for the spec hash hash; taken says
// another container holds the name without the hash (Plan.NameTaken). See ContainerNameFor.
func (r *Role) ContainerName(hash string, taken bool) string {
	return ContainerNameFor(r.Namespace, r.UID, r.Deployment, r.Name, r.Version(), hash, taken)
}

// Labels identifies a container of the role on a host; the controller finds everything it
// manages by them, so a restarted controller knows what runs.
func (r *Role) labels(hash string) map[string]string {
	l := map[string]string{}
	for k, v := range r.Labels {
		l[k] = v
	}
	l[kamalv1.LabelManagedBy] = kamalv1.ManagerName
	l[kamalv1.LabelNamespace] = r.Namespace
	l[kamalv1.LabelDeployment] = r.Deployment
	l[kamalv1.LabelRole] = r.Name
	l[kamalv1.LabelVersion] = r.Version()
	l[kamalv1.LabelSpecHash] = hash
	return l
}

// Network is the one the role's containers join: their namespace's, where its accessories
// and the proxy reach them by name and other namespaces do not.
func (r *Role) Network() string { return docker.NamespaceNetwork(r.Namespace) }

// CreateOptions is the Engine API request for the role's container. The network is not part
// of the spec hash: a container moved from the old shared network keeps its hash.
func (r *Role) CreateOptions(name, hash string) (client.ContainerCreateOptions, error) {
	env := append([]string{
		"KAMAL_CONTAINER_NAME=" + name,
		"KAMAL_VERSION=" + r.Version(),
	}, r.Env...)
	cfg := &container.Config{Image: r.Image, Cmd: r.Cmd, Env: env, Labels: r.labels(hash)}
	hc := &container.HostConfig{NetworkMode: container.NetworkMode(r.Network()), Binds: r.Volumes}
	if err := docker.ApplyOptions(r.Options, cfg, hc); err != nil {
		return client.ContainerCreateOptions{}, err
	}
	docker.ApplyLogging(r.Logging, hc)
	return client.ContainerCreateOptions{
		Name: name, Config: cfg, HostConfig: hc,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{r.Network(): {}}},
	}, nil
}

// Filters select the containers of a Deployment (and role, when given) on a host: made by the
// controller, of that namespace and object. Only containers so found are ever stopped or
// removed for the Deployment.
func Filters(namespace, deployment, role string) client.Filters {
	f := client.Filters{}.
		Add("label", kamalv1.LabelManagedBy+"="+kamalv1.ManagerName).
		Add("label", kamalv1.LabelNamespace+"="+namespace).
		Add("label", kamalv1.LabelDeployment+"="+deployment)
	if role != "" {
		f = f.Add("label", kamalv1.LabelRole+"="+role)
	}
	return f
}

// SortedRoles returns the role names with the primary role first, then by name.
func SortedRoles(roles map[string]kamalv1.Role, primary string) []string {
	names := make([]string, 0, len(roles))
	for n := range roles {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == primary) != (names[j] == primary) {
			return names[i] == primary
		}
		return names[i] < names[j]
	})
	return names
}
