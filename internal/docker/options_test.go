package docker

import (
	"reflect"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func TestApplyOptionsDefaults(t *testing.T) {
	var cfg container.Config
	var hc container.HostConfig
	if err := ApplyOptions(nil, &cfg, &hc); err != nil {
		t.Fatal(err)
	}
	if hc.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
		t.Errorf("restart = %q, want unless-stopped", hc.RestartPolicy.Name)
	}
	ApplyLogging(nil, &hc)
	if hc.LogConfig.Type != "json-file" || hc.LogConfig.Config["max-size"] != "10m" {
		t.Errorf("logging = %+v", hc.LogConfig)
	}
}

func TestApplyOptionsMapsEveryField(t *testing.T) {
	o := &kamalv1.ContainerOptions{
		Resources: &kamalv1.Resources{
			CPUs: ptr.To(resource.MustParse("1500m")), Memory: ptr.To(resource.MustParse("512Mi")),
			MemoryReservation: ptr.To(resource.MustParse("256Mi")), PidsLimit: ptr.To[int64](100),
		},
		RestartPolicy: kamalv1.RestartOnFailure, RestartMaxRetries: ptr.To[int32](4),
		ExtraHosts: []string{"db:10.0.0.9"}, Ulimits: []kamalv1.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}},
		User: "1000:1000", WorkingDir: "/app", ShmSize: ptr.To(resource.MustParse("64Mi")),
		CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"ALL"}, ReadOnlyRootFilesystem: true, Init: true,
		StopSignal: "SIGQUIT", Tmpfs: []string{"/tmp"}, Devices: []string{"/dev/fuse", "/dev/a:/dev/b:r"},
		DNS: []string{"1.1.1.1"}, Sysctls: map[string]string{"net.core.somaxconn": "1024"},
		Healthcheck: &kamalv1.ContainerHealthcheck{Command: []string{"/app", "check"}, Interval: &metav1.Duration{Duration: 2 * time.Second}, Retries: 5},
	}
	var cfg container.Config
	var hc container.HostConfig
	if err := ApplyOptions(o, &cfg, &hc); err != nil {
		t.Fatal(err)
	}
	checks := map[string][2]any{
		"nanocpus":   {hc.NanoCPUs, int64(1_500_000_000)},
		"memory":     {hc.Memory, int64(512 << 20)},
		"reserve":    {hc.MemoryReservation, int64(256 << 20)},
		"pids":       {*hc.PidsLimit, int64(100)},
		"restart":    {hc.RestartPolicy, container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 4}},
		"hosts":      {hc.ExtraHosts, []string{"db:10.0.0.9"}},
		"ulimit":     {*hc.Ulimits[0], container.Ulimit{Name: "nofile", Soft: 1024, Hard: 2048}},
		"user":       {cfg.User, "1000:1000"},
		"workdir":    {cfg.WorkingDir, "/app"},
		"shm":        {hc.ShmSize, int64(64 << 20)},
		"capadd":     {hc.CapAdd, []string{"NET_ADMIN"}},
		"readonly":   {hc.ReadonlyRootfs, true},
		"init":       {*hc.Init, true},
		"stopsignal": {cfg.StopSignal, "SIGQUIT"},
		"tmpfs":      {hc.Tmpfs, map[string]string{"/tmp": ""}},
		"device0":    {hc.Devices[0], container.DeviceMapping{PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm"}},
		"device1":    {hc.Devices[1], container.DeviceMapping{PathOnHost: "/dev/a", PathInContainer: "/dev/b", CgroupPermissions: "r"}},
		"dns":        {hc.DNS[0].String(), "1.1.1.1"},
		"sysctl":     {hc.Sysctls["net.core.somaxconn"], "1024"},
		"health":     {cfg.Healthcheck.Test, []string{"CMD", "/app", "check"}},
		"hinterval":  {cfg.Healthcheck.Interval, 2 * time.Second},
		"hretries":   {cfg.Healthcheck.Retries, 5},
	}
	for name, c := range checks {
		if !reflect.DeepEqual(c[0], c[1]) {
			t.Errorf("%s = %#v, want %#v", name, c[0], c[1])
		}
	}
}

func TestApplyOptionsRejectsBadDNS(t *testing.T) {
	var cfg container.Config
	var hc container.HostConfig
	if err := ApplyOptions(&kamalv1.ContainerOptions{DNS: []string{"1.1.1"}}, &cfg, &hc); err == nil {
		t.Error("accepted a malformed DNS address")
	}
}
