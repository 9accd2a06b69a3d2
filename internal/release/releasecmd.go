package release

import (
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/oneoff"
)

// ReleaseContainerName is the name of the role's release container for revision.
func (r *Role) ReleaseContainerName(revision string) string {
	return ReleaseContainerName(r.Namespace, r.UID, r.Deployment, r.Version(), revision)
}

// ReleaseOptions is the Engine API request for the container that runs cmd once for revision:
// the role's image, env, volumes, options and logging, on the namespace's network (where its
// accessories are), with one-off labels of the release kind (no role, version or spec hash:
// nothing takes it for a deployed version). It never restarts and keeps no health check: it
// runs once and its exit code is the answer.
func (r *Role) ReleaseOptions(name, revision string, cmd []string) (client.ContainerCreateOptions, error) {
	env := append([]string{
		"KAMAL_CONTAINER_NAME=" + name,
		"KAMAL_VERSION=" + r.Version(),
		"KAMAL_RELEASE=" + revision,
	}, r.Env...)
	cfg := &container.Config{Image: r.Image, Cmd: cmd, Env: env, Labels: oneoff.ReleaseLabels(r.Namespace, r.Deployment, revision)}
	hc := &container.HostConfig{NetworkMode: container.NetworkMode(r.Network()), Binds: r.Volumes}
	if err := docker.ApplyOptions(r.Options, cfg, hc); err != nil {
		return client.ContainerCreateOptions{}, err
	}
	docker.ApplyLogging(r.Logging, hc)
	hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyDisabled}
	hc.AutoRemove = false
	cfg.Healthcheck = nil
	return client.ContainerCreateOptions{
		Name: name, Config: cfg, HostConfig: hc,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{r.Network(): {}}},
	}, nil
}
