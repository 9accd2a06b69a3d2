package kamalimport

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/registryauth"
)

var (
	numericOwner = regexp.MustCompile(`^[0-9]+(:[0-9]+)?$`)
	configMapKey = regexp.MustCompile(`[^-._a-zA-Z0-9]+`)
)

// accessories maps accessories.<name> to Accessories named <service>-<name>, Kamal's container
// name. Their hosts become Servers too (they need not be in servers:).
func (im *importer) accessories(cfg map[string]any) []Object {
	all, _ := cfg["accessories"].(map[string]any)
	var out []Object
	for _, name := range sortedKeys(all) {
		if o := im.accessory(name, all[name], cfg); o != nil {
			out = append(out, *o)
		}
	}
	return out
}

func (im *importer) accessory(kamalName string, v any, cfg map[string]any) *Object {
	path := "accessories." + kamalName
	m, ok := v.(map[string]any)
	if !ok {
		im.warn(path, "not a map; not mapped")
		return nil
	}
	name := dnsLabel(im.service+"-"+kamalName, 63)
	acc := &kamalv1.Accessory{
		TypeMeta:   metav1.TypeMeta{APIVersion: kamalv1.GroupVersion.String(), Kind: "Accessory"},
		ObjectMeta: im.meta(name),
	}
	a := &acc.Spec
	var comment []string
	placed := false
	var files []string
	for _, k := range sortedKeys(m) {
		kp := path + "." + k
		val := m[k]
		switch k {
		case "image", "registry":
		case "service":
			a.ContainerName = dnsLabel(str(val), 63)
		case "host", "hosts":
			var names []string
			for _, s := range im.hostList(kp, val) {
				names = append(names, s.address) // named once every host is known
			}
			a.Servers = kamalv1.ServerSelector{Names: names}
			placed = true
		case "role":
			a.Servers = roleSelector(dnsLabel(str(val), 63))
			placed = true
		case "tag":
			a.Servers = tagSelector(str(val))
			placed = true
		case "roles", "tags":
			// One label selector cannot say "this role or that one": list the hosts instead.
			var names []string
			for _, x := range strs(val) {
				if k == "roles" {
					names = append(names, im.roleHosts[dnsLabel(x, 63)]...)
				} else {
					for _, a := range sortedKeys(im.servers) {
						if im.servers[a].tags[x] {
							names = append(names, a)
						}
					}
				}
			}
			a.Servers = kamalv1.ServerSelector{Names: dedupe(names)}
			placed = true
			im.warn(kp, "mapped to servers.names, the hosts they have now: a selector cannot pick several roles or tags at once")
		case "port":
			s := strings.TrimSpace(str(val))
			if n, err := strconv.Atoi(s); err == nil {
				a.Port = ptr(intstr.FromInt32(int32(n)))
			} else {
				a.Port = ptr(intstr.FromString(s))
			}
		case "cmd":
			a.Cmd = shellWords(str(val))
		case "env":
			a.Env = im.env(kp, val, false)
		case "labels":
			a.Labels = im.labels(kp, val)
		case "options":
			opts, vols, labels := im.options(kp, val)
			a.Options = opts
			a.Volumes = append(a.Volumes, vols...)
			a.Labels = withLabels(a.Labels, labels)
		case "volumes":
			a.Volumes = append(a.Volumes, strs(val)...)
		case "directories":
			for i, d := range asList(val) {
				local, remote, opts, mode, owner := pathConfig(d)
				dp := fmt.Sprintf("%s[%d]", kp, i)
				if mode != "" {
					im.warn(dp+".mode", "not mapped: directories are created by the controller with its own mode")
				}
				if owner != "" {
					im.warn(dp+".owner", "not mapped: directories are created by the controller, owned by root")
				}
				a.Directories = append(a.Directories, local+":"+remote+im.mountOpts(dp, opts))
			}
		case "files":
			cm := name + "-files"
			for i, f := range asList(val) {
				local, remote, opts, mode, owner := pathConfig(f)
				fp := fmt.Sprintf("%s[%d]", kp, i)
				key := configMapKey.ReplaceAllString(strings.TrimSuffix(filepath.Base(local), ".erb"), "-")
				if strings.HasSuffix(local, ".erb") {
					im.warn(fp, "ERB template "+local+": render it yourself before creating the ConfigMap (import does not run ERB)")
				}
				if opts != "" {
					im.warn(fp, "mount options "+opts+" not mapped: files are mounted read-only")
				}
				file := kamalv1.AccessoryFile{
					Target:          remote,
					ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: cm}, Key: key},
				}
				if mode != "" {
					n, err := strconv.ParseInt(mode, 8, 32)
					if err != nil {
						im.warn(fp+".mode", fmt.Sprintf("%q is not an octal mode; not mapped", mode))
					} else {
						file.Mode = ptr(int32(n))
					}
				}
				switch {
				case owner == "":
				case numericOwner.MatchString(owner):
					file.Owner = owner
				default:
					im.warn(fp+".owner", fmt.Sprintf("%q not mapped: the owner is uid[:gid] here, as the host's user names are not known", owner))
				}
				a.Files = append(a.Files, file)
				files = append(files, key+"="+shellPath(local))
			}
		case "logging":
			a.Logging = im.logging(kp, val)
		case "network":
			im.warn(kp, "not mapped: an accessory is always on its namespace's network kamal-<namespace>")
		case "proxy":
			im.warn(kp, "not mapped: accessories are not routed through the proxy; publish a port instead")
		default:
			im.warn(kp, "not mapped: not a key of a Kamal accessory")
		}
	}
	if !placed {
		im.warn(path, "has none of host, hosts, role, roles, tag, tags: it is placed on the primary role's Servers")
		a.Servers = roleSelector(im.primary)
	}
	a.Image = str(m["image"])
	reg, _ := m["registry"].(map[string]any)
	if server := str(reg["server"]); server != "" && !strings.HasPrefix(a.Image, server+"/") {
		a.Image = server + "/" + a.Image
	}
	if nameOnly, _, _ := strings.Cut(a.Image, "@"); !strings.Contains(a.Image, "@") && strings.LastIndex(nameOnly, ":") <= strings.LastIndex(nameOnly, "/") {
		im.warn(path+".image", a.Image+" has no tag: the API wants one; mapped to "+a.Image+":latest, which is what Kamal pulls")
		a.Image += ":latest"
	}
	switch {
	case reg != nil:
		if rs := im.registrySecret(path+".registry", name+"-registry", reg); rs != nil {
			im.extra = append(im.extra, im.registryObject(rs))
			a.ImagePullSecrets = []corev1.LocalObjectReference{{Name: rs.name}}
		}
	case im.registry != nil && registryauth.Registry(a.Image) == registryauth.Registry(im.registry.server+"/x"):
		// Kamal logs the hosts in to the app's registry; its credentials serve this pull too.
		a.ImagePullSecrets = []corev1.LocalObjectReference{{Name: im.registry.name}}
	}
	if len(files) > 0 {
		cmd := "kubectl create configmap " + name + "-files --from-file=" + strings.Join(files, " --from-file=")
		if im.in.Namespace != "" {
			cmd += " -n " + im.in.Namespace
		}
		im.header = append(im.header, "", "Create the files of accessory "+kamalName+" (a Secret and secretKeyRef instead for secret content):", "  "+cmd)
		comment = append(comment, "Its files come from the ConfigMap "+name+"-files: see the first comment.")
	}
	return &Object{Comment: strings.Join(append([]string{"Kamal's accessory " + kamalName + "."}, comment...), "\n"), Object: acc}
}

// mountOpts keeps the read-only option of a directory; SELinux relabelling (z, Z) has no field.
func (im *importer) mountOpts(path, opts string) string {
	out := ""
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "":
		case "ro", "rw":
			out = ":" + o
		default:
			im.warn(path, "mount option "+o+" not mapped")
		}
	}
	return out
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// pathConfig reads Kamal's "local:remote[:options]" or {local, remote, mode, owner, options}.
func pathConfig(v any) (local, remote, opts, mode, owner string) {
	if m, ok := v.(map[string]any); ok {
		mode := str(m["mode"])
		if f, ok := m["mode"].(float64); ok {
			mode = strconv.FormatInt(int64(f), 8) // YAML read 0600 as an octal number
		}
		return str(m["local"]), str(m["remote"]), str(m["options"]), mode, str(m["owner"])
	}
	parts := strings.SplitN(str(v), ":", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2], "", ""
}

func dedupe(l []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
