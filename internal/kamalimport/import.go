// Package kamalimport turns a Kamal deploy.yml (with a destination file and a secrets file)
// into the Servers, Deployment, Accessories and Secrets of kamal-operator, and says which keys
// have no place in them and why. It reads only the files it is given, never runs what the
// files would have Kamal run (ERB beyond ENV, command substitution in secrets), and never reads
// a private key.
package kamalimport

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/registryauth"
)

// FS reads the files import is given; os and fstest.MapFS both satisfy it.
type FS interface {
	ReadFile(name string) ([]byte, error)
}

// Input is what to import.
type Input struct {
	FS FS
	// ConfigPath is the deploy.yml; a destination's file is read next to it.
	ConfigPath string
	// Destination, when set, merges deploy.<destination>.yml over deploy.yml.
	Destination string
	// SecretsPath, when set, is a dotenv file whose literal values fill the Secrets.
	SecretsPath string
	// Tag is the image's tag (the version) when deploy.yml's image has none.
	Tag string
	// Namespace of every object; empty leaves it out.
	Namespace string
	// Getenv answers ENV["X"] in ERB tags; nil means an empty environment.
	Getenv func(string) (string, bool)
}

func (in Input) getenv(k string) (string, bool) {
	if in.Getenv == nil {
		return "", false
	}
	return in.Getenv(k)
}

// Warning is a deploy.yml key (or a file and line) that import did not map, and why.
type Warning struct {
	Key     string
	Message string
}

func (w Warning) String() string { return w.Key + ": " + w.Message }

// Object is one document of the output, with the comment printed above it.
type Object struct {
	Comment string
	Object  runtime.Object
}

// Result is what an import produced.
type Result struct {
	// Header is the comment that opens the output: what to run before applying it.
	Header string
	// Objects in the order they are applied: Secrets, Servers, Accessories, the Deployment.
	Objects  []Object
	Warnings []Warning
}

// Names of the Secrets import writes or asks for, after the service.
func envSecretName(service string) string      { return service + "-secrets" }
func registrySecretName(service string) string { return service + "-registry" }
func tlsSecretName(service string) string      { return service + "-tls" }
func sshKeySecretName(service string) string   { return service + "-ssh-key" }

// Label keys that let roles, accessories and tags select Servers.
const (
	RoleLabelPrefix = "role.kamal.operator.dev/"
	TagLabelPrefix  = "tag.kamal.operator.dev/"
)

type server struct {
	address string
	name    string
	roles   map[string]bool
	tags    map[string]bool
	proxied bool
	jump    bool
}

type importer struct {
	in        Input
	service   string
	warnings  []Warning
	secretVal map[string]string
	// envSecret are the keys of <service>-secrets: Kamal secret name → used.
	envSecret  map[string]bool
	servers    map[string]*server // by address
	roleHosts  map[string][]string
	primary    string
	header     []string
	tls        *[2]string
	registry   *registrySecret
	extra      []Object // Secrets beyond the env one (registries of accessories)
	sshSet     sshSettings
	aliasLines []string
}

type registrySecret struct {
	name, server, username, password string
	secretKeys                       []string
}

func (im *importer) warn(key, msg string) { im.warnings = append(im.warnings, Warning{key, msg}) }

// Import reads the files of in and returns the objects and the warnings. An error is a config
// import cannot read at all or will not evaluate (ERB beyond ENV), or a missing image tag.
func Import(in Input) (*Result, error) {
	im := &importer{in: in, secretVal: map[string]string{}, envSecret: map[string]bool{}, servers: map[string]*server{}, roleHosts: map[string][]string{}}
	cfg, files, err := loadConfig(in, im.warn)
	if err != nil {
		return nil, err
	}
	if in.SecretsPath != "" {
		raw, err := in.FS.ReadFile(in.SecretsPath)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", in.SecretsPath, err)
		}
		im.secretVal = parseSecrets(in.SecretsPath, string(raw), im.warn)
	}
	service := str(cfg["service"])
	if service == "" {
		return nil, fmt.Errorf("%s: service is required", in.ConfigPath)
	}
	im.service = dnsLabel(service, 53)
	if im.service != service {
		im.warn("service", fmt.Sprintf("%q is not a DNS label of at most 53 characters: the Deployment is named %q", service, im.service))
	}
	im.primary = "web"
	if p := str(cfg["primary_role"]); p != "" {
		im.primary = dnsLabel(p, 63)
	}

	dep := &kamalv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: kamalv1.GroupVersion.String(), Kind: "Deployment"},
		ObjectMeta: im.meta(im.service),
	}
	if err := im.image(cfg, &dep.Spec); err != nil {
		return nil, err
	}
	if err := im.roles(cfg, &dep.Spec); err != nil {
		return nil, err
	}
	var depComment []string
	accessories := im.accessories(cfg)
	for _, k := range sortedKeys(cfg) {
		v := cfg[k]
		switch k {
		case "service", "image", "servers", "accessories", "registry":
			// done above
		case "primary_role":
			dep.Spec.PrimaryRole = im.primary
		case "labels":
			dep.Spec.Labels = im.labels(k, v)
		case "volumes":
			dep.Spec.Volumes = strs(v)
		case "asset_path":
			dep.Spec.AssetPath = str(v)
		case "retain_containers":
			n, err := intOrPercent(v)
			if err != nil || n.Type != 0 {
				im.warn(k, fmt.Sprintf("%q is not a number; not mapped", str(v)))
				continue
			}
			dep.Spec.RetainContainers = n.IntVal
		case "readiness_delay":
			dep.Spec.Rollout.ReadinessDelay = im.seconds(k, v)
		case "deploy_timeout":
			dep.Spec.Rollout.DeployTimeout = im.seconds(k, v)
		case "drain_timeout":
			dep.Spec.Rollout.DrainTimeout = im.seconds(k, v)
		case "stop_timeout":
			dep.Spec.Rollout.StopTimeout = im.seconds(k, v)
		case "boot":
			im.boot(v, &dep.Spec.Rollout)
		case "logging":
			dep.Spec.Logging = im.logging(k, v)
		case "env":
			dep.Spec.Env = im.env(k, v, true)
		case "proxy":
			dep.Spec.Proxy = im.proxy(k, v)
		case "ssh":
			im.ssh(v)
		case "aliases":
			im.aliases(v)
		case "builder":
			im.warn(k, "not mapped: out of scope for import — build with `kubectl kamal deploy NAME --build` on a builder Server (docs/build.md maps each builder key), or let CI push the image")
		case "hooks", "hooks_path", "hooks_output":
			im.warn(k, "not mapped: hooks run on the machine that runs kamal; the controller has no equivalent (see docs/kamal-mapping.md, Hooks)")
		case "minimum_version":
			im.warn(k, "not mapped: there is no CLI version to check; the API version and the installed controller are what count")
		case "require_destination":
			im.warn(k, "not mapped: destinations are namespaces here (import -d DESTINATION -n NAMESPACE)")
		case "allow_empty_roles":
			im.warn(k, "not mapped: a role whose servers match no Server stalls the Deployment (NoServers); remove the role instead")
		case "run_directory":
			im.warn(k, "not mapped: nothing is kept per app on the hosts")
		case "secrets_path":
			im.warn(k, "not mapped: pass the secrets file with --secrets-file")
		case "error_pages_path":
			im.warn(k, "not mapped: the proxy has no custom error pages")
		case "sshkit", "output":
			im.warn(k, "not mapped: settings of the kamal CLI")
		default:
			if strings.HasPrefix(k, "x-") {
				im.warn(k, "not mapped: an extension block (Kamal ignores it too)")
			} else {
				im.warn(k, "not mapped: not a key of Kamal 2's deploy.yml")
			}
		}
	}
	if _, ok := dep.Spec.Roles[im.primary]; !ok {
		return nil, fmt.Errorf("primary_role %q names no role of servers (roles: %s)", im.primary, strings.Join(sortedKeys(dep.Spec.Roles), ", "))
	}
	if im.registry != nil {
		dep.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: im.registry.name}}
	}
	for _, a := range accessories {
		dep.Spec.DependsOn = append(dep.Spec.DependsOn, corev1.LocalObjectReference{Name: a.Object.(*kamalv1.Accessory).Name})
	}
	if len(dep.Spec.DependsOn) > 0 {
		depComment = append(depComment, "dependsOn: the roles start once the accessories are Ready, the order `kamal setup` boots them in.")
	}
	if dep.Spec.Rollout.MaxParallel == nil {
		depComment = append(depComment, "Kamal boots every host at once unless boot.limit says otherwise; rollout.maxParallel defaults to 1 here (one host at a time). Set it to \"100%\" for Kamal's behaviour.")
	}
	servers, err := im.serverObjects(cfg)
	if err != nil {
		return nil, err
	}
	for _, a := range accessories {
		sel := &a.Object.(*kamalv1.Accessory).Spec.Servers
		for i, addr := range sel.Names {
			sel.Names[i] = im.servers[addr].name
		}
		sort.Strings(sel.Names)
	}
	if dep.Spec.Logging != nil {
		// Kamal merges a role's logging over the top-level one; here a role's replaces it.
		for name, r := range dep.Spec.Roles {
			if r.Logging == nil {
				continue
			}
			merged := &kamalv1.Logging{Driver: dep.Spec.Logging.Driver, Options: map[string]string{}}
			if r.Logging.Driver != "" {
				merged.Driver = r.Logging.Driver
			}
			for k, v := range dep.Spec.Logging.Options {
				merged.Options[k] = v
			}
			for k, v := range r.Logging.Options {
				merged.Options[k] = v
			}
			r.Logging = merged
			dep.Spec.Roles[name] = r
		}
	}

	res := &Result{}
	res.Objects = append(res.Objects, im.secretObjects()...)
	res.Objects = append(res.Objects, servers...)
	res.Objects = append(res.Objects, accessories...)
	res.Objects = append(res.Objects, Object{
		Comment: strings.Join(append([]string{fmt.Sprintf("The app: Kamal's service %s.", service)}, depComment...), "\n"),
		Object:  dep,
	})
	res.Header = im.headerText(files)
	sort.SliceStable(im.warnings, func(i, j int) bool { return im.warnings[i].Key < im.warnings[j].Key })
	res.Warnings = im.warnings
	return res, nil
}

func (im *importer) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: im.in.Namespace}
}

func (im *importer) seconds(key string, v any) *metav1.Duration {
	d, err := seconds(v)
	if err != nil {
		im.warn(key, err.Error()+"; not mapped")
	}
	return d
}

// image is the full reference: registry.server prefixed as Kamal does, the tag from --tag.
func (im *importer) image(cfg map[string]any, spec *kamalv1.DeploymentSpec) error {
	image := str(cfg["image"])
	if image == "" {
		return fmt.Errorf("%s: image is required", im.in.ConfigPath)
	}
	reg, _ := cfg["registry"].(map[string]any)
	server := str(reg["server"])
	if server != "" && !strings.HasPrefix(image, server+"/") {
		image = server + "/" + image
	}
	name, digest, hasDigest := strings.Cut(image, "@")
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, tag = name[:i], name[i+1:]
	}
	switch {
	case im.in.Tag != "":
		tag = im.in.Tag
	case hasDigest:
	case tag == "":
		return fmt.Errorf("image %s has no tag: Kamal appends the git SHA itself, here the tag is the version; pass --tag (e.g. --tag $(git rev-parse --short HEAD))", name)
	}
	if strings.EqualFold(tag, "latest") {
		return fmt.Errorf("image %s:%s: the tag latest names no version; pass --tag with the tag of a build (e.g. the git SHA)", name, tag)
	}
	spec.Image = name
	if tag != "" {
		spec.Image += ":" + tag
	}
	if hasDigest {
		spec.Image += "@" + digest
	}
	if reg != nil {
		im.registry = im.registrySecret("registry", registrySecretName(im.service), reg)
	}
	return nil
}

// registrySecret maps a registry section to a dockerconfigjson Secret, or nil when it has no
// credentials.
func (im *importer) registrySecret(path, name string, reg map[string]any) *registrySecret {
	rs := &registrySecret{name: name, server: str(reg["server"])}
	for _, k := range sortedKeys(reg) {
		switch k {
		case "server":
		case "username", "password":
			val := reg[k]
			var out string
			if l, ok := val.([]any); ok && len(l) > 0 {
				key := str(l[0])
				rs.secretKeys = append(rs.secretKeys, key)
				out = im.secretValue(key)
			} else {
				out = str(val)
			}
			if k == "username" {
				rs.username = out
			} else {
				rs.password = out
			}
		default:
			im.warn(path+"."+k, "not mapped: only server, username and password have a place in a pull Secret")
		}
	}
	if rs.username == "" && rs.password == "" {
		return nil
	}
	return rs
}

func (im *importer) secretValue(key string) string {
	if v, ok := im.secretVal[key]; ok {
		return v
	}
	return Placeholder
}

func (im *importer) labels(path string, v any) map[string]string {
	m, ok := v.(map[string]any)
	if !ok {
		im.warn(path, "not a map; not mapped")
		return nil
	}
	out := map[string]string{}
	for k, val := range m {
		if strings.HasPrefix(k, kamalv1.LabelPrefix) {
			im.warn(path+"."+k, "not mapped: labels under "+kamalv1.LabelPrefix+" are reserved for the controller")
			continue
		}
		out[k] = str(val)
	}
	return out
}

func (im *importer) boot(v any, r *kamalv1.Rollout) {
	m, _ := v.(map[string]any)
	for _, k := range sortedKeys(m) {
		switch k {
		case "limit":
			n, err := intOrPercent(m[k])
			if err != nil {
				im.warn("boot.limit", err.Error()+"; not mapped")
				continue
			}
			r.MaxParallel = n
		case "wait":
			r.Wait = im.seconds("boot.wait", m[k])
		case "parallel_roles":
			b, err := boolOf(m[k])
			if err != nil {
				im.warn("boot.parallel_roles", err.Error())
			}
			r.ParallelRoles = b
		default:
			im.warn("boot."+k, "not mapped: not a key of Kamal's boot section")
		}
	}
}

func (im *importer) logging(path string, v any) *kamalv1.Logging {
	m, _ := v.(map[string]any)
	l := &kamalv1.Logging{}
	for _, k := range sortedKeys(m) {
		switch k {
		case "driver":
			l.Driver = str(m[k])
		case "options":
			opts, _ := m[k].(map[string]any)
			l.Options = map[string]string{}
			for ok, ov := range opts {
				l.Options[ok] = str(ov)
			}
		default:
			im.warn(path+"."+k, "not mapped: logging has driver and options")
		}
	}
	return l
}

// env maps clear values and secret references; tags are allowed only at the top.
func (im *importer) env(path string, v any, top bool) []kamalv1.EnvVar {
	m, _ := v.(map[string]any)
	_, hasClear := m["clear"]
	_, hasSecret := m["secret"]
	_, hasTags := m["tags"]
	clear := m
	if hasClear || hasSecret || hasTags {
		clear, _ = m["clear"].(map[string]any)
		for _, k := range sortedKeys(m) {
			if k != "clear" && k != "secret" && k != "tags" {
				im.warn(path+"."+k, "not mapped: with clear, secret or tags, plain values are ignored (as in Kamal); move it under clear")
			}
		}
	}
	var out []kamalv1.EnvVar
	for _, k := range sortedKeys(clear) {
		out = append(out, kamalv1.EnvVar{Name: k, Value: str(clear[k])})
	}
	for _, s := range strs(m["secret"]) {
		name, key, ok := strings.Cut(s, ":")
		if !ok {
			key = name
		}
		im.envSecret[key] = true
		out = append(out, kamalv1.EnvVar{Name: name, ValueFrom: &kamalv1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: envSecretName(im.service)}, Key: key,
		}}})
	}
	if tags, ok := m["tags"].(map[string]any); ok {
		for _, t := range sortedKeys(tags) {
			why := "not mapped: env cannot depend on a Server's labels; split the role in two (one per set of Servers), each with its own env"
			if !top {
				why = "not mapped: Kamal allows env tags only at the top level"
			}
			im.warn(path+".tags."+t, why)
		}
	}
	return out
}

func (im *importer) secretObjects() []Object {
	var out []Object
	if len(im.envSecret) > 0 {
		s := im.secret(envSecretName(im.service), corev1.SecretTypeOpaque)
		var missing []string
		for _, k := range sortedKeys(im.envSecret) {
			s.StringData[k] = im.secretValue(k)
			if s.StringData[k] == Placeholder {
				missing = append(missing, k)
			}
		}
		out = append(out, Object{Comment: secretComment("The secrets of env.secret (Kamal's .kamal/secrets).", missing), Object: s})
	}
	if rs := im.registry; rs != nil {
		out = append(out, im.registryObject(rs))
	}
	if im.tls != nil {
		s := im.secret(tlsSecretName(im.service), corev1.SecretTypeTLS)
		s.StringData[corev1.TLSCertKey] = im.secretValue(im.tls[0])
		s.StringData[corev1.TLSPrivateKeyKey] = im.secretValue(im.tls[1])
		var missing []string
		for _, k := range im.tls {
			if im.secretValue(k) == Placeholder {
				missing = append(missing, k)
			}
		}
		out = append(out, Object{Comment: secretComment("proxy.ssl's certificate ("+im.tls[0]+") and key ("+im.tls[1]+").", missing), Object: s})
	}
	out = append(out, im.extra...)
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Object.(*corev1.Secret).Name < out[j].Object.(*corev1.Secret).Name
	})
	return out
}

func (im *importer) registryObject(rs *registrySecret) Object {
	s := im.secret(rs.name, corev1.SecretTypeDockerConfigJson)
	key := rs.server
	if key == "" || registryauth.Registry(key+"/x") == "docker.io" {
		key = "https://index.docker.io/v1/"
	}
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{key: map[string]string{"username": rs.username, "password": rs.password}}})
	s.StringData[corev1.DockerConfigJsonKey] = string(cfg)
	var missing []string
	for _, k := range rs.secretKeys {
		if im.secretValue(k) == Placeholder {
			missing = append(missing, k)
		}
	}
	return Object{Comment: secretComment("Registry credentials, sent with each pull and never stored on the hosts (Kamal runs docker login there).", missing), Object: s}
}

func (im *importer) secret(name string, typ corev1.SecretType) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: im.meta(name),
		Type:       typ,
		StringData: map[string]string{},
	}
}

func secretComment(what string, missing []string) string {
	if len(missing) == 0 {
		return what
	}
	return what + "\n" + Placeholder + " stands for " + strings.Join(missing, ", ") + ": put the values in before applying, or create the Secret another way (Sealed Secrets, SOPS, External Secrets) and drop this document."
}

func (im *importer) headerText(files []string) string {
	h := []string{"Imported from " + strings.Join(files, " and ") + " by kubectl kamal import."}
	if im.in.Destination != "" {
		h[0] = fmt.Sprintf("Imported from %s (destination %s) by kubectl kamal import.", strings.Join(files, " and "), im.in.Destination)
	}
	h = append(h, im.header...)
	if len(im.aliasLines) > 0 {
		h = append(h, "", "Kamal's aliases as kubectl kamal commands:")
		h = append(h, im.aliasLines...)
	}
	return strings.Join(h, "\n")
}

// YAML prints the result as YAML documents with their comments.
func (r *Result) YAML() ([]byte, error) {
	var b strings.Builder
	writeComment(&b, r.Header)
	for i, o := range r.Objects {
		if i > 0 || r.Header != "" {
			b.WriteString("---\n")
		}
		writeComment(&b, o.Comment)
		doc, err := marshal(o.Object)
		if err != nil {
			return nil, err
		}
		b.Write(doc)
	}
	return []byte(b.String()), nil
}

func writeComment(b *strings.Builder, c string) {
	if c == "" {
		return
	}
	for _, l := range strings.Split(c, "\n") {
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
}

// marshal prints an object without the fields a new object has no use for (status, a null
// creationTimestamp).
func marshal(obj runtime.Object) ([]byte, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	if spec, ok := m["spec"].(map[string]any); ok {
		for _, k := range []string{"rollout", "docker", "proxy"} {
			if sub, ok := spec[k].(map[string]any); ok && len(sub) == 0 {
				delete(spec, k)
			}
		}
	}
	return yaml.Marshal(m)
}
