package controllers

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func inertDeploymentSpec(mut func(*kamalv1.DeploymentSpec)) *kamalv1.DeploymentSpec {
	s := &kamalv1.DeploymentSpec{
		Image:       "registry.example.com/app:v1",
		PrimaryRole: "web",
		Roles: map[string]kamalv1.Role{
			"web":  {Servers: kamalv1.ServerSelector{Names: []string{"web-1"}}},
			"jobs": {Servers: kamalv1.ServerSelector{Names: []string{"web-1"}}},
		},
		Proxy: &kamalv1.Proxy{Hosts: []string{"app.example.com"}, AppPort: ptr.To[int32](4000)},
	}
	mut(s)
	return s
}

func setRole(s *kamalv1.DeploymentSpec, name string, mut func(*kamalv1.Role)) {
	r := s.Roles[name]
	mut(&r)
	s.Roles[name] = r
}

func TestInertDeploymentFields(t *testing.T) {
	q := resource.MustParse
	cases := []struct {
		name string
		spec *kamalv1.DeploymentSpec
		want []string
	}{
		{"nil spec", nil, nil},
		{"nothing inert", inertDeploymentSpec(func(s *kamalv1.DeploymentSpec) {
			// Fields the controller acts on, and inert fields at values it honours anyway.
			s.Proxy.Buffering = &kamalv1.ProxyBuffering{Requests: ptr.To(true), MaxRequestBody: ptr.To(q("10Mi")), MaxResponseBody: ptr.To(q("0"))}
			s.Proxy.SSL = ptr.To(false)
			s.Proxy.SSLRedirect = ptr.To(false)
			s.Proxy.Logging = &kamalv1.ProxyLogging{}
			setRole(s, "jobs", func(r *kamalv1.Role) { r.Proxy = &kamalv1.Proxy{Enabled: ptr.To(false), SSL: ptr.To(false)} })
		}), nil},
		{"ssl with its certificate and redirect: acted on", inertDeploymentSpec(func(s *kamalv1.DeploymentSpec) {
			s.Proxy.SSL = ptr.To(true)
			s.Proxy.SSLRedirect = ptr.To(true)
			s.Proxy.SSLCertificateSecretRef = &corev1.LocalObjectReference{Name: "app-tls"}
		}), nil},
		{"logging with headers", inertDeploymentSpec(func(s *kamalv1.DeploymentSpec) {
			s.Proxy.Logging = &kamalv1.ProxyLogging{ResponseHeaders: []string{"X-Request-Id"}}
		}), []string{"spec.proxy.logging"}},
		{"maxResponseBody", inertDeploymentSpec(func(s *kamalv1.DeploymentSpec) {
			s.Proxy.Buffering = &kamalv1.ProxyBuffering{Responses: ptr.To(true), MaxResponseBody: ptr.To(q("5Mi"))}
		}), []string{"spec.proxy.buffering.maxResponseBody"}},
		{"assetPath", inertDeploymentSpec(func(s *kamalv1.DeploymentSpec) { s.AssetPath = "/app/public/assets" }), []string{"spec.assetPath"}},
		{"role fields", inertDeploymentSpec(func(s *kamalv1.DeploymentSpec) {
			setRole(s, "web", func(r *kamalv1.Role) {
				r.Proxy = &kamalv1.Proxy{SSLRedirect: ptr.To(true)}
				r.AssetPath = "/public"
			})
		}), []string{"spec.roles[web].assetPath"}},
		{"everything, sorted across spec and roles", inertDeploymentSpec(func(s *kamalv1.DeploymentSpec) {
			s.AssetPath = "/public"
			s.Proxy.SSL = ptr.To(true)
			s.Proxy.Logging = &kamalv1.ProxyLogging{RequestHeaders: []string{"Cookie"}}
			setRole(s, "web", func(r *kamalv1.Role) {
				r.Proxy = &kamalv1.Proxy{SSL: ptr.To(true), SSLCertificateSecretRef: &corev1.LocalObjectReference{Name: "web-tls"}}
			})
			setRole(s, "jobs", func(r *kamalv1.Role) {
				r.AssetPath = "/assets"
				r.Proxy = &kamalv1.Proxy{Buffering: &kamalv1.ProxyBuffering{MaxResponseBody: ptr.To(q("1Gi"))}}
			})
		}), []string{
			"spec.assetPath",
			"spec.proxy.logging",
			"spec.roles[jobs].assetPath",
			"spec.roles[jobs].proxy.buffering.maxResponseBody",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := inertDeploymentFields(tc.spec)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("inertDeploymentFields = %q, want %q", got, tc.want)
			}
		})
	}
}

// The order does not depend on Go's random map iteration over roles.
func TestInertDeploymentFieldsStableOrder(t *testing.T) {
	s := inertDeploymentSpec(func(s *kamalv1.DeploymentSpec) {})
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		s.Roles[name] = kamalv1.Role{Servers: kamalv1.ServerSelector{Names: []string{"web-1"}}, AssetPath: "/" + name}
	}
	first := inertDeploymentFields(s)
	if len(first) != 8 {
		t.Fatalf("got %q", first)
	}
	for i := 0; i < 50; i++ {
		if got := inertDeploymentFields(s); !reflect.DeepEqual(got, first) {
			t.Fatalf("order changed: %q, then %q", first, got)
		}
	}
}

func TestInertServerFields(t *testing.T) {
	cases := []struct {
		name      string
		bootstrap kamalv1.DockerBootstrap
		want      []string
	}{
		{"absent", "", nil},
		{"Never, the default", kamalv1.DockerBootstrapNever, nil},
		{"IfMissing", kamalv1.DockerBootstrapIfMissing, []string{"spec.docker.bootstrap"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := &kamalv1.ServerSpec{Address: "10.0.0.1", Docker: kamalv1.DockerSettings{Bootstrap: tc.bootstrap, SocketPath: "/var/run/docker.sock"}}
			if got := inertServerFields(spec); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("inertServerFields = %q, want %q", got, tc.want)
			}
		})
	}
	if got := inertServerFields(nil); got != nil {
		t.Errorf("inertServerFields(nil) = %q", got)
	}
}

func TestInertAccessoryFields(t *testing.T) {
	spec := &kamalv1.AccessorySpec{
		Image:          "postgres:15",
		Servers:        kamalv1.ServerSelector{Names: []string{"web-1"}},
		Directories:    []string{"data:/var/lib/postgresql/data"},
		DeletionPolicy: kamalv1.DeletionRetain,
		Logging:        &kamalv1.Logging{Driver: "json-file"},
	}
	if got := inertAccessoryFields(spec); got != nil {
		t.Errorf("inertAccessoryFields = %q, want none", got)
	}
	if got := inertAccessoryFields(nil); got != nil {
		t.Errorf("inertAccessoryFields(nil) = %q", got)
	}
}

func TestInertMessage(t *testing.T) {
	cases := []struct {
		fields []string
		want   string
	}{
		{nil, ""},
		{[]string{}, ""},
		{[]string{"spec.docker.bootstrap"}, "not acted on yet, ignored: spec.docker.bootstrap"},
		{[]string{"spec.proxy.ssl", "spec.assetPath"}, "not acted on yet, ignored: spec.proxy.ssl, spec.assetPath"},
	}
	for _, tc := range cases {
		if got := inertMessage(tc.fields); got != tc.want {
			t.Errorf("inertMessage(%q) = %q, want %q", tc.fields, got, tc.want)
		}
	}
	// What the reconcilers will pass: the sorted list straight from the functions.
	spec := inertDeploymentSpec(func(s *kamalv1.DeploymentSpec) {
		s.AssetPath = "/public"
		s.Proxy.Logging = &kamalv1.ProxyLogging{RequestHeaders: []string{"Cookie"}}
	})
	if got, want := inertMessage(inertDeploymentFields(spec)), "not acted on yet, ignored: spec.assetPath, spec.proxy.logging"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}
