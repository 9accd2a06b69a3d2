package tenancy

import (
	"reflect"
	"testing"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func fields(vs []Violation) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.Field)
	}
	return out
}

func TestCheckDeployment(t *testing.T) {
	risky := &kamalv1.ContainerOptions{Privileged: true, CapAdd: []string{"NET_ADMIN"}, Devices: []string{"/dev/fuse"}}
	spec := &kamalv1.DeploymentSpec{
		Volumes: []string{"/srv/tenants/a/uploads:/uploads", "/etc:/host-etc:ro", "/srv/tenants/../../etc:/x", "cache:/cache"},
		Options: risky,
		Roles: map[string]kamalv1.Role{
			"web":  {},
			"jobs": {Options: &kamalv1.ContainerOptions{CapAdd: []string{"SYS_PTRACE"}}},
		},
	}
	all := []string{"spec.volumes[1]", "spec.volumes[2]", "spec.volumes[3]", "spec.roles[jobs].options.capAdd",
		"spec.options.privileged", "spec.options.capAdd", "spec.options.devices"}
	cases := []struct {
		name   string
		policy GuestPolicy
		guests []string
		want   []string
	}{
		{"not a guest: nothing is checked", GuestPolicy{}, nil, []string{}},
		{"default policy refuses every risky field", GuestPolicy{HostPathPrefixes: []string{"/srv/tenants"}}, []string{"jobs", "web"}, all},
		{"only the guest role's options count", GuestPolicy{HostPathPrefixes: []string{"/srv/tenants"}}, []string{"jobs"}, all[:4]},
		{"everything allowed", GuestPolicy{HostPathPrefixes: []string{"/"}, Privileged: true, CapAdd: true, Devices: true, NamedVolumes: true}, []string{"jobs", "web"}, []string{}},
		{"no prefixes: every host path refused", GuestPolicy{NamedVolumes: true, Privileged: true, CapAdd: true, Devices: true}, []string{"web"},
			[]string{"spec.volumes[0]", "spec.volumes[1]", "spec.volumes[2]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := fields(c.policy.CheckDeployment(spec, c.guests))
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("violations = %v, want %v", got, c.want)
			}
		})
	}
	v := GuestPolicy{}.CheckDeployment(spec, []string{"web"})[0]
	if v.String() != "spec.volumes[0]: host path /srv/tenants/a/uploads is not under a folder guests may use (none is allowed; --guest-host-path-prefixes)" {
		t.Errorf("message %q", v)
	}
}

func TestCheckAccessory(t *testing.T) {
	spec := &kamalv1.AccessorySpec{
		Directories: []string{"data:/var/lib/postgresql/data", "/srv/tenants/a/pg:/pg", "/var/lib/docker:/d"},
		Volumes:     []string{"pgdata:/x"},
		Options:     &kamalv1.ContainerOptions{Privileged: true},
	}
	got := fields(GuestPolicy{HostPathPrefixes: []string{"/srv/tenants"}}.CheckAccessory(spec))
	want := []string{"spec.volumes[0]", "spec.directories[2]", "spec.options.privileged"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("violations = %v, want %v (a relative directory lives in the accessory's own folder)", got, want)
	}
	open := GuestPolicy{NamedVolumes: true, Privileged: true, HostPathPrefixes: []string{"/srv/tenants", "/var/lib/docker"}}
	if got := open.CheckAccessory(spec); len(got) != 0 {
		t.Errorf("allowed by policy, got %v", got)
	}
}

func TestUnderPrefix(t *testing.T) {
	prefixes := []string{"/srv/tenants"}
	for p, want := range map[string]bool{
		"/srv/tenants": true, "/srv/tenants/a": true, "/srv/tenants/a/../b": true,
		"/srv/tenants2": false, "/srv": false, "/srv/tenants/../etc": false, "/srv/tenants/a/../../etc": false,
	} {
		if got := UnderPrefix(p, prefixes); got != want {
			t.Errorf("UnderPrefix(%q) = %v, want %v", p, got, want)
		}
	}
	if !UnderPrefix("/etc", []string{"/"}) {
		t.Error("/ allows every path")
	}
}
