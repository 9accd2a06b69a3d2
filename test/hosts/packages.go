package hosts

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"

	"github.com/kamal-operator/kamal-operator/test/debian"
)

// required maps each program the hosts need to the Debian package that ships it.
var required = []struct{ path, pkg string }{
	{"/usr/sbin/dockerd", "docker.io"},
	{"/usr/bin/docker", "docker.io"},
	{"/usr/bin/containerd", "containerd"},
	{"/usr/sbin/runc", "runc"},
	{"/usr/sbin/iptables", "iptables"},
	{"/usr/sbin/sshd", "openssh-server"},
	{"/usr/bin/ssh", "openssh-client"},
	{"/usr/bin/ssh-keygen", "openssh-client"},
	{"/usr/bin/docker-registry", "docker-registry"},
	{"/usr/bin/nsenter", "util-linux"},
	{"/usr/bin/unshare", "util-linux"},
	{"/usr/bin/sleep", "coreutils"},
}

func lookIP() bool {
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

func missingPackages() []string {
	set := map[string]bool{}
	for _, r := range required {
		if _, err := os.Stat(r.path); err != nil {
			if r.path == "/usr/sbin/runc" {
				if _, err := exec.LookPath("runc"); err == nil {
					continue
				}
			}
			set[r.pkg] = true
		}
	}
	if !lookIP() {
		set["iproute2"] = true
	}
	var pkgs []string
	for p := range set {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	return pkgs
}

// EnsurePackages installs the Debian packages the hosts need (docker.io, openssh-server,
// openssh-client, docker-registry, iproute2, iptables) when any of their programs is missing:
// `apt-get update` once, then `apt-get install`. Debian's services are kept from starting in the
// root namespace by a policy-rc.d that refuses every start (one that exists is left as it is; one
// this function writes is removed afterwards). Nothing here uses systemd or the packages' services.
func EnsurePackages(ctx context.Context, logf func(string, ...any)) error {
	pkgs := missingPackages()
	if len(pkgs) == 0 {
		return nil
	}
	if logf != nil {
		logf("installing Debian packages: %s", strings.Join(pkgs, " "))
	}
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); os.IsNotExist(err) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\n# written by kamal-operator test/hosts during apt-get install\nexit 101\n"), 0o755); err != nil {
			return err
		}
		defer os.Remove(policy)
	}
	if err := debian.Install(ctx, []string{"RUNLEVEL=1"}, pkgs...); err != nil {
		return err
	}
	if left := missingPackages(); len(left) > 0 {
		return fmt.Errorf("still missing after apt-get install: %v", left)
	}
	return nil
}
