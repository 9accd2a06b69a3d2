// Package proxy runs kamal-proxy, the per-host Caddy that routes HTTP to app containers, and
// talks to its admin API. The admin API listens on a unix socket in a host folder, so only
// the controller (through its SSH connection) and the host's root can reach it; app containers
// cannot. Caddy's config is fixed (FixedConfig) and every route lives in the route table of the
// proxy's module (images/kamal-proxy), saved in the data volume, so a restarted or recreated
// proxy keeps every route, and a route change is no config change.
package proxy

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
)

// Names on every host.
const (
	ContainerName = "kamal-proxy"
	Network       = "kamal"
	// HostRunDir is bind-mounted into the proxy; the admin socket lives there.
	HostRunDir  = "/run/kamal-proxy"
	AdminSocket = HostRunDir + "/admin.sock"
	// ServerName is the Caddy HTTP server on :80, TLSServerName the one on :443.
	ServerName    = "kamal"
	TLSServerName = "kamal-tls"

	configVolume = "kamal-proxy-config"
	dataVolume   = "kamal-proxy-data"
	configDir    = "/etc/kamal-proxy"
	configFile   = configDir + "/caddy.json"
	caddyBinary  = "/usr/bin/caddy"
)

// Settings are what shape the proxy container of one host.
type Settings struct {
	Image     string
	HTTPPort  int32
	HTTPSPort int32
	BindIPs   []string
	Options   *kamalv1.ContainerOptions
	Logging   *kamalv1.Logging
}

// SettingsFor reads a Server's proxy settings, with defaultImage when it names none.
func SettingsFor(p kamalv1.ServerProxy, defaultImage string) Settings {
	s := Settings{Image: p.Image, HTTPPort: p.HTTPPort, HTTPSPort: p.HTTPSPort, BindIPs: p.BindIPs, Options: p.Options, Logging: p.Logging}
	if s.Image == "" {
		s.Image = defaultImage
	}
	if s.HTTPPort == 0 {
		s.HTTPPort = 80
	}
	if s.HTTPSPort == 0 {
		s.HTTPSPort = 443
	}
	return s
}

// containerRevision changes when CreateOptions changes shape, so existing proxies are
// replaced with the new shape. 3: the fixed config and the route table of the module, run
// without --resume.
const containerRevision = "3"

// Hash identifies the settings; a container with another hash is replaced.
func (s Settings) Hash() string {
	b, _ := json.Marshal(s)
	sum := sha256.Sum256(append(append(b, FixedConfig()...), containerRevision...))
	return hex.EncodeToString(sum[:])[:16]
}

// FixedConfig is Caddy's config, the same on every host and never changed while the proxy
// runs: the admin API on the unix socket, not persisted; the server "kamal" on :80 and
// "kamal-tls" on :443, Caddy's automatic HTTPS off on both, each with one route whose only
// handler is the module's kamal_router. Every app route lives in the module's route table, so
// adding, changing or removing one is no config change and touches no other app's connections
// (images/kamal-proxy). TLS certificates come from the module's certificate table (set through
// Admin.PutCertificate; a name without one fails the handshake) through Caddy's get_certificate
// hook; the permission module refuses every name, so Caddy never asks an ACME issuer. HTTP/1.1 on :80 (HTTP/2 needs TLS there),
// HTTP/1.1 and HTTP/2 on :443; no HTTP/3: UDP 443 is not published.
// The container runs it with `caddy run --config` and no --resume, so it applies on every
// start, also where an older proxy left an autosave.
func FixedConfig() []byte {
	routes := []any{map[string]any{"handle": []any{map[string]any{"handler": "kamal_router"}}}}
	noAutoHTTPS := map[string]any{"disable": true}
	cfg := map[string]any{
		"admin": map[string]any{"listen": "unix/" + AdminSocket, "config": map[string]any{"persist": false}},
		"apps": map[string]any{
			"http": map[string]any{"servers": map[string]any{
				ServerName:    map[string]any{"listen": []string{":80"}, "automatic_https": noAutoHTTPS, "routes": routes, "protocols": []string{"h1"}},
				TLSServerName: map[string]any{"listen": []string{":443"}, "automatic_https": noAutoHTTPS, "routes": routes, "protocols": []string{"h1", "h2"}, "tls_connection_policies": []any{map[string]any{}}},
			}},
			"tls": map[string]any{"automation": map[string]any{
				"policies":  []any{map[string]any{"get_certificate": []any{map[string]any{"via": "kamal"}}}},
				"on_demand": map[string]any{"permission": map[string]any{"module": "kamal"}},
			}},
		},
	}
	b, _ := json.Marshal(cfg)
	return b
}

// CreateOptions is the Engine API request that creates the proxy container.
func (s Settings) CreateOptions() (client.ContainerCreateOptions, error) {
	cfg := &container.Config{
		Image:      s.Image,
		Entrypoint: []string{caddyBinary},
		Cmd:        []string{"run", "--config", configFile},
		Env: []string{
			"XDG_CONFIG_HOME=/config", "XDG_DATA_HOME=/data",
			"CADDY_ADMIN=unix/" + AdminSocket,
		},
		Labels: map[string]string{
			kamalv1.LabelManagedBy: kamalv1.ManagerName,
			kamalv1.LabelSpecHash:  s.Hash(),
			labelProxy:             "true",
		},
		ExposedPorts: network.PortSet{network.MustParsePort("80/tcp"): {}, network.MustParsePort("443/tcp"): {}},
	}
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode(Network),
		// A legacy bind creates the host folder when missing, on every API version (mounts
		// learned CreateMountpoint only in API 1.42).
		Binds: []string{HostRunDir + ":" + HostRunDir},
		Mounts: []mount.Mount{
			{Type: mount.TypeVolume, Source: configVolume, Target: "/config"},
			{Type: mount.TypeVolume, Source: dataVolume, Target: "/data"},
		},
		PortBindings: network.PortMap{},
	}
	if err := docker.ApplyOptions(s.Options, cfg, hc); err != nil {
		return client.ContainerCreateOptions{}, err
	}
	docker.ApplyLogging(s.Logging, hc)
	// Every config change makes Caddy open a new SO_REUSEPORT listener and close the old one;
	// without this, connections waiting in the old one's accept queue are reset, and a
	// client sees a request fail during a deploy. Linux 5.14+ migrates them instead.
	if hc.Sysctls == nil {
		hc.Sysctls = map[string]string{}
	}
	hc.Sysctls[migrateSysctl] = "1"
	ips := s.BindIPs
	if len(ips) == 0 {
		ips = []string{""}
	}
	for _, ipStr := range ips {
		var ip netip.Addr
		if ipStr != "" {
			var err error
			if ip, err = netip.ParseAddr(ipStr); err != nil {
				return client.ContainerCreateOptions{}, fmt.Errorf("proxy.bindIPs: %w", err)
			}
		}
		for port, hostPort := range map[string]int32{"80/tcp": s.HTTPPort, "443/tcp": s.HTTPSPort} {
			p := network.MustParsePort(port)
			hc.PortBindings[p] = append(hc.PortBindings[p], network.PortBinding{HostIP: ip, HostPort: strconv.Itoa(int(hostPort))})
		}
	}
	return client.ContainerCreateOptions{Name: ContainerName, Config: cfg, HostConfig: hc}, nil
}

// Action says what Ensure did.
type Action string

const (
	ActionNone    Action = ""
	ActionCreated Action = "Created"
	ActionStarted Action = "Started"
	// ActionUpgraded is a replacement by Replace.
	ActionUpgraded Action = "Upgraded"
)

// Ensure makes the host run a proxy on the kamal network: it creates one with settings s when
// the host has none, and starts a stopped one. It never replaces a proxy of other settings
// (ActionNone, with Observe telling the hashes apart): Replace does that, keeping the old one
// until the new one works, and the controller decides when.
func Ensure(ctx context.Context, cli *client.Client, s Settings) (Action, error) {
	if err := docker.EnsureNetwork(ctx, cli, Network); err != nil {
		return ActionNone, err
	}
	cur, err := cli.ContainerInspect(ctx, ContainerName, client.ContainerInspectOptions{})
	if err == nil {
		if err := checkProxy(cur.Container.Config); err != nil {
			return ActionNone, err
		}
		if cur.Container.State != nil && cur.Container.State.Running {
			return ActionNone, nil
		}
		if _, err := cli.ContainerStart(ctx, ContainerName, client.ContainerStartOptions{}); err != nil {
			return ActionNone, fmt.Errorf("starting %s: %w", ContainerName, err)
		}
		return ActionStarted, nil
	}
	if !docker.IsNotFound(err) {
		return ActionNone, err
	}
	if _, err := docker.EnsureImage(ctx, cli, s.Image, ""); err != nil {
		return ActionNone, err
	}
	opts, err := s.CreateOptions()
	if err != nil {
		return ActionNone, err
	}
	err = createAndStart(ctx, cli, opts)
	if err != nil && strings.Contains(err.Error(), migrateSysctl) {
		// A kernel older than 5.14 lacks the sysctl: run without it.
		delete(opts.HostConfig.Sysctls, migrateSysctl)
		err = createAndStart(ctx, cli, opts)
	}
	if err != nil {
		return ActionNone, err
	}
	return ActionCreated, nil
}

const migrateSysctl = "net.ipv4.tcp_migrate_req"

func createAndStart(ctx context.Context, cli *client.Client, opts client.ContainerCreateOptions) error {
	created, err := cli.ContainerCreate(ctx, opts)
	if err != nil {
		return fmt.Errorf("creating %s: %w", ContainerName, err)
	}
	if _, err := cli.CopyToContainer(ctx, created.ID, client.CopyToContainerOptions{DestinationPath: "/", Content: configTar()}); err != nil {
		return fmt.Errorf("writing %s config: %w", ContainerName, err)
	}
	if err := attachAll(ctx, cli, created.ID); err != nil {
		_, _ = cli.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true})
		return err
	}
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		_, _ = cli.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true})
		return fmt.Errorf("starting %s: %w", ContainerName, err)
	}
	return nil
}

// Remove stops and removes the proxy container (and those an unfinished replacement left);
// its volumes stay, so a later proxy serves the same routes (the route table is in the data
// volume). Only containers with the proxy's labels are removed: another container of one of
// these names stays, and is named in the error.
func Remove(ctx context.Context, cli *client.Client) error {
	var errs []error
	for _, name := range []string{ContainerName, AsideName, FailedName} {
		if err := removeIfProxy(ctx, cli, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkProxy refuses a container named kamal-proxy that the controller did not make as the
// proxy (an Accessory or a person's container made before the name was reserved): it is
// neither used nor replaced.
func checkProxy(cfg *container.Config) error {
	var labels map[string]string
	if cfg != nil {
		labels = cfg.Labels
	}
	if IsProxy(labels) {
		return nil
	}
	return &docker.ForeignError{Kind: "container", Name: ContainerName, Owner: docker.OwnerOf(labels)}
}

func configTar() io.Reader {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	cfg := FixedConfig()
	now := time.Unix(0, 0)
	_ = tw.WriteHeader(&tar.Header{Name: configDir[1:] + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now})
	_ = tw.WriteHeader(&tar.Header{Name: configFile[1:], Mode: 0o644, Size: int64(len(cfg)), ModTime: now})
	_, _ = tw.Write(cfg)
	_ = tw.Close()
	return &buf
}
