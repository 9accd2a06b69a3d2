package kamalimport

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// sshSettings are what Kamal's ssh section says for every host.
type sshSettings struct {
	user     string
	port     int32
	jumpUser string
	jumpHost string
	jumpPort int32
	keyPath  string
	keyData  string
}

func (im *importer) ssh(v any) {
	m, _ := v.(map[string]any)
	s := &im.sshSet
	for _, k := range sortedKeys(m) {
		kp := "ssh." + k
		val := m[k]
		switch k {
		case "user":
			s.user = str(val)
		case "port":
			n, err := strconv.ParseInt(str(val), 10, 32)
			if err != nil {
				im.warn(kp, fmt.Sprintf("%q is not a port; not mapped", str(val)))
				continue
			}
			s.port = int32(n)
		case "proxy":
			// <host> or <user>@<host>, Kamal's user defaulting to root as Net::SSH::Proxy::Jump's.
			hp := str(val)
			s.jumpUser = "root"
			if u, h, ok := strings.Cut(hp, "@"); ok {
				s.jumpUser, hp = u, h
			}
			if h, p, ok := strings.Cut(hp, ":"); ok && !strings.Contains(p, ":") {
				if n, err := strconv.ParseInt(p, 10, 32); err == nil {
					hp, s.jumpPort = h, int32(n)
				}
			}
			s.jumpHost = hp
		case "keys":
			keys := strs(val)
			if len(keys) > 0 {
				s.keyPath = keys[0]
			}
			if len(keys) > 1 {
				im.warn(kp, fmt.Sprintf("only one key per Server: the Secret holds %s; the others (%s) are not used", keys[0], strings.Join(keys[1:], ", ")))
			}
			im.warn(kp, "not mapped to a field: the private key is never read; create the Secret "+sshKeySecretName(im.service)+" with the command in the output's first comment")
		case "key_data":
			keys := strs(val)
			if len(keys) > 0 {
				s.keyData = keys[0]
			}
			im.warn(kp, "not mapped to a field: create the Secret "+sshKeySecretName(im.service)+" from that key with the command in the output's first comment")
		case "proxy_command":
			im.warn(kp, "not mapped: only jump hosts (ssh.proxy) are supported")
		case "keys_only":
			im.warn(kp, "not mapped: only the Secret's key is ever offered")
		case "config":
			im.warn(kp, "not mapped: there is no ssh_config; everything is in the Server")
		case "forward_agent":
			im.warn(kp, "not mapped: no agent is forwarded")
		case "log_level":
			im.warn(kp, "not mapped: the controller's own logging")
		default:
			im.warn(kp, "not mapped: not a key of Kamal's ssh section")
		}
	}
}

// serverObjects names the hosts and makes one Server each (and one for a jump host).
func (im *importer) serverObjects(cfg map[string]any) ([]Object, error) {
	s := im.sshSet
	if s.jumpHost != "" {
		if _, taken := im.servers[s.jumpHost]; taken {
			return nil, fmt.Errorf("ssh.proxy %s is also a host of servers or accessories", s.jumpHost)
		}
		j := im.host(s.jumpHost)
		j.jump = true
	}
	addrs := sortedKeys(im.servers)
	used := map[string]bool{}
	for _, a := range addrs {
		base := dnsLabel(a, 63)
		if im.servers[a].jump {
			base = dnsLabel("jump-"+a, 63)
		}
		name := base
		for i := 2; used[name]; i++ {
			name = dnsLabel(fmt.Sprintf("%s-%d", base, i), 63)
		}
		used[name] = true
		im.servers[a].name = name
	}
	keyName := sshKeySecretName(im.service)
	keyCmd := "kubectl create secret generic " + keyName + " --type=kubernetes.io/ssh-auth --from-file=ssh-privatekey="
	switch {
	case s.keyPath != "":
		keyCmd += shellPath(s.keyPath)
	case s.keyData != "":
		keyCmd += "<file holding the key of secret " + s.keyData + ">"
	default:
		keyCmd += "$HOME/.ssh/id_ed25519   # the key your ssh-agent offers Kamal; deploy.yml names none"
	}
	if im.in.Namespace != "" {
		keyCmd += " -n " + im.in.Namespace
	}
	im.header = append(im.header, "", "Before applying, create the SSH key Secret the Servers log in with (import never reads a private key):", "  "+keyCmd)

	sp := im.serverProxy(cfg)
	var out []Object
	for _, a := range addrs {
		h := im.servers[a]
		srv := &kamalv1.Server{
			TypeMeta:   metav1.TypeMeta{APIVersion: kamalv1.GroupVersion.String(), Kind: "Server"},
			ObjectMeta: im.meta(h.name),
			Spec: kamalv1.ServerSpec{
				Address:         a,
				Port:            s.port,
				User:            s.user,
				SSHKeySecretRef: corev1.LocalObjectReference{Name: keyName},
				HostKeyPolicy:   kamalv1.HostKeyTrustOnFirstUse,
			},
		}
		var labels []string
		for _, r := range sortedKeys(h.roles) {
			labels = append(labels, RoleLabelPrefix+r)
		}
		for _, t := range sortedKeys(h.tags) {
			labels = append(labels, TagLabelPrefix+dnsLabel(t, 63))
		}
		if len(labels) > 0 {
			srv.Labels = map[string]string{}
			for _, l := range labels {
				srv.Labels[l] = "true"
			}
		}
		var what string
		switch {
		case h.jump:
			srv.Spec.User, srv.Spec.Port = s.jumpUser, s.jumpPort
			srv.Spec.Proxy.Enabled = ptr(false)
			what = "the jump host of ssh.proxy, through which the other Servers connect. It needs no Docker (its DockerReady condition stays False)"
		case h.proxied:
			srv.Spec.Proxy = sp
			what = "roles " + strings.Join(sortedKeys(h.roles), ", ")
		default:
			srv.Spec.Proxy.Enabled = ptr(false)
			if len(h.roles) > 0 {
				what = "roles " + strings.Join(sortedKeys(h.roles), ", ") + " (none behind the proxy, so no proxy runs here, as with Kamal)"
			} else {
				what = "accessories only (no proxy runs here, as with Kamal)"
			}
		}
		if !h.jump && s.jumpHost != "" {
			srv.Spec.JumpHost = &kamalv1.JumpHost{ServerName: im.servers[s.jumpHost].name}
		}
		if len(h.tags) > 0 {
			what += "; tags " + strings.Join(sortedKeys(h.tags), ", ")
		}
		port := ""
		if srv.Spec.Port != 0 && srv.Spec.Port != 22 {
			port = fmt.Sprintf(" -p %d", srv.Spec.Port)
		}
		out = append(out, Object{Object: srv, Comment: fmt.Sprintf(`Host %s: %s.
deploy.yml pins no host key, so the first key seen is trusted and recorded (TrustOnFirstUse).
To pin it instead, put the output of `+"`ssh-keyscan -t ed25519%s %s | cut -d' ' -f2-`"+` in
spec.knownHosts and set hostKeyPolicy: Pinned.`, a, what, port, a)})
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Object.(*kamalv1.Server).Name < out[j].Object.(*kamalv1.Server).Name
	})
	return out, nil
}

// shellPath quotes a local path for the command in the comment, ~ spelled $HOME so the shell
// still expands it after '='.
func shellPath(p string) string {
	home := strings.HasPrefix(p, "~/")
	if home {
		p = p[2:]
	}
	q := p
	if strings.ContainsAny(p, " '\"$`\\") {
		q = "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
	}
	if home {
		return "$HOME/" + q
	}
	return q
}
