package kamalimport

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// options maps Kamal's `options:` (docker run --key value) to the typed container options.
// --volume and --label come back apart: they have fields of their own.
func (im *importer) options(path string, v any) (*kamalv1.ContainerOptions, []string, map[string]string) {
	m, ok := v.(map[string]any)
	if !ok {
		im.warn(path, "not a map; not mapped")
		return nil, nil, nil
	}
	o := &kamalv1.ContainerOptions{}
	var volumes []string
	labels := map[string]string{}
	var hc *kamalv1.ContainerHealthcheck
	health := func() *kamalv1.ContainerHealthcheck {
		if hc == nil {
			hc = &kamalv1.ContainerHealthcheck{}
		}
		return hc
	}
	resources := func() *kamalv1.Resources {
		if o.Resources == nil {
			o.Resources = &kamalv1.Resources{}
		}
		return o.Resources
	}
	// flag is a docker run switch: present (true or empty) or not.
	flag := func(v any) bool { b, err := boolOf(v); return err != nil && str(v) == "" || b }
	for _, k := range sortedKeys(m) {
		kp := path + "." + k
		val := m[k]
		bad := func(err error) { im.warn(kp, err.Error()+"; not mapped") }
		switch k {
		case "memory", "memory-reservation", "shm-size":
			q, err := bytesQuantity(val)
			if err != nil {
				bad(err)
				continue
			}
			switch k {
			case "memory":
				resources().Memory = q
			case "memory-reservation":
				resources().MemoryReservation = q
			default:
				o.ShmSize = q
			}
		case "cpus":
			q, err := resource.ParseQuantity(str(val))
			if err != nil {
				bad(fmt.Errorf("%q is not a number of CPUs", str(val)))
				continue
			}
			resources().CPUs = &q
		case "pids-limit":
			n, err := strconv.ParseInt(str(val), 10, 64)
			if err != nil {
				bad(err)
				continue
			}
			resources().PidsLimit = &n
		case "restart":
			policy, retries, _ := strings.Cut(str(val), ":")
			o.RestartPolicy = kamalv1.RestartPolicy(policy)
			if retries != "" {
				n, err := strconv.ParseInt(retries, 10, 32)
				if err != nil {
					bad(err)
					continue
				}
				o.RestartMaxRetries = ptr(int32(n))
			}
		case "add-host":
			o.ExtraHosts = strs(val)
		case "ulimit":
			for _, u := range strs(val) {
				name, limits, _ := strings.Cut(u, "=")
				soft, hard, found := strings.Cut(limits, ":")
				if !found {
					hard = soft
				}
				s, err1 := strconv.ParseInt(soft, 10, 64)
				h, err2 := strconv.ParseInt(hard, 10, 64)
				if err1 != nil || err2 != nil {
					bad(fmt.Errorf("%q is not name=soft[:hard]", u))
					continue
				}
				o.Ulimits = append(o.Ulimits, kamalv1.Ulimit{Name: name, Soft: s, Hard: h})
			}
		case "user", "u":
			o.User = str(val)
		case "workdir", "w":
			o.WorkingDir = str(val)
		case "cap-add":
			o.CapAdd = strs(val)
		case "cap-drop":
			o.CapDrop = strs(val)
		case "privileged":
			o.Privileged = flag(val)
		case "read-only":
			o.ReadOnlyRootFilesystem = flag(val)
		case "init":
			o.Init = flag(val)
		case "stop-signal":
			o.StopSignal = str(val)
		case "tmpfs":
			o.Tmpfs = strs(val)
		case "device":
			o.Devices = strs(val)
		case "dns":
			o.DNS = strs(val)
		case "sysctl":
			o.Sysctls = map[string]string{}
			for _, s := range strs(val) {
				sk, sv, _ := strings.Cut(s, "=")
				o.Sysctls[sk] = sv
			}
		case "health-cmd":
			health().Command = []string{"sh", "-c", str(val)}
		case "health-interval", "health-timeout", "health-start-period":
			d, err := dockerDuration(val)
			if err != nil {
				bad(err)
				continue
			}
			switch k {
			case "health-interval":
				health().Interval = d
			case "health-timeout":
				health().Timeout = d
			default:
				health().StartPeriod = d
			}
		case "health-retries":
			n, err := strconv.ParseInt(str(val), 10, 32)
			if err != nil {
				bad(err)
				continue
			}
			health().Retries = int32(n)
		case "volume", "v":
			volumes = append(volumes, strs(val)...)
		case "label", "l":
			for _, l := range strs(val) {
				lk, lv, _ := strings.Cut(l, "=")
				labels[lk] = lv
			}
		case "network":
			im.warn(kp, "not mapped: every container is on its namespace's network kamal-<namespace>")
		case "publish", "p":
			im.warn(kp, "not mapped: app roles are reached through the proxy; accessories publish with port")
		default:
			im.warn(kp, "not mapped: the options here are typed Docker Engine settings and --"+k+" is not one of them (docs/kamal-mapping.md, Options)")
		}
	}
	if hc != nil {
		if len(hc.Command) == 0 {
			im.warn(path+".health-cmd", "health check settings without health-cmd; not mapped")
		} else {
			o.Healthcheck = hc
		}
	}
	if reflect.DeepEqual(*o, kamalv1.ContainerOptions{}) {
		o = nil
	}
	return o, volumes, labels
}

// dockerDuration is a Go duration ("10s") as docker run takes it, or a number of seconds.
func dockerDuration(v any) (*metav1.Duration, error) {
	if d, err := time.ParseDuration(str(v)); err == nil {
		return &metav1.Duration{Duration: d}, nil
	}
	return seconds(v)
}
