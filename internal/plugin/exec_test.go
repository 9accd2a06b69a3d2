package plugin

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/oneoff"
)

func summary(id, version string, created int64) container.Summary {
	return container.Summary{ID: id, Created: created, Labels: map[string]string{kamalv1.LabelVersion: version}}
}

func TestPickContainer(t *testing.T) {
	old, cur := summary("a", "v1", 100), summary("b", "v2", 200)
	for _, tc := range []struct {
		name     string
		cs       []container.Summary
		versions []string
		want     string
	}{
		{"one", []container.Summary{old}, []string{"v9"}, "a"},
		{"mid-rollout, the serving version", []container.Summary{cur, old}, []string{"v1", "v2"}, "a"},
		{"the first preferred one present", []container.Summary{cur, old}, []string{"v9", "v2"}, "b"},
		{"none preferred: the newest", []container.Summary{old, cur}, nil, "b"},
		{"same version twice: the newest", []container.Summary{summary("c", "v1", 50), old}, []string{"v1"}, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := pickContainer(tc.cs, tc.versions)
			if !ok || got.ID != tc.want {
				t.Fatalf("picked %q (%v), want %q", got.ID, ok, tc.want)
			}
		})
	}
	if _, ok := pickContainer(nil, []string{"v1"}); ok {
		t.Fatal("picked from nothing")
	}
}

func TestPreferredVersions(t *testing.T) {
	d := &kamalv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app"},
		Spec:       kamalv1.DeploymentSpec{Image: "reg/app:v3"},
		Status: kamalv1.DeploymentStatus{Version: "v1", Targets: []kamalv1.TargetStatus{
			{Server: "web-1", Role: "web", Version: "v2"},
			{Server: "web-2", Role: "web", Version: "v1"},
			{Server: "web-1", Role: "jobs", Version: "v1"},
		}},
	}
	w := &workload{Deployment: d}
	if got := preferredVersions(w, placement{Server: "web-1", Role: "web"}); !slices.Equal(got, []string{"v2", "v1", "v3"}) {
		t.Errorf("web-1/web: %v", got)
	}
	if got := preferredVersions(w, placement{Server: "web-3", Role: "web"}); !slices.Equal(got, []string{"v1", "v3"}) {
		t.Errorf("web-3/web: %v", got)
	}
	if got := preferredVersions(&workload{Accessory: &kamalv1.Accessory{}}, placement{Server: "web-1"}); got != nil {
		t.Errorf("accessory: %v", got)
	}
}

func TestOneOffName(t *testing.T) {
	r := []byte{0xde, 0xad, 0xbe, 0xef, 0x01, 0x02}
	if got := oneOffName("app", r); got != "app-exec-deadbeef0102" {
		t.Errorf("short: %q", got)
	}
	long := strings.Repeat("a", 50) + "-" + strings.Repeat("b", 30)
	got := oneOffName(long, r)
	if len(got) > 63 || !strings.HasSuffix(got, "-exec-deadbeef0102") || !strings.HasPrefix(got, strings.Repeat("a", 45)) {
		t.Errorf("long: %q (%d)", got, len(got))
	}
	// a cut that would end in "-" does not leave "--"
	if got := oneOffName(strings.Repeat("a", 44)+"-xyz", r); strings.Contains(got, "--") || len(got) > 63 {
		t.Errorf("cut at a dash: %q", got)
	}
}

func TestOneOffCreateCopiesTheRunningContainer(t *testing.T) {
	init := true
	in := container.InspectResponse{
		ID:    "abc",
		Image: "sha256:1111",
		Config: &container.Config{
			Image:        "reg/app:v1",
			Env:          []string{"SECRET=s3cret", "CLEAR=1"},
			Entrypoint:   []string{"/docker-entrypoint"},
			Cmd:          []string{"serve"},
			User:         "app",
			WorkingDir:   "/srv",
			Labels:       map[string]string{kamalv1.LabelDeployment: "app", kamalv1.LabelRole: "web", kamalv1.LabelVersion: "v1"},
			Healthcheck:  &container.HealthConfig{Test: []string{"CMD", "/up"}},
			ExposedPorts: nil,
		},
		HostConfig: &container.HostConfig{
			Binds:         []string{"/srv/data:/data"},
			Mounts:        []mount.Mount{{Type: mount.TypeVolume, Source: "cache", Target: "/cache"}},
			NetworkMode:   "kamal-ns",
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
			PortBindings:  network.PortMap{network.MustParsePort("80/tcp"): {{HostPort: "8080"}}},
			Init:          &init,
			Resources:     container.Resources{Memory: 1 << 30},
		},
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			"kamal-ns": {Aliases: []string{"app-web"}, DNSNames: []string{"app-web"}},
			"kamal":    {},
		}},
	}
	labels := oneoff.Labels("ns", oneoff.KindExec, "Deployment", "app")
	got := oneOffCreate(in, "app-exec-1", "kamal-ns", labels, []string{"printenv", "SECRET"}, true, false)
	cfg, hc := got.Config, got.HostConfig
	if got.Name != "app-exec-1" || cfg.Image != "sha256:1111" || !slices.Equal(cfg.Cmd, []string{"printenv", "SECRET"}) ||
		!slices.Equal(cfg.Entrypoint, in.Config.Entrypoint) || cfg.User != "app" || cfg.WorkingDir != "/srv" ||
		!slices.Equal(cfg.Env, in.Config.Env) {
		t.Errorf("config %+v", cfg)
	}
	if !cfg.OpenStdin || !cfg.StdinOnce || !cfg.AttachStdin || cfg.Tty {
		t.Errorf("stdin/tty %+v", cfg)
	}
	if cfg.Healthcheck != nil || len(cfg.ExposedPorts) != 0 {
		t.Errorf("health check or ports: %+v", cfg)
	}
	if len(cfg.Labels) != len(labels) {
		t.Errorf("labels %v, want only %v", cfg.Labels, labels)
	}
	for k, v := range labels {
		if cfg.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cfg.Labels[k], v)
		}
	}
	for _, k := range []string{kamalv1.LabelDeployment, kamalv1.LabelRole, kamalv1.LabelVersion, kamalv1.LabelAccessory, kamalv1.LabelSpecHash} {
		if _, ok := cfg.Labels[k]; ok {
			t.Errorf("label %s on a one-off container", k)
		}
	}
	if !slices.Equal(hc.Binds, in.HostConfig.Binds) || len(hc.Mounts) != 1 || hc.Mounts[0].Source != "cache" ||
		hc.Init == nil || !*hc.Init || hc.Memory != 1<<30 {
		t.Errorf("host config %+v", hc)
	}
	if hc.RestartPolicy.Name != "" || len(hc.PortBindings) != 0 || hc.PublishAllPorts {
		t.Errorf("restart policy or ports: %+v", hc)
	}
	if hc.NetworkMode != "kamal-ns" || got.NetworkingConfig == nil || len(got.NetworkingConfig.EndpointsConfig) != 1 {
		t.Fatalf("network %q %+v", hc.NetworkMode, got.NetworkingConfig)
	}
	if ep := got.NetworkingConfig.EndpointsConfig["kamal-ns"]; ep == nil || len(ep.Aliases) != 0 || len(ep.DNSNames) != 0 {
		t.Errorf("endpoint %+v", ep)
	}

	// Not on the namespace's network: the running container's network mode, as it is.
	in.NetworkSettings.Networks = map[string]*network.EndpointSettings{"host": {}}
	in.HostConfig.NetworkMode = "host"
	got = oneOffCreate(in, "x", "kamal-ns", labels, []string{"true"}, false, true)
	if got.HostConfig.NetworkMode != "host" || got.NetworkingConfig != nil || !got.Config.Tty || got.Config.OpenStdin {
		t.Errorf("host network: %q %+v %+v", got.HostConfig.NetworkMode, got.NetworkingConfig, got.Config)
	}
}

func TestNotFound(t *testing.T) {
	// Docker 20.10's exec start error, as the attach stream carries it
	msg := `OCI runtime exec failed: exec failed: container_linux.go:380: starting container process caused: exec: "bash": executable file not found in $PATH: unknown` + "\r\n"
	if !notFoundMessage(msg) {
		t.Error("20.10's message")
	}
	if notFoundMessage("permission denied") {
		t.Error("permission denied is not a missing command")
	}
	if startErrorCode(errors.New(msg)) != 127 || startErrorCode(errors.New("permission denied")) != 126 {
		t.Error("start error codes")
	}
}

func TestHeldOutput(t *testing.T) {
	var out, errOut bytes.Buffer
	h := &heldOutput{}
	o, e := h.writer(&out), h.writer(&errOut)
	_, _ = o.Write([]byte("a"))
	_, _ = e.Write([]byte("b"))
	_, _ = o.Write([]byte("c"))
	if out.Len() != 0 || errOut.Len() != 0 || h.text() != "abc" || h.isReleased() {
		t.Fatalf("before release: %q %q %q", out.String(), errOut.String(), h.text())
	}
	if err := h.release(); err != nil {
		t.Fatal(err)
	}
	_, _ = o.Write([]byte("d"))
	if err := h.release(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "acd" || errOut.String() != "b" || !h.isReleased() {
		t.Fatalf("after release: %q %q", out.String(), errOut.String())
	}
}

func TestChosenPlacement(t *testing.T) {
	d := &workload{Deployment: &kamalv1.Deployment{}}
	if got := chosenPlacement(d, placement{Server: "web-1", Role: "web"}); got != "running on server web-1, role web (use --server/--role to choose)" {
		t.Error(got)
	}
	a := &workload{Accessory: &kamalv1.Accessory{}}
	if got := chosenPlacement(a, placement{Server: "db-1"}); got != "running on server db-1 (use --server to choose)" {
		t.Error(got)
	}
}
