package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	dockerclient "github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/internal/release"
	"github.com/kamal-operator/kamal-operator/internal/remote"
	"github.com/kamal-operator/kamal-operator/test/fleetsim"
)

// The floor is the least a rollout can take on this fleet: the steps of the controller's deploy
// of one target (pull, create, start, health check through the SSH connection, probe through the
// proxy, route switch, stop the old), issued directly with the project's own Engine and admin
// clients over one held SSH connection per host, in the same batches, with no API server, no
// reconciles, no status. The controller's time over it is what reconciling costs.

// floorHost is one host as the floor script holds it.
type floorHost struct {
	name   string
	conn   *remote.Conn
	docker *dockerclient.Client
	admin  *proxy.Admin
}

// floorFleet is the floor script's connections to every host.
type floorFleet struct {
	hosts   []*floorHost
	ns      string
	net     string
	proxy   *release.Proxy
	routeID string
	// healthInterval and stopTimeout are the Deployment's (its defaults).
	healthInterval time.Duration
	stopTimeout    int
}

// floorDeployment is the app the floor deploys: its own name, route and host name, on the
// namespace network the controller made (the proxy is attached to it).
const floorDeployment = "floorapp"

// dialFloor opens one SSH connection per host, parallel as far as dials allows.
func dialFloor(ctx context.Context, st fleetsim.State, signer ssh.Signer, ns string, dials int) (*floorFleet, error) {
	spec := &kamalv1.DeploymentSpec{PrimaryRole: "web", Roles: map[string]kamalv1.Role{"web": {}},
		Proxy: &kamalv1.Proxy{Hosts: []string{floorDeployment + ".test"}}}
	f := &floorFleet{
		hosts: make([]*floorHost, len(st.Hosts)), ns: ns, net: docker.NamespaceNetwork(ns),
		proxy: release.EffectiveProxy(spec, "web"), routeID: release.RouteID(ns, floorDeployment, "web"),
	}
	f.healthInterval = f.proxy.HealthInterval
	err := parallel(ctx, len(st.Hosts), dials, func(ctx context.Context, i int) error {
		h := st.Hosts[i]
		keys, err := remote.ParseKnownHosts([]string{h.HostKey})
		if err != nil {
			return err
		}
		conn, err := remote.Dial(ctx, &remote.Target{Address: h.Address, Port: h.Port, User: "root", Signer: signer, HostKeys: keys})
		if err != nil {
			return err
		}
		cli, err := docker.NewClient(docker.NewDialer(conn, ""), nil)
		if err != nil {
			conn.Close()
			return err
		}
		f.hosts[i] = &floorHost{name: h.Name, conn: conn, docker: cli,
			admin: proxy.NewAdmin(func(ctx context.Context) (net.Conn, error) { return conn.DialUnix(ctx, proxy.AdminSocket) })}
		return nil
	})
	if err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

func (f *floorFleet) close() {
	for _, h := range f.hosts {
		if h != nil {
			_ = h.docker.Close()
			_ = h.conn.Close()
		}
	}
}

// verify checks what the controller left on every host: its route sends to a running
// container of image version. It returns the hosts that differ (at most a few named).
func (f *floorFleet) verify(ctx context.Context, deployment, version string) (int, []string) {
	routeID := release.RouteID(f.ns, deployment, "web")
	var mu sync.Mutex
	bad, named := 0, []string{}
	_ = parallel(ctx, len(f.hosts), 64, func(ctx context.Context, i int) error {
		h := f.hosts[i]
		problem := func() string {
			r, err := h.admin.Route(ctx, routeID)
			if err != nil {
				return "route: " + err.Error()
			}
			name, _, _ := strings.Cut(r.Upstream, ":")
			in, err := h.docker.ContainerInspect(ctx, name, dockerclient.ContainerInspectOptions{})
			if err != nil {
				return "container " + name + ": " + err.Error()
			}
			c := in.Container
			if c.State == nil || !c.State.Running || c.Config == nil || !strings.HasSuffix(c.Config.Image, ":"+version) {
				return fmt.Sprintf("route to %s, not a running container of %s", name, version)
			}
			return ""
		}()
		if problem != "" {
			mu.Lock()
			bad++
			if len(named) < 3 {
				named = append(named, h.name+": "+problem)
			}
			mu.Unlock()
		}
		return nil
	})
	return bad, named
}

// rollout deploys version on every host in batches of batch hosts, each batch started once the
// one before has ended (as the controller's maxParallel does); old, when set, is the version
// it replaces.
func (f *floorFleet) rollout(ctx context.Context, version, old string, batch int) error {
	for lo := 0; lo < len(f.hosts); lo += batch {
		hi := min(lo+batch, len(f.hosts))
		err := parallel(ctx, hi-lo, hi-lo, func(ctx context.Context, i int) error {
			return f.deploy(ctx, f.hosts[lo+i], version, old)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func floorContainer(version string) string { return floorDeployment + "-web-" + version }

// deploy is the controller's deploy of one target, step by step (controllers/deploy_target.go).
func (f *floorFleet) deploy(ctx context.Context, h *floorHost, version, old string) error {
	image := "registry.sim.test/" + floorDeployment + ":" + version
	name := floorContainer(version)
	if _, err := docker.EnsureImage(ctx, h.docker, image, ""); err != nil {
		return fmt.Errorf("%s: %w", h.name, err)
	}
	res, err := h.docker.ContainerCreate(ctx, dockerclient.ContainerCreateOptions{
		Name:             name,
		Config:           &container.Config{Image: image, Env: []string{"KAMAL_CONTAINER_NAME=" + name, "KAMAL_VERSION=" + version}},
		HostConfig:       &container.HostConfig{NetworkMode: container.NetworkMode(f.net)},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{f.net: {}}},
	})
	if err != nil {
		return fmt.Errorf("%s: creating %s: %w", h.name, name, err)
	}
	if _, err := h.docker.ContainerStart(ctx, res.ID, dockerclient.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("%s: starting %s: %w", h.name, name, err)
	}
	in, err := h.docker.ContainerInspect(ctx, res.ID, dockerclient.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("%s: %w", h.name, err)
	}
	addr, _ := docker.AddressOn(in.Container.NetworkSettings, f.net)
	if !addr.IsValid() {
		return fmt.Errorf("%s: %s has no address on %s", h.name, name, f.net)
	}
	if err := f.healthy(ctx, h, net.JoinHostPort(addr.String(), fmt.Sprint(f.proxy.AppPort))); err != nil {
		return fmt.Errorf("%s: %s: %w", h.name, name, err)
	}
	upstream := f.proxy.Upstream(name)
	for {
		code, err := h.admin.Probe(ctx, upstream, f.proxy.HealthPath, f.proxy.HealthTimeout)
		if err == nil && code/100 == 2 {
			break
		}
		if err := sleep(ctx, f.healthInterval); err != nil {
			return fmt.Errorf("%s: probing %s through the proxy: %w", h.name, upstream, err)
		}
	}
	if old == "" {
		_, err = h.admin.PutRoute(ctx, f.routeID, f.proxy.Route(upstream, release.RouteOwner(f.ns, floorDeployment)), 0, nil)
	} else {
		_, err = h.admin.SetUpstream(ctx, f.routeID, upstream)
	}
	if err != nil {
		return fmt.Errorf("%s: switching the route: %w", h.name, err)
	}
	if old != "" {
		if _, err := h.docker.ContainerStop(ctx, floorContainer(old), dockerclient.ContainerStopOptions{Timeout: &f.stopTimeout}); err != nil {
			return fmt.Errorf("%s: stopping %s: %w", h.name, floorContainer(old), err)
		}
	}
	return nil
}

// healthy polls the health path on addr through the host's SSH connection every health
// interval until it answers 2xx.
func (f *floorFleet) healthy(ctx context.Context, h *floorHost, addr string) error {
	hc := &http.Client{
		Transport: &http.Transport{
			DialContext:       func(ctx context.Context, _, a string) (net.Conn, error) { return h.conn.DialTCP(ctx, a) },
			DisableKeepAlives: true,
		},
		Timeout: f.proxy.HealthTimeout,
	}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+f.proxy.HealthPath, nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
		}
		if err := sleep(ctx, f.healthInterval); err != nil {
			return fmt.Errorf("health check: %w", err)
		}
	}
}

// parallel runs fn(0..n-1), at most limit at once; the first error cancels the rest.
func parallel(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, max(limit, 1))
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(d):
		return nil
	}
}
