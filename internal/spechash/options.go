package spechash

import (
	"encoding/json"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// Options is kamalv1.ContainerOptions as a spec hash sees it, version 1: the same JSON names and
// encoding as the API type had when the hash was introduced, so today's hashes stay; quantities
// and durations as the strings they encode to. See the package doc for adding a field.
type Options struct {
	Resources              *Resources        `json:"resources,omitempty"`
	RestartPolicy          string            `json:"restartPolicy,omitempty"`
	RestartMaxRetries      *int32            `json:"restartMaxRetries,omitempty"`
	ExtraHosts             []string          `json:"extraHosts,omitempty"`
	Ulimits                []Ulimit          `json:"ulimits,omitempty"`
	User                   string            `json:"user,omitempty"`
	WorkingDir             string            `json:"workingDir,omitempty"`
	ShmSize                string            `json:"shmSize,omitempty"`
	CapAdd                 []string          `json:"capAdd,omitempty"`
	CapDrop                []string          `json:"capDrop,omitempty"`
	Privileged             bool              `json:"privileged,omitempty"`
	ReadOnlyRootFilesystem bool              `json:"readOnlyRootFilesystem,omitempty"`
	Init                   bool              `json:"init,omitempty"`
	StopSignal             string            `json:"stopSignal,omitempty"`
	Tmpfs                  []string          `json:"tmpfs,omitempty"`
	Devices                []string          `json:"devices,omitempty"`
	DNS                    []string          `json:"dns,omitempty"`
	Sysctls                map[string]string `json:"sysctls,omitempty"`
	Healthcheck            *Healthcheck      `json:"healthcheck,omitempty"`
	// New fields go here: omitempty, and unset in every spec that exists (see the package doc).
}

// Resources is kamalv1.Resources as a spec hash sees it, version 1.
type Resources struct {
	CPUs              string `json:"cpus,omitempty"`
	Memory            string `json:"memory,omitempty"`
	MemoryReservation string `json:"memoryReservation,omitempty"`
	PidsLimit         *int64 `json:"pidsLimit,omitempty"`
}

// Ulimit is kamalv1.Ulimit as a spec hash sees it, version 1.
type Ulimit struct {
	Name string `json:"name"`
	Soft int64  `json:"soft"`
	Hard int64  `json:"hard"`
}

// Healthcheck is kamalv1.ContainerHealthcheck as a spec hash sees it, version 1.
type Healthcheck struct {
	Command     []string `json:"command"`
	Interval    string   `json:"interval,omitempty"`
	Timeout     string   `json:"timeout,omitempty"`
	Retries     int32    `json:"retries,omitempty"`
	StartPeriod string   `json:"startPeriod,omitempty"`
}

// Logging is kamalv1.Logging as a spec hash sees it, version 1.
type Logging struct {
	Driver  string            `json:"driver,omitempty"`
	Options map[string]string `json:"options,omitempty"`
}

// FromOptions projects o; nil stays nil. Lists and maps are shared with o, not copied: nil and
// empty encode differently, and the projection is only encoded.
func FromOptions(o *kamalv1.ContainerOptions) *Options {
	if o == nil {
		return nil
	}
	p := &Options{
		RestartPolicy: string(o.RestartPolicy), RestartMaxRetries: o.RestartMaxRetries,
		ExtraHosts: o.ExtraHosts, User: o.User, WorkingDir: o.WorkingDir, ShmSize: quantity(o.ShmSize),
		CapAdd: o.CapAdd, CapDrop: o.CapDrop, Privileged: o.Privileged,
		ReadOnlyRootFilesystem: o.ReadOnlyRootFilesystem, Init: o.Init, StopSignal: o.StopSignal,
		Tmpfs: o.Tmpfs, Devices: o.Devices, DNS: o.DNS, Sysctls: o.Sysctls,
	}
	if r := o.Resources; r != nil {
		p.Resources = &Resources{
			CPUs: quantity(r.CPUs), Memory: quantity(r.Memory), MemoryReservation: quantity(r.MemoryReservation),
			PidsLimit: r.PidsLimit,
		}
	}
	for _, u := range o.Ulimits {
		p.Ulimits = append(p.Ulimits, Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	if h := o.Healthcheck; h != nil {
		p.Healthcheck = &Healthcheck{
			Command: h.Command, Interval: duration(h.Interval), Timeout: duration(h.Timeout),
			Retries: h.Retries, StartPeriod: duration(h.StartPeriod),
		}
	}
	return p
}

// FromLogging projects l; nil stays nil.
func FromLogging(l *kamalv1.Logging) *Logging {
	if l == nil {
		return nil
	}
	return &Logging{Driver: l.Driver, Options: l.Options}
}

// quantity is the string q encodes to in JSON ("" for nil). It goes through MarshalJSON, as
// the hash of v1 did, which reads q without caching into it (String would write to a spec that
// other goroutines read).
func quantity(q *resource.Quantity) string {
	if q == nil {
		return ""
	}
	var s string
	b, err := q.MarshalJSON()
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		panic("spechash: encoding a quantity: " + err.Error()) // never: both are infallible
	}
	return s
}

// duration is the string d encodes to in JSON ("" for nil).
func duration(d *metav1.Duration) string {
	if d == nil {
		return ""
	}
	return d.Duration.String()
}
