package docker

import (
	"fmt"
	"maps"
	"net/netip"
	"strings"

	"github.com/moby/moby/api/types/container"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// DefaultLogging is Kamal's: json-file capped at 10 MB.
var DefaultLogging = kamalv1.Logging{Driver: "json-file", Options: map[string]string{"max-size": "10m"}}

// ApplyOptions maps typed container options onto the Engine API's create request. Nil means
// Docker's defaults with restart policy unless-stopped, as Kamal runs its containers.
func ApplyOptions(o *kamalv1.ContainerOptions, cfg *container.Config, hc *container.HostConfig) error {
	hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
	if o == nil {
		return nil
	}
	if o.RestartPolicy != "" {
		hc.RestartPolicy.Name = container.RestartPolicyMode(o.RestartPolicy)
	}
	if o.RestartMaxRetries != nil {
		hc.RestartPolicy.MaximumRetryCount = int(*o.RestartMaxRetries)
	}
	if r := o.Resources; r != nil {
		if r.CPUs != nil {
			hc.NanoCPUs = r.CPUs.MilliValue() * 1_000_000
		}
		if r.Memory != nil {
			hc.Memory = r.Memory.Value()
		}
		if r.MemoryReservation != nil {
			hc.MemoryReservation = r.MemoryReservation.Value()
		}
		if r.PidsLimit != nil {
			hc.PidsLimit = new(int64)
			*hc.PidsLimit = *r.PidsLimit
		}
	}
	hc.ExtraHosts = append(hc.ExtraHosts, o.ExtraHosts...)
	for _, u := range o.Ulimits {
		hc.Ulimits = append(hc.Ulimits, &container.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	cfg.User = o.User
	cfg.WorkingDir = o.WorkingDir
	if o.ShmSize != nil {
		hc.ShmSize = o.ShmSize.Value()
	}
	hc.CapAdd = append(hc.CapAdd, o.CapAdd...)
	hc.CapDrop = append(hc.CapDrop, o.CapDrop...)
	hc.Privileged = o.Privileged
	hc.ReadonlyRootfs = o.ReadOnlyRootFilesystem
	if o.Init {
		t := true
		hc.Init = &t
	}
	cfg.StopSignal = o.StopSignal
	if len(o.Tmpfs) > 0 {
		hc.Tmpfs = map[string]string{}
		for _, p := range o.Tmpfs {
			hc.Tmpfs[p] = ""
		}
	}
	for _, d := range o.Devices {
		parts := strings.Split(d, ":")
		m := container.DeviceMapping{PathOnHost: parts[0], PathInContainer: parts[0], CgroupPermissions: "rwm"}
		if len(parts) > 1 {
			m.PathInContainer = parts[1]
		}
		if len(parts) > 2 {
			m.CgroupPermissions = parts[2]
		}
		hc.Devices = append(hc.Devices, m)
	}
	for _, s := range o.DNS {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("options.dns: %w", err)
		}
		hc.DNS = append(hc.DNS, a)
	}
	if len(o.Sysctls) > 0 {
		hc.Sysctls = maps.Clone(o.Sysctls)
	}
	if h := o.Healthcheck; h != nil {
		hcfg := &container.HealthConfig{Test: append([]string{"CMD"}, h.Command...), Retries: int(h.Retries)}
		if h.Interval != nil {
			hcfg.Interval = h.Interval.Duration
		}
		if h.Timeout != nil {
			hcfg.Timeout = h.Timeout.Duration
		}
		if h.StartPeriod != nil {
			hcfg.StartPeriod = h.StartPeriod.Duration
		}
		cfg.Healthcheck = hcfg
	}
	return nil
}

// ApplyLogging sets the log driver, Kamal's default when l is nil.
func ApplyLogging(l *kamalv1.Logging, hc *container.HostConfig) {
	if l == nil {
		l = &DefaultLogging
	}
	driver := l.Driver
	if driver == "" {
		driver = DefaultLogging.Driver
	}
	hc.LogConfig = container.LogConfig{Type: driver, Config: maps.Clone(l.Options)}
}
