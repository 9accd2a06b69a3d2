package envtest

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOuHlvosK/zgfTl3qHCDzrACo1uGYFrzR3z8sPm53zg/"

func validServer(ns string) *kamalv1.Server {
	return &kamalv1.Server{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-1", Labels: map[string]string{"tier": "web"}},
		Spec: kamalv1.ServerSpec{
			// Loopback port 1: the controller's dial is refused at once and reaches no one.
			Address:         "127.0.0.1",
			Port:            1,
			SSHKeySecretRef: corev1.LocalObjectReference{Name: "deploy-key"},
			KnownHosts:      []string{hostKey},
		},
	}
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
		{"proxy ports equal", srv(func(s *kamalv1.Server) { s.Spec.Proxy.HTTPPort = 8080; s.Spec.Proxy.HTTPSPort = 8080 }), []string{"proxy httpPort and httpsPort must differ"}},
		{"keepalive too short", srv(func(s *kamalv1.Server) { s.Spec.KeepAliveInterval = dur("500ms") }), []string{"keepAliveInterval must be at least 1s"}},
		{"relative docker socket", srv(func(s *kamalv1.Server) { s.Spec.Docker.SocketPath = "run/docker.sock" }), []string{"spec.docker.socketPath", "should match"}},
		{"user with capitals", srv(func(s *kamalv1.Server) { s.Spec.User = "Root" }), []string{"spec.user", "should match"}},

		// Deployment
		{"image without tag", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "registry.example.com:5000/team/app" }), []string{"image must name a tag or a digest"}},
		{"image tag latest", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "team/app:latest" }), []string{"image tag latest names no version"}},
		{"image not a reference", dep(func(d *kamalv1.Deployment) { d.Spec.Image = "team/App Name:v1" }), []string{"spec.image", "should match"}},
		{"no roles", dep(func(d *kamalv1.Deployment) { d.Spec.Roles = map[string]kamalv1.Role{} }), []string{"spec.roles", "should have at least 1 properties"}},
		{"role name not a DNS label", dep(func(d *kamalv1.Deployment) {
			d.Spec.Roles["Web_1"] = d.Spec.Roles["web"]
		}), []string{"role names must be DNS labels"}},
		{"primary role missing", dep(func(d *kamalv1.Deployment) { d.Spec.PrimaryRole = "api" }), []string{"primaryRole must name one of the roles"}},
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
		{"unknown deletion policy", acc(func(a *kamalv1.Accessory) { a.Spec.DeletionPolicy = "Purge" }), []string{"spec.deletionPolicy", `supported values: "Retain", "Delete"`}},
		{"accessory name not a DNS label", acc(func(a *kamalv1.Accessory) { a.Name = "db.primary" }), []string{"use a DNS label or set spec.containerName"}},
		{"container name invalid", acc(func(a *kamalv1.Accessory) { a.Spec.ContainerName = "DB_1" }), []string{"spec.containerName", "should match"}},
		{"accessory selector and names", acc(func(a *kamalv1.Accessory) {
			a.Spec.Servers.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "db"}}
		}), []string{"set exactly one of servers.names or servers.selector"}},
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
