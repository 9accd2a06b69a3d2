package envtest

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOuHlvosK/zgfTl3qHCDzrACo1uGYFrzR3z8sPm53zg/"

func validServer(ns string) *kamalv1.Server {
	return &kamalv1.Server{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-1", Labels: map[string]string{"tier": "web"}},
		Spec: kamalv1.ServerSpec{
			// Port 1 of a loopback address: the controller's dial is refused at once and reaches
			// no one. The address is the namespace's own, since two Servers of one address and
			// port are one host, and the younger is a duplicate (DuplicateServer).
			Address:         loopbackFor(ns),
			Port:            1,
			SSHKeySecretRef: corev1.LocalObjectReference{Name: "deploy-key"},
			KnownHosts:      []string{hostKey},
		},
	}
}

// loopbackFor is an address of 127.0.0.0/8 (all loopback on Linux) derived from ns.
func loopbackFor(ns string) string {
	h := fnv.New32a()
	h.Write([]byte(ns))
	v := h.Sum32()
	return fmt.Sprintf("127.%d.%d.%d", byte(v>>16), byte(v>>8), 1+byte(v)%254)
}

func validDeployment(ns string) *kamalv1.Deployment {
	return &kamalv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"},
		Spec: kamalv1.DeploymentSpec{
			Image: "registry.example.com:5000/team/app:v1",
			Roles: map[string]kamalv1.Role{
				"web": {Servers: kamalv1.ServerSelector{Names: []string{"web-1"}}},
			},
		},
	}
}

func validAccessory(ns string) *kamalv1.Accessory {
	return &kamalv1.Accessory{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		Spec: kamalv1.AccessorySpec{
			Image:   "postgres:15",
			Servers: kamalv1.ServerSelector{Names: []string{"web-1"}},
		},
	}
}

func dur(s string) *metav1.Duration {
	d, err := timeParse(s)
	if err != nil {
		panic(err)
	}
	return &metav1.Duration{Duration: d}
}

// asJSON is obj as the API server gets it from kubectl, after mut: for values the typed client
// cannot send, such as an explicit empty string in an omitempty field.
func asJSON(kind string, obj client.Object, mut func(map[string]any)) client.Object {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		panic(err)
	}
	delete(m, "status")
	mut(m)
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(kamalv1.GroupVersion.WithKind(kind))
	return u
}

const digest = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func secretKey(name, key string) *corev1.SecretKeySelector {
	return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
}

func TestInvalidSpecsAreRefused(t *testing.T) {
	ns := newNamespace(t)
	srv := func(mut func(*kamalv1.Server)) client.Object { s := validServer(ns); mut(s); return s }
	dep := func(mut func(*kamalv1.Deployment)) client.Object { d := validDeployment(ns); mut(d); return d }
	acc := func(mut func(*kamalv1.Accessory)) client.Object { a := validAccessory(ns); mut(a); return a }
	web := func(d *kamalv1.Deployment, mut func(*kamalv1.Role)) {
		r := d.Spec.Roles["web"]
		mut(&r)
		d.Spec.Roles["web"] = r
	}
	proxy := func(d *kamalv1.Deployment) *kamalv1.Proxy {
		if d.Spec.Proxy == nil {
			d.Spec.Proxy = &kamalv1.Proxy{}
		}
		return d.Spec.Proxy
	}
	health := func(d *kamalv1.Deployment) *kamalv1.ProxyHealthcheck {
		p := proxy(d)
		if p.Healthcheck == nil {
			p.Healthcheck = &kamalv1.ProxyHealthcheck{}
		}
		return p.Healthcheck
	}
	jump := &kamalv1.JumpHost{Address: "10.0.0.1", KnownHosts: []string{hostKey}}

	cases := []struct {
		name string
		obj  client.Object
		want []string // every part must appear in the error
	}{
		// Server
		{"pinned without known hosts", srv(func(s *kamalv1.Server) { s.Spec.KnownHosts = nil }), []string{"hostKeyPolicy Pinned needs at least one entry in knownHosts"}},
		{"ssh port out of range", srv(func(s *kamalv1.Server) { s.Spec.Port = 70000 }), []string{"spec.port", "less than or equal to 65535"}},
		{"known host not a public key", srv(func(s *kamalv1.Server) { s.Spec.KnownHosts = []string{"AAAAC3NzaC1lZDI1NTE5"} }), []string{"spec.knownHosts[0]", "should match"}},
		{"address with spaces", srv(func(s *kamalv1.Server) { s.Spec.Address = "web one" }), []string{"spec.address", "should match"}},
		{"unknown host key policy", srv(func(s *kamalv1.Server) { s.Spec.HostKeyPolicy = "TrustAlways" }), []string{"spec.hostKeyPolicy", `supported values: "Pinned", "TrustOnFirstUse"`}},
		{"jump host by name and address", srv(func(s *kamalv1.Server) {
			s.Spec.JumpHost = &kamalv1.JumpHost{ServerName: "bastion", Address: "10.0.0.1", KnownHosts: []string{hostKey}}
		}), []string{"set exactly one of jumpHost.serverName or jumpHost.address"}},
		{"jump host address without known hosts", srv(func(s *kamalv1.Server) { s.Spec.JumpHost = &kamalv1.JumpHost{Address: "10.0.0.1"} }), []string{"a jump host given by address needs knownHosts"}},
		{"jump server with its own user", srv(func(s *kamalv1.Server) { s.Spec.JumpHost = &kamalv1.JumpHost{ServerName: "bastion", User: "admin"} }), []string{"a jump host given by serverName takes its address"}},
		{"allowed namespaces from Selector without selector", srv(func(s *kamalv1.Server) {
			s.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromSelector}
		}), []string{"allowedNamespaces.selector is required when from is Selector, and only allowed then"}},
		{"allowed namespaces selector with from All", srv(func(s *kamalv1.Server) {
			s.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromAll, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "a"}}}
		}), []string{"allowedNamespaces.selector is required when from is Selector, and only allowed then"}},
		{"allowed namespaces selector with from defaulted to Same", srv(func(s *kamalv1.Server) {
			s.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "a"}}}
		}), []string{"allowedNamespaces.selector is required when from is Selector, and only allowed then"}},
		{"allowed namespaces selector empty", srv(func(s *kamalv1.Server) {
			s.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromSelector, Selector: &metav1.LabelSelector{}}
		}), []string{"allowedNamespaces.selector is empty and would match every namespace: use from: All"}},
		{"allowed namespaces from unknown", srv(func(s *kamalv1.Server) { s.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{From: "Others"} }),
			[]string{"spec.allowedNamespaces.from", `supported values: "Same", "All", "Selector"`}},
		{"proxy ports equal", srv(func(s *kamalv1.Server) { s.Spec.Proxy.HTTPPort = 8080; s.Spec.Proxy.HTTPSPort = 8080 }), []string{"proxy httpPort and httpsPort must differ"}},
		{"keepalive too short", srv(func(s *kamalv1.Server) { s.Spec.KeepAliveInterval = dur("500ms") }), []string{"keepAliveInterval must be at least 1s"}},
		{"relative docker socket", srv(func(s *kamalv1.Server) { s.Spec.Docker.SocketPath = "run/docker.sock" }), []string{"spec.docker.socketPath", "should match"}},
		{"user with capitals", srv(func(s *kamalv1.Server) { s.Spec.User = "Root" }), []string{"spec.user", "should match"}},
		{"keepalive too long", srv(func(s *kamalv1.Server) { s.Spec.KeepAliveInterval = dur("11m") }), []string{"keepAliveInterval must be at most 10m"}},
		{"ssh key secret without name", srv(func(s *kamalv1.Server) { s.Spec.SSHKeySecretRef = corev1.LocalObjectReference{} }), []string{"sshKeySecretRef.name must not be empty"}},
		{"jump host key secret without name", srv(func(s *kamalv1.Server) {
			j := *jump
			j.SSHKeySecretRef = &corev1.LocalObjectReference{}
			s.Spec.JumpHost = &j
		}), []string{"jumpHost.sshKeySecretRef.name must not be empty"}},
		{"jump server name empty", asJSON("Server", validServer(ns), func(m map[string]any) {
			m["spec"].(map[string]any)["jumpHost"] = map[string]any{"serverName": ""}
		}), []string{"spec.jumpHost.serverName", "at least 1 chars long"}},
		{"jump server name not a Server name", srv(func(s *kamalv1.Server) { s.Spec.JumpHost = &kamalv1.JumpHost{ServerName: "Bastion_1"} }), []string{"spec.jumpHost.serverName", "should match"}},
		{"jump host user too long", srv(func(s *kamalv1.Server) {
			j := *jump
			j.User = strings.Repeat("u", 33)
			s.Spec.JumpHost = &j
		}), []string{"spec.jumpHost.user", "Too long"}},
		{"proxy image with capitals", srv(func(s *kamalv1.Server) { s.Spec.Proxy.Image = "registry.example.com/Kamal-Proxy:v1" }), []string{"image repository must be lowercase"}},
		{"proxy image empty path component", srv(func(s *kamalv1.Server) { s.Spec.Proxy.Image = "registry.example.com//kamal-proxy:v1" }), []string{"image must be a reference"}},
		{"proxy image tag too long", srv(func(s *kamalv1.Server) { s.Spec.Proxy.Image = "kamal-proxy:" + strings.Repeat("t", 129) }), []string{"image tag must be at most 128 characters"}},

		// Deployment
		{"image without tag", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "registry.example.com:5000/team/app" }), []string{"image must name a tag or a digest"}},
		{"image tag latest", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "team/app:latest" }), []string{"image tag latest names no version"}},
		{"image not a reference", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "team/App Name:v1" }), []string{"spec.image", "should match"}},
		{"image tag LATEST", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "team/app:LATEST" }), []string{"image tag latest names no version"}},
		{"image tag Latest with a registry port", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "registry.example.com:5000/team/app:Latest" }), []string{"image tag latest names no version"}},
		{"image repository with capitals", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "registry.example.com/Team/app:v1" }), []string{"image repository must be lowercase"}},
		{"image first component with capitals", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "Team/app:v1" }), []string{"image repository must be lowercase"}},
		{"image digest with capitals", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "team/app" + strings.ToUpper(digest) }), []string{"image repository must be lowercase"}},
		{"image tag too long", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "team/app:" + strings.Repeat("a", 129) }), []string{"image tag must be at most 128 characters"}},
		{"image name too long", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "team/" + strings.Repeat("a", 251) + ":v1" }), []string{"image name (registry and repository, without the tag) must be at most 255 characters"}},
		{"image empty path component", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "registry.example.com//app:v1" }), []string{"image must be a reference"}},
		{"image trailing slash", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "team/app/:v1" }), []string{"image must be a reference"}},
		{"image leading slash", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "/team/app:v1" }), []string{"image must be a reference"}},
		{"image separators in a row", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "team/a.-b:v1" }), []string{"image must be a reference"}},
		{"image tag starting with a dot", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "team/app:.v1" }), []string{"image must be a reference"}},
		{"image digest too short", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "team/app@sha256:0123" }), []string{"image must be a reference"}},
		{"no roles", dep(func(d *kamalv1.Deployment) { d.Spec.Roles = map[string]kamalv1.Role{} }), []string{"spec.roles", "should have at least 1 properties"}},
		{"role name not a DNS label", dep(func(d *kamalv1.Deployment) {
			d.Spec.Roles["Web_1"] = d.Spec.Roles["web"]
		}), []string{"role names must be DNS labels"}},
		{"primary role missing", dep(func(d *kamalv1.Deployment) { d.Spec.PrimaryRole = "api" }), []string{"primaryRole must name one of the roles"}},
		{"release without a command", dep(func(d *kamalv1.Deployment) { d.Spec.Rollout.Release = &kamalv1.ReleaseCommand{} }), []string{"spec.rollout.release.cmd"}},
		{"release role not in the spec", dep(func(d *kamalv1.Deployment) {
			d.Spec.Rollout.Release = &kamalv1.ReleaseCommand{Cmd: []string{"migrate"}, Role: "jobs"}
		}), []string{"rollout.release.role must name one of the roles"}},
		{"release timeout zero", dep(func(d *kamalv1.Deployment) {
			d.Spec.Rollout.Release = &kamalv1.ReleaseCommand{Cmd: []string{"migrate"}, Timeout: &metav1.Duration{}}
		}), []string{"release timeout must be positive"}},
		{"role servers by names and selector", dep(func(d *kamalv1.Deployment) {
			web(d, func(r *kamalv1.Role) {
				r.Servers.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}
			})
		}), []string{"set exactly one of servers.names or servers.selector"}},
		{"role servers empty", dep(func(d *kamalv1.Deployment) { web(d, func(r *kamalv1.Role) { r.Servers = kamalv1.ServerSelector{} }) }), []string{"set exactly one of servers.names or servers.selector"}},
		{"ssl without hosts", dep(func(d *kamalv1.Deployment) { d.Spec.Proxy = &kamalv1.Proxy{SSL: ptr.To(true)} }), []string{"proxy.ssl needs proxy.hosts"}},
		{"role ssl without any hosts", dep(func(d *kamalv1.Deployment) {
			web(d, func(r *kamalv1.Role) { r.Proxy = &kamalv1.Proxy{SSL: ptr.To(true)} })
		}), []string{"proxy.ssl needs proxy.hosts"}},
		{"wildcard host with ssl and no certificate Secret", dep(func(d *kamalv1.Deployment) {
			d.Spec.Proxy = &kamalv1.Proxy{SSL: ptr.To(true), Hosts: []string{"example.com", "*.example.com"}}
		}), []string{"wildcard hosts with ssl need sslCertificateSecretRef"}},
		{"role wildcard host with ssl and no certificate Secret", dep(func(d *kamalv1.Deployment) {
			web(d, func(r *kamalv1.Role) { r.Proxy = &kamalv1.Proxy{SSL: ptr.To(true), Hosts: []string{"*.example.com"}} })
		}), []string{"wildcard hosts with ssl need sslCertificateSecretRef"}},
		{"maxParallel zero", dep(func(d *kamalv1.Deployment) { d.Spec.Rollout.MaxParallel = ptr.To(intstr.FromInt32(0)) }), []string{"maxParallel must be a positive number or a percentage"}},
		{"maxParallel over 100%", dep(func(d *kamalv1.Deployment) { d.Spec.Rollout.MaxParallel = ptr.To(intstr.FromString("150%")) }), []string{"maxParallel must be a positive number or a percentage"}},
		{"deployTimeout zero", dep(func(d *kamalv1.Deployment) { d.Spec.Rollout.DeployTimeout = dur("0s") }), []string{"deployTimeout must be positive"}},
		{"drainTimeout negative", dep(func(d *kamalv1.Deployment) { d.Spec.Rollout.DrainTimeout = dur("-1s") }), []string{"drainTimeout must not be negative"}},
		{"env name invalid", dep(func(d *kamalv1.Deployment) { d.Spec.Env = []kamalv1.EnvVar{{Name: "1=BAD", Value: "x"}} }), []string{"spec.env[0].name", "should match"}},
		{"env value and valueFrom", dep(func(d *kamalv1.Deployment) {
			d.Spec.Env = []kamalv1.EnvVar{{Name: "A", Value: "x", ValueFrom: &kamalv1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}}}
		}), []string{"set value or valueFrom, not both"}},
		{"env from two sources", dep(func(d *kamalv1.Deployment) {
			d.Spec.Env = []kamalv1.EnvVar{{Name: "A", ValueFrom: &kamalv1.EnvVarSource{
				SecretKeyRef:    &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"},
				ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}, Key: "k"},
			}}}
		}), []string{"set exactly one of secretKeyRef or configMapKeyRef"}},
		{"reserved label", dep(func(d *kamalv1.Deployment) { d.Spec.Labels = map[string]string{"kamal.operator.dev/role": "x"} }), []string{"reserved for the controller"}},
		{"retainContainers zero", dep(func(d *kamalv1.Deployment) { d.Spec.RetainContainers = -1 }), []string{"spec.retainContainers", "greater than or equal to 1"}},
		{"name with dots", dep(func(d *kamalv1.Deployment) { d.Name = "my.app" }), []string{"Deployment names must be DNS labels"}},
		{"appPort zero", dep(func(d *kamalv1.Deployment) { d.Spec.Proxy = &kamalv1.Proxy{AppPort: ptr.To[int32](0)} }), []string{"spec.proxy.appPort", "greater than or equal to 1"}},
		{"healthcheck path relative", dep(func(d *kamalv1.Deployment) {
			d.Spec.Proxy = &kamalv1.Proxy{Healthcheck: &kamalv1.ProxyHealthcheck{Path: "up"}}
		}), []string{"spec.proxy.healthcheck.path", "should match"}},
		{"stripPathPrefix alone", dep(func(d *kamalv1.Deployment) { d.Spec.Proxy = &kamalv1.Proxy{StripPathPrefix: ptr.To(false)} }), []string{"stripPathPrefix needs pathPrefixes"}},
		{"volume target relative", dep(func(d *kamalv1.Deployment) { d.Spec.Volumes = []string{"/data:storage"} }), []string{"spec.volumes[0]", "should match"}},
		{"restart retries without on-failure", dep(func(d *kamalv1.Deployment) {
			d.Spec.Options = &kamalv1.ContainerOptions{RestartPolicy: kamalv1.RestartAlways, RestartMaxRetries: ptr.To[int32](3)}
		}), []string{"restartMaxRetries needs restartPolicy on-failure"}},
		{"ulimit soft above hard", dep(func(d *kamalv1.Deployment) {
			d.Spec.Options = &kamalv1.ContainerOptions{Ulimits: []kamalv1.Ulimit{{Name: "nofile", Soft: 2048, Hard: 1024}}}
		}), []string{"ulimit soft must not exceed hard"}},
		{"proxy host with underscore", dep(func(d *kamalv1.Deployment) { d.Spec.Proxy = &kamalv1.Proxy{Hosts: []string{"my_app.example.com"}} }), []string{"spec.proxy.hosts[0]", "should match"}},

		// URL paths: escapes, Caddy placeholders, whitespace and control characters.
		{"healthcheck path bad escape", dep(func(d *kamalv1.Deployment) { health(d).Path = "/%zz" }), []string{"spec.proxy.healthcheck.path", "healthcheck path has an invalid escape"}},
		{"healthcheck path cut escape", dep(func(d *kamalv1.Deployment) { health(d).Path = "/a%2" }), []string{"healthcheck path has an invalid escape"}},
		{"healthcheck path lone percent", dep(func(d *kamalv1.Deployment) { health(d).Path = "/up%" }), []string{"healthcheck path has an invalid escape"}},
		{"healthcheck path placeholder", dep(func(d *kamalv1.Deployment) { health(d).Path = "/{http.request.host}" }), []string{"healthcheck path must not contain '{' or '}'"}},
		{"healthcheck path closing brace", dep(func(d *kamalv1.Deployment) { health(d).Path = "/up}" }), []string{"healthcheck path must not contain '{' or '}'"}},
		{"healthcheck path space", dep(func(d *kamalv1.Deployment) { health(d).Path = "/up now" }), []string{"healthcheck path must not contain whitespace or control characters"}},
		{"healthcheck path tab", dep(func(d *kamalv1.Deployment) { health(d).Path = "/up\t" }), []string{"healthcheck path must not contain whitespace or control characters"}},
		{"healthcheck path DEL", dep(func(d *kamalv1.Deployment) { health(d).Path = "/up\x7f" }), []string{"healthcheck path must not contain whitespace or control characters"}},
		{"healthcheck path no-break space", dep(func(d *kamalv1.Deployment) { health(d).Path = "/up\u00a0" }), []string{"healthcheck path must not contain whitespace or control characters"}},
		{"healthcheck path zero-width space", dep(func(d *kamalv1.Deployment) { health(d).Path = "/up\u200b" }), []string{"healthcheck path must not contain whitespace or control characters"}},
		{"healthcheck path too long", dep(func(d *kamalv1.Deployment) { health(d).Path = "/" + strings.Repeat("a", 1024) }), []string{"spec.proxy.healthcheck.path", "Too long"}},
		{"path prefix bad escape", dep(func(d *kamalv1.Deployment) { proxy(d).PathPrefixes = []string{"/api", "/%zz"} }), []string{"spec.proxy.pathPrefixes[1]", "path prefix has an invalid escape"}},
		{"path prefix cut escape", dep(func(d *kamalv1.Deployment) { proxy(d).PathPrefixes = []string{"/a%2"} }), []string{"path prefix has an invalid escape"}},
		{"path prefix placeholder", dep(func(d *kamalv1.Deployment) { proxy(d).PathPrefixes = []string{"/{http.request.uri}"} }), []string{"path prefix must not contain '{' or '}'"}},
		{"path prefix space", dep(func(d *kamalv1.Deployment) { proxy(d).PathPrefixes = []string{"/a b"} }), []string{"path prefix must not contain whitespace or control characters"}},
		{"path prefix newline", dep(func(d *kamalv1.Deployment) { proxy(d).PathPrefixes = []string{"/a\nb"} }), []string{"path prefix must not contain whitespace or control characters"}},
		{"path prefix glob", dep(func(d *kamalv1.Deployment) { proxy(d).PathPrefixes = []string{"/api/*"} }), []string{"spec.proxy.pathPrefixes[0]", "should match"}},
		{"role path prefix bad escape", dep(func(d *kamalv1.Deployment) {
			web(d, func(r *kamalv1.Role) { r.Proxy = &kamalv1.Proxy{PathPrefixes: []string{"/x%g1"}} })
		}), []string{"spec.roles[web].proxy.pathPrefixes[0]", "path prefix has an invalid escape"}},

		// Durations: upper bounds, and the health check's lower bounds.
		{"drainTimeout too long", dep(func(d *kamalv1.Deployment) { d.Spec.Rollout.DrainTimeout = dur("61m") }), []string{"drainTimeout must be at most 1h"}},
		{"stopTimeout too long", dep(func(d *kamalv1.Deployment) { d.Spec.Rollout.StopTimeout = dur("10m1s") }), []string{"stopTimeout must be at most 10m"}},
		{"deployTimeout too long", dep(func(d *kamalv1.Deployment) { d.Spec.Rollout.DeployTimeout = dur("2h") }), []string{"deployTimeout must be at most 1h"}},
		{"readinessDelay too long", dep(func(d *kamalv1.Deployment) { d.Spec.Rollout.ReadinessDelay = dur("1h0m1s") }), []string{"readinessDelay must be at most 1h"}},
		{"wait too long", dep(func(d *kamalv1.Deployment) { d.Spec.Rollout.Wait = dur("90m") }), []string{"wait must be at most 1h"}},
		{"healthcheck interval too short", dep(func(d *kamalv1.Deployment) { health(d).Interval = dur("50ms") }), []string{"healthcheck interval must be at least 100ms"}},
		{"healthcheck interval zero", dep(func(d *kamalv1.Deployment) { health(d).Interval = dur("0s") }), []string{"healthcheck interval must be at least 100ms"}},
		{"healthcheck interval too long", dep(func(d *kamalv1.Deployment) { health(d).Interval = dur("61s") }), []string{"healthcheck interval must be at most 1m"}},
		{"healthcheck timeout too short", dep(func(d *kamalv1.Deployment) { health(d).Timeout = dur("99ms") }), []string{"healthcheck timeout must be at least 100ms"}},
		{"healthcheck timeout too long", dep(func(d *kamalv1.Deployment) { health(d).Timeout = dur("2m") }), []string{"healthcheck timeout must be at most 1m"}},
		{"responseTimeout too long", dep(func(d *kamalv1.Deployment) { proxy(d).ResponseTimeout = dur("1h1m") }), []string{"responseTimeout must be at most 1h"}},

		// Selectors and references.
		{"role selector empty", dep(func(d *kamalv1.Deployment) {
			web(d, func(r *kamalv1.Role) { r.Servers = kamalv1.ServerSelector{Selector: &metav1.LabelSelector{}} })
		}), []string{"servers.selector is empty and would match every Server of the namespace: use servers.names"}},
		{"role selector with empty matchLabels", asJSON("Deployment", validDeployment(ns), func(m map[string]any) {
			role := m["spec"].(map[string]any)["roles"].(map[string]any)["web"].(map[string]any)
			role["servers"] = map[string]any{"selector": map[string]any{"matchLabels": map[string]any{}, "matchExpressions": []any{}}}
		}), []string{"servers.selector is empty and would match every Server"}},
		{"pull secret without name", dep(func(d *kamalv1.Deployment) { d.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{}} }), []string{"imagePullSecrets[].name must not be empty"}},
		{"dependsOn without name", dep(func(d *kamalv1.Deployment) { d.Spec.DependsOn = []corev1.LocalObjectReference{{Name: "db"}, {}} }), []string{"dependsOn[].name must not be empty"}},
		{"env secret without name", dep(func(d *kamalv1.Deployment) {
			d.Spec.Env = []kamalv1.EnvVar{{Name: "A", ValueFrom: &kamalv1.EnvVarSource{SecretKeyRef: secretKey("", "k")}}}
		}), []string{"secretKeyRef.name must not be empty"}},
		{"env secret without key", dep(func(d *kamalv1.Deployment) {
			d.Spec.Env = []kamalv1.EnvVar{{Name: "A", ValueFrom: &kamalv1.EnvVarSource{SecretKeyRef: secretKey("s", "")}}}
		}), []string{"secretKeyRef.key must not be empty"}},
		{"role env config map without name", dep(func(d *kamalv1.Deployment) {
			web(d, func(r *kamalv1.Role) {
				r.Env = []kamalv1.EnvVar{{Name: "A", ValueFrom: &kamalv1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{Key: "k"}}}}
			})
		}), []string{"configMapKeyRef.name must not be empty"}},
		{"envFrom secret without name", dep(func(d *kamalv1.Deployment) {
			d.Spec.EnvFrom = []kamalv1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{}}}
		}), []string{"secretRef.name must not be empty"}},
		{"envFrom config map without name", dep(func(d *kamalv1.Deployment) {
			d.Spec.EnvFrom = []kamalv1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{}}}
		}), []string{"configMapRef.name must not be empty"}},
		{"certificate secret without name", dep(func(d *kamalv1.Deployment) {
			d.Spec.Proxy = &kamalv1.Proxy{Hosts: []string{"app.example.com"}, SSL: ptr.To(true), SSLCertificateSecretRef: &corev1.LocalObjectReference{}}
		}), []string{"sslCertificateSecretRef.name must not be empty"}},

		// Accessory
		{"accessory host port out of range", acc(func(a *kamalv1.Accessory) { a.Spec.Port = ptr.To(intstr.FromString("127.0.0.1:99999:5432")) }), []string{"with ports from 1 to 65535"}},
		{"accessory port not a spec", acc(func(a *kamalv1.Accessory) { a.Spec.Port = ptr.To(intstr.FromString("postgres")) }), []string{"port must be a number from 1 to 65535 or"}},
		{"accessory port number zero", acc(func(a *kamalv1.Accessory) { a.Spec.Port = ptr.To(intstr.FromInt32(0)) }), []string{"port must be a number from 1 to 65535 or"}},
		{"file from two sources", acc(func(a *kamalv1.Accessory) {
			a.Spec.Files = []kamalv1.AccessoryFile{{Target: "/etc/x.conf",
				ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}, Key: "k"},
				SecretKeyRef:    &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}}
		}), []string{"set exactly one of configMapKeyRef or secretKeyRef"}},
		{"secret file world readable", acc(func(a *kamalv1.Accessory) {
			a.Spec.Files = []kamalv1.AccessoryFile{{Target: "/etc/secret.key", Mode: ptr.To[int32](0o644),
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}}
		}), []string{"a file from a Secret must not be readable by others"}},
		{"file target relative", acc(func(a *kamalv1.Accessory) {
			a.Spec.Files = []kamalv1.AccessoryFile{{Target: "etc/x.conf", ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}, Key: "k"}}}
		}), []string{"spec.files[0].target", "should match"}},
		{"directory climbing out", acc(func(a *kamalv1.Accessory) { a.Spec.Directories = []string{"../../etc:/data"} }), []string{"must not climb out of the accessory's folder"}},
		{"directories nesting", acc(func(a *kamalv1.Accessory) { a.Spec.Directories = []string{"data:/d", "data/logs:/l"} }), []string{"directories must not nest (e.g. data and data/logs)"}},
		{"host directories nesting", acc(func(a *kamalv1.Accessory) { a.Spec.Directories = []string{"/srv/app/cache:/c:ro", "/srv/app:/a"} }), []string{"directories must not nest"}},
		{"unknown deletion policy", acc(func(a *kamalv1.Accessory) { a.Spec.DeletionPolicy = "Purge" }), []string{"spec.deletionPolicy", `supported values: "Retain", "Delete"`}},
		{"accessory name not a DNS label", acc(func(a *kamalv1.Accessory) { a.Name = "db.primary" }), []string{"use a DNS label or set spec.containerName"}},
		{"container name invalid", acc(func(a *kamalv1.Accessory) { a.Spec.ContainerName = "DB_1" }), []string{"spec.containerName", "should match"}},
		{"accessory selector and names", acc(func(a *kamalv1.Accessory) {
			a.Spec.Servers.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "db"}}
		}), []string{"set exactly one of servers.names or servers.selector"}},
		{"servers namespace not a namespace name", dep(func(d *kamalv1.Deployment) {
			web(d, func(r *kamalv1.Role) { r.Servers.Namespace = "Platform_1" })
		}), []string{"spec.roles.web.servers.namespace", "should match"}},
		{"accessory servers namespace too long", acc(func(a *kamalv1.Accessory) { a.Spec.Servers.Namespace = strings.Repeat("p", 64) }),
			[]string{"spec.servers.namespace", "may not be more than 63"}},
		{"accessory selector empty", acc(func(a *kamalv1.Accessory) { a.Spec.Servers = kamalv1.ServerSelector{Selector: &metav1.LabelSelector{}} }), []string{"servers.selector is empty and would match every Server"}},
		{"accessory image without tag", acc(func(a *kamalv1.Accessory) { a.Spec.Image = "postgres" }), []string{"image must name a tag or a digest (e.g. postgres:15)"}},
		{"accessory image with registry port but no tag", acc(func(a *kamalv1.Accessory) { a.Spec.Image = "localhost:5000/postgres" }), []string{"image must name a tag or a digest"}},
		{"accessory image with capitals", acc(func(a *kamalv1.Accessory) { a.Spec.Image = "Postgres:15" }), []string{"image repository must be lowercase"}},
		{"accessory image tag too long", acc(func(a *kamalv1.Accessory) { a.Spec.Image = "postgres:" + strings.Repeat("1", 129) }), []string{"image tag must be at most 128 characters"}},
		{"accessory image empty path component", acc(func(a *kamalv1.Accessory) { a.Spec.Image = "library//postgres:15" }), []string{"image must be a reference"}},
		{"accessory pull secret without name", acc(func(a *kamalv1.Accessory) { a.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{}} }), []string{"imagePullSecrets[].name must not be empty"}},
		{"accessory file secret without name", acc(func(a *kamalv1.Accessory) {
			a.Spec.Files = []kamalv1.AccessoryFile{{Target: "/etc/secret.key", SecretKeyRef: secretKey("", "k")}}
		}), []string{"secretKeyRef.name must not be empty"}},
		{"accessory file config map without key", acc(func(a *kamalv1.Accessory) {
			a.Spec.Files = []kamalv1.AccessoryFile{{Target: "/etc/x.conf", ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}}
		}), []string{"configMapKeyRef.key must not be empty"}},
		// The controller's own container names on every host.
		{"accessory named kamal-proxy", acc(func(a *kamalv1.Accessory) { a.Name = "kamal-proxy" }), []string{"set spec.containerName to another name", "kamal-proxy and kamal-proxy-… are the proxy's containers"}},
		{"accessory named as the proxy being replaced", acc(func(a *kamalv1.Accessory) { a.Name = "kamal-proxy-previous" }), []string{"set spec.containerName to another name"}},
		{"accessory named as a setup container", acc(func(a *kamalv1.Accessory) { a.Name = "kamal-setup-db-1a2b3c4d" }), []string{"set spec.containerName to another name"}},
		{"container name kamal-proxy", acc(func(a *kamalv1.Accessory) { a.Spec.ContainerName = "kamal-proxy" }), []string{"spec.containerName", "containerName is reserved"}},
		{"container name of the failed proxy", acc(func(a *kamalv1.Accessory) { a.Spec.ContainerName = "kamal-proxy-failed" }), []string{"containerName is reserved"}},
		{"container name of a setup container", acc(func(a *kamalv1.Accessory) { a.Spec.ContainerName = "kamal-setup-pg-0f1e2d3c" }), []string{"containerName is reserved"}},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := k8s.Create(context.Background(), tc.obj, client.DryRunAll)
			if err == nil {
				t.Fatalf("accepted, want refused with %q", tc.want)
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	// The valid bases themselves are accepted, so each refusal above is the mutation's doing.
	for _, obj := range []client.Object{validServer(ns), validDeployment(ns), validAccessory(ns)} {
		if err := k8s.Create(context.Background(), obj, client.DryRunAll); err != nil {
			t.Errorf("valid %T refused: %v", obj, err)
		}
	}
}

// Values at the edges of the rules above are accepted, so the rules refuse no more than they say.
func TestEdgeValuesAreAccepted(t *testing.T) {
	ns := newNamespace(t)
	srv := func(mut func(*kamalv1.Server)) client.Object { s := validServer(ns); mut(s); return s }
	dep := func(mut func(*kamalv1.Deployment)) client.Object { d := validDeployment(ns); mut(d); return d }
	acc := func(mut func(*kamalv1.Accessory)) client.Object { a := validAccessory(ns); mut(a); return a }
	image := func(ref string) client.Object { return dep(func(d *kamalv1.Deployment) { d.Spec.Image = ref }) }
	health := func(h kamalv1.ProxyHealthcheck) client.Object {
		return dep(func(d *kamalv1.Deployment) { d.Spec.Proxy = &kamalv1.Proxy{Healthcheck: &h} })
	}
	prefixes := func(p ...string) client.Object {
		return dep(func(d *kamalv1.Deployment) { d.Spec.Proxy = &kamalv1.Proxy{PathPrefixes: p} })
	}

	cases := []struct {
		name string
		obj  client.Object
	}{
		{"image with capitals in the registry host and the tag", image("Registry.Example.com:5000/team/app:V1")},
		{"image on an IP registry", image("10.231.0.1:5000/sampleapp:v1")},
		{"image on localhost", image("localhost/app:v1")},
		{"release of the primary role", dep(func(d *kamalv1.Deployment) {
			d.Spec.Rollout.Release = &kamalv1.ReleaseCommand{Cmd: []string{"bin/rails", "db:migrate"}}
		})},
		{"release of a named role", dep(func(d *kamalv1.Deployment) {
			d.Spec.Rollout.Release = &kamalv1.ReleaseCommand{Cmd: []string{"migrate"}, Role: "web", Timeout: &metav1.Duration{Duration: time.Hour}}
		})},
		{"image on Docker Hub", image("docker.io/shuirong/dokuya:2f3c9a1")},
		{"image with separators", image("team/my__app.v2-beta--x/sub_dir:2024.01-rc_1")},
		{"image by digest", image("team/app" + digest)},
		{"image by tag and digest", image("team/app:v1" + digest)},
		{"image latest pinned by digest", image("team/app:latest" + digest)},
		{"image tag of 128 characters", image("team/app:" + strings.Repeat("a", 128))},
		{"image name of 255 characters", image("team/" + strings.Repeat("a", 250) + ":v1")},
		{"image tag containing latest", image("team/app:latest-2024")},
		{"accessory image latest", acc(func(a *kamalv1.Accessory) { a.Spec.Image = "redis:latest" })},
		{"accessory image by digest", acc(func(a *kamalv1.Accessory) { a.Spec.Image = "postgres" + digest })},
		{"directories side by side", acc(func(a *kamalv1.Accessory) {
			a.Spec.Directories = []string{"data:/d", "database:/db", "data:/again", "logs:/l:ro", "/srv/data:/s"}
		})},
		{"32 directories of 512 characters", acc(func(a *kamalv1.Accessory) {
			for i := range 32 {
				a.Spec.Directories = append(a.Spec.Directories, fmt.Sprintf("%02d%s:/d", i, strings.Repeat("x", 505)))
			}
		})},
		{"wildcard host with ssl and a certificate Secret", dep(func(d *kamalv1.Deployment) {
			d.Spec.Proxy = &kamalv1.Proxy{SSL: ptr.To(true), Hosts: []string{"*.example.com"}, SSLCertificateSecretRef: &corev1.LocalObjectReference{Name: "wild-tls"}}
		})},
		{"wildcard host without ssl", dep(func(d *kamalv1.Deployment) { d.Spec.Proxy = &kamalv1.Proxy{Hosts: []string{"*.example.com"}} })},
		{"proxy image without tag", srv(func(s *kamalv1.Server) { s.Spec.Proxy.Image = "registry.example.com:5000/kamal-proxy" })},
		{"proxy image with tag", srv(func(s *kamalv1.Server) { s.Spec.Proxy.Image = "kamal-proxy:caddy-2.11.9" })},

		{"healthcheck path with an escape", health(kamalv1.ProxyHealthcheck{Path: "/a%2Fb"})},
		{"healthcheck path with a query", health(kamalv1.ProxyHealthcheck{Path: "/up?full=1&x=%20"})},
		{"healthcheck path of 1024 characters", health(kamalv1.ProxyHealthcheck{Path: "/" + strings.Repeat("a", 1023)})},
		{"path prefixes with escapes and non-ASCII letters", prefixes("/a%2Fb", "/caf%C3%A9", "/café", "/api/v1/")},

		{"durations at their upper bounds", dep(func(d *kamalv1.Deployment) {
			d.Spec.Rollout = kamalv1.Rollout{DrainTimeout: dur("1h"), StopTimeout: dur("10m"), DeployTimeout: dur("1h"), ReadinessDelay: dur("1h"), Wait: dur("1h")}
			d.Spec.Proxy = &kamalv1.Proxy{ResponseTimeout: dur("1h"), Healthcheck: &kamalv1.ProxyHealthcheck{Interval: dur("1m"), Timeout: dur("1m")}}
		})},
		{"durations at their lower bounds", dep(func(d *kamalv1.Deployment) {
			d.Spec.Rollout = kamalv1.Rollout{DrainTimeout: dur("0s"), StopTimeout: dur("0s"), DeployTimeout: dur("1ms"), ReadinessDelay: dur("0s"), Wait: dur("0s")}
			d.Spec.Proxy = &kamalv1.Proxy{ResponseTimeout: dur("1ms"), Healthcheck: &kamalv1.ProxyHealthcheck{Interval: dur("100ms"), Timeout: dur("100ms")}}
		})},
		{"keepalive at 1s", srv(func(s *kamalv1.Server) { s.Spec.KeepAliveInterval = dur("1s") })},
		{"keepalive at 10m", srv(func(s *kamalv1.Server) { s.Spec.KeepAliveInterval = dur("10m") })},

		{"selector by expressions only", dep(func(d *kamalv1.Deployment) {
			d.Spec.Roles["web"] = kamalv1.Role{Servers: kamalv1.ServerSelector{Selector: &metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpExists}}}}}
		})},
		{"references with names", dep(func(d *kamalv1.Deployment) {
			d.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "registry"}}
			d.Spec.DependsOn = []corev1.LocalObjectReference{{Name: "db"}}
			d.Spec.Env = []kamalv1.EnvVar{{Name: "A", ValueFrom: &kamalv1.EnvVarSource{SecretKeyRef: secretKey("s", "k")}}}
			d.Spec.EnvFrom = []kamalv1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}}}
		})},
		{"jump host user of 32 characters", srv(func(s *kamalv1.Server) {
			s.Spec.JumpHost = &kamalv1.JumpHost{Address: "10.0.0.1", KnownHosts: []string{hostKey}, User: strings.Repeat("u", 32),
				SSHKeySecretRef: &corev1.LocalObjectReference{Name: "jump-key"}}
		})},
		{"allowed namespaces from All", srv(func(s *kamalv1.Server) {
			s.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromAll}
		})},
		{"allowed namespaces by a selector", srv(func(s *kamalv1.Server) {
			s.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromSelector, Selector: &metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tenant", Operator: metav1.LabelSelectorOpExists}}}}
		})},
		{"servers of another namespace by name", dep(func(d *kamalv1.Deployment) {
			d.Spec.Roles["web"] = kamalv1.Role{Servers: kamalv1.ServerSelector{Namespace: "platform", Names: []string{"web-1"}}}
		})},
		{"accessory on Servers of another namespace by label", acc(func(a *kamalv1.Accessory) {
			a.Spec.Servers = kamalv1.ServerSelector{Namespace: strings.Repeat("p", 63), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "db"}}}
		})},
		{"jump server by name", srv(func(s *kamalv1.Server) { s.Spec.JumpHost = &kamalv1.JumpHost{ServerName: "bastion.dc-1"} })},

		// Near the reserved names, not them.
		{"accessory named kamal", acc(func(a *kamalv1.Accessory) { a.Name = "kamal" })},
		{"accessory named kamal-db", acc(func(a *kamalv1.Accessory) { a.Name = "kamal-db" })},
		{"accessory named kamal-proxyish", acc(func(a *kamalv1.Accessory) { a.Name = "kamal-proxyish" })},
		{"accessory named kamal-proxy with another container name", acc(func(a *kamalv1.Accessory) { a.Name = "kamal-proxy"; a.Spec.ContainerName = "edge-cache" })},
		{"container name my-kamal-proxy", acc(func(a *kamalv1.Accessory) { a.Spec.ContainerName = "my-kamal-proxy" })},
		{"container name kamal-setup", acc(func(a *kamalv1.Accessory) { a.Spec.ContainerName = "kamal-setup" })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := k8s.Create(context.Background(), tc.obj, client.DryRunAll); err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
}

// status.certificate is stored as the controller writes it.
func TestCertificateStatusIsStored(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	d := validDeployment(ns)
	if err := k8s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	notAfter := metav1.NewTime(time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second))
	// The suite's controller writes this object's status too: retry on its newer versions.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		d.Status.Certificate = &kamalv1.CertificateStatus{Names: []string{"a.example.com"}, NotAfter: &notAfter, RenewAt: &notAfter,
			SecretName: d.Name + "-kamal-tls", Failures: 2, LastFailure: &notAfter, NextOrderAt: &notAfter}
		return k8s.Status().Update(ctx, d)
	}); err != nil {
		t.Fatal(err)
	}
	var got kamalv1.Deployment
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), &got); err != nil {
		t.Fatal(err)
	}
	if c := got.Status.Certificate; c == nil || c.Failures != 2 || !c.NotAfter.Equal(&notAfter) || c.SecretName != d.Name+"-kamal-tls" || len(c.Names) != 1 {
		t.Errorf("status.certificate = %+v", got.Status.Certificate)
	}
}
