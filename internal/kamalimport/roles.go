package kamalimport

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// host records an address of servers: or accessories: and returns its Server.
func (im *importer) host(address string) *server {
	s := im.servers[address]
	if s == nil {
		s = &server{address: address, roles: map[string]bool{}, tags: map[string]bool{}}
		im.servers[address] = s
	}
	return s
}

// hostList reads a list of hosts, each an address or {address: tag | [tags]}.
func (im *importer) hostList(path string, v any) []*server {
	var out []*server
	list, ok := v.([]any)
	if !ok && v != nil {
		list = []any{v}
	}
	for _, e := range list {
		switch e := e.(type) {
		case map[string]any:
			for _, addr := range sortedKeys(e) {
				s := im.host(addr)
				for _, t := range strs(e[addr]) {
					s.tags[t] = true
				}
				out = append(out, s)
			}
		default:
			out = append(out, im.host(str(e)))
		}
	}
	return out
}

func roleSelector(role string) kamalv1.ServerSelector {
	return kamalv1.ServerSelector{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{RoleLabelPrefix + role: "true"}}}
}

func tagSelector(tag string) kamalv1.ServerSelector {
	return kamalv1.ServerSelector{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{TagLabelPrefix + dnsLabel(tag, 63): "true"}}}
}

// roles maps servers: a list of hosts (role web) or roles, each a list or a map.
func (im *importer) roles(cfg map[string]any, spec *kamalv1.DeploymentSpec) error {
	spec.Roles = map[string]kamalv1.Role{}
	switch sv := cfg["servers"].(type) {
	case []any:
		im.addRole(spec, "web", "servers", map[string]any{"hosts": sv})
	case map[string]any:
		for _, name := range sortedKeys(sv) {
			rc, ok := sv[name].(map[string]any)
			if !ok {
				rc = map[string]any{"hosts": sv[name]}
			}
			im.addRole(spec, name, "servers."+name, rc)
		}
	default:
		return fmt.Errorf("%s: servers is required: a list of hosts or a map of roles", im.in.ConfigPath)
	}
	return nil
}

func (im *importer) addRole(spec *kamalv1.DeploymentSpec, kamalName, path string, rc map[string]any) {
	name := dnsLabel(kamalName, 63)
	if name != kamalName {
		im.warn(path, fmt.Sprintf("role names are DNS labels here: role %q is named %q", kamalName, name))
	}
	role := kamalv1.Role{Servers: roleSelector(name)}
	proxied := name == im.primary
	for _, k := range sortedKeys(rc) {
		v := rc[k]
		kp := path + "." + k
		switch k {
		case "hosts":
			for _, s := range im.hostList(kp, v) {
				s.roles[name] = true
				im.roleHosts[name] = append(im.roleHosts[name], s.address)
			}
		case "cmd":
			role.Cmd = shellWords(str(v))
		case "env":
			role.Env = im.env(kp, v, false)
		case "labels":
			role.Labels = im.labels(kp, v)
		case "options":
			var vols []string
			var labels map[string]string
			role.Options, vols, labels = im.options(kp, v)
			if len(vols) > 0 {
				im.warn(kp+".volume", "not mapped: volumes are the Deployment's for every role (spec.volumes)")
			}
			role.Labels = withLabels(role.Labels, labels)
		case "logging":
			role.Logging = im.logging(kp, v)
		case "proxy":
			switch pv := v.(type) {
			case bool:
				proxied = pv
				role.Proxy = &kamalv1.Proxy{Enabled: ptr(pv)}
			case map[string]any:
				proxied = true
				role.Proxy = im.proxy(kp, pv)
				role.Proxy.Enabled = ptr(true)
			}
		case "asset_path":
			role.AssetPath = str(v)
		case "stop_timeout":
			im.warn(kp, "not mapped: stop_timeout is the Deployment's for every role (spec.rollout.stopTimeout)")
		default:
			im.warn(kp, "not mapped: not a key of a Kamal role")
		}
	}
	if proxied {
		for _, a := range im.roleHosts[name] {
			im.servers[a].proxied = true
		}
	}
	spec.Roles[name] = role
}
