package tenancy

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// Flags of the manager that set the guest policy; messages name them, so an admin knows what to
// change.
const (
	FlagHostPathPrefixes = "guest-host-path-prefixes"
	FlagPrivileged       = "guest-allow-privileged"
	FlagCapAdd           = "guest-allow-cap-add"
	FlagDevices          = "guest-allow-devices"
	FlagNamedVolumes     = "guest-allow-named-volumes"
)

// GuestPolicy is what a guest — a Deployment or Accessory placed on a Server of another
// namespace — may ask of that host, as the cluster admin sets it on the controller. The zero
// value allows nothing beyond an ordinary container on the kamal network: no host paths, no
// named volumes (they are one namespace per host, shared by every tenant), no privileged
// containers, added capabilities or devices. Objects placed on Servers of their own namespace
// are not guests and are not checked.
type GuestPolicy struct {
	// HostPathPrefixes are the host folders (absolute, cleaned) under which guests may bind
	// host paths: volumes and absolute accessory directories.
	HostPathPrefixes []string
	Privileged       bool
	CapAdd           bool
	Devices          bool
	NamedVolumes     bool
}

// Violation is one field a guest sets that the policy refuses.
type Violation struct {
	Field string
	Why   string
}

func (v Violation) String() string { return v.Field + ": " + v.Why }

// ParseHostPathPrefixes reads a comma-separated list of absolute host folders.
func ParseHostPathPrefixes(s string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !path.IsAbs(p) || strings.ContainsAny(p, ":\x00") {
			return nil, fmt.Errorf("--%s: %q is not an absolute host path", FlagHostPathPrefixes, p)
		}
		p = path.Clean(p)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out, nil
}

// CheckDeployment lists what a Deployment asks that the policy refuses, given the roles placed
// on a Server of another namespace: the volumes (shared by every role) and those roles'
// effective options. Nothing is checked when no role is a guest.
func (p GuestPolicy) CheckDeployment(spec *kamalv1.DeploymentSpec, guestRoles []string) []Violation {
	if len(guestRoles) == 0 {
		return nil
	}
	out := p.checkVolumes("spec.volumes", spec.Volumes)
	checked := false
	for _, name := range guestRoles {
		role := spec.Roles[name]
		if role.Options != nil {
			out = append(out, p.checkOptions("spec.roles["+name+"].options", role.Options)...)
		} else if !checked {
			checked = true
			out = append(out, p.checkOptions("spec.options", spec.Options)...)
		}
	}
	return out
}

// CheckAccessory lists what an Accessory placed on a Server of another namespace asks that the
// policy refuses.
func (p GuestPolicy) CheckAccessory(spec *kamalv1.AccessorySpec) []Violation {
	out := p.checkVolumes("spec.volumes", spec.Volumes)
	for i, d := range spec.Directories {
		// A relative directory lives under the accessory's own folder; an absolute one is any
		// host path.
		host, _, _ := strings.Cut(d, ":")
		if path.IsAbs(host) {
			if v := p.checkHostPath(fmt.Sprintf("spec.directories[%d]", i), host); v != nil {
				out = append(out, *v)
			}
		}
	}
	return append(out, p.checkOptions("spec.options", spec.Options)...)
}

func (p GuestPolicy) checkOptions(field string, o *kamalv1.ContainerOptions) []Violation {
	if o == nil {
		return nil
	}
	var out []Violation
	if o.Privileged && !p.Privileged {
		out = append(out, Violation{field + ".privileged", "privileged containers are not allowed for guests (--" + FlagPrivileged + ")"})
	}
	if len(o.CapAdd) > 0 && !p.CapAdd {
		out = append(out, Violation{field + ".capAdd", "added capabilities are not allowed for guests (--" + FlagCapAdd + ")"})
	}
	if len(o.Devices) > 0 && !p.Devices {
		out = append(out, Violation{field + ".devices", "host devices are not allowed for guests (--" + FlagDevices + ")"})
	}
	return out
}

// checkVolumes checks Docker's "source:target[:options]" volumes: a source that starts with /
// is a host path, any other a named volume.
func (p GuestPolicy) checkVolumes(field string, vols []string) []Violation {
	var out []Violation
	for i, v := range vols {
		f := field + "[" + strconv.Itoa(i) + "]"
		src, _, _ := strings.Cut(v, ":")
		if path.IsAbs(src) {
			if viol := p.checkHostPath(f, src); viol != nil {
				out = append(out, *viol)
			}
			continue
		}
		if !p.NamedVolumes {
			out = append(out, Violation{f, fmt.Sprintf("named volume %q is not allowed for guests: a named volume is shared by every namespace on the host (--%s)", src, FlagNamedVolumes)})
		}
	}
	return out
}

func (p GuestPolicy) checkHostPath(field, hostPath string) *Violation {
	if UnderPrefix(hostPath, p.HostPathPrefixes) {
		return nil
	}
	allowed := "none is allowed"
	if len(p.HostPathPrefixes) > 0 {
		allowed = "allowed: " + strings.Join(p.HostPathPrefixes, ", ")
	}
	return &Violation{field, fmt.Sprintf("host path %s is not under a folder guests may use (%s; --%s)", path.Clean(hostPath), allowed, FlagHostPathPrefixes)}
}

// UnderPrefix says whether the host path, cleaned (so ".." cannot climb out), is one of the
// prefixes or lies under one. Symbolic links on the host are not resolved here.
func UnderPrefix(hostPath string, prefixes []string) bool {
	c := path.Clean(hostPath)
	for _, pre := range prefixes {
		if pre == "/" || c == pre || strings.HasPrefix(c, pre+"/") {
			return true
		}
	}
	return false
}
