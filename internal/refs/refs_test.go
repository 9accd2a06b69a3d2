package refs

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func secretKey(name, key string, optional bool) *corev1.SecretKeySelector {
	s := &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
	if optional {
		s.Optional = ptr.To(true)
	}
	return s
}

func TestDeploymentRefs(t *testing.T) {
	d := &kamalv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: kamalv1.DeploymentSpec{
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "registry"}},
			Env: []kamalv1.EnvVar{
				{Name: "PLAIN", Value: "x"},
				{Name: "DB", ValueFrom: &kamalv1.EnvVarSource{SecretKeyRef: secretKey("app", "DB", false)}},
			},
			EnvFrom: []kamalv1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
			Roles: map[string]kamalv1.Role{
				"web":  {Servers: kamalv1.ServerSelector{Names: []string{"web-1", "web-2"}}},
				"jobs": {Servers: kamalv1.ServerSelector{Names: []string{"web-1"}}, Env: []kamalv1.EnvVar{{Name: "Q", ValueFrom: &kamalv1.EnvVarSource{SecretKeyRef: secretKey("jobs", "Q", true)}}}},
			},
			DependsOn: []corev1.LocalObjectReference{{Name: "db"}},
		},
	}
	rs := Deployment(d)
	if got := Names(rs, "Secret"); !reflect.DeepEqual(got, []string{"app", "jobs", "registry"}) {
		t.Errorf("secrets = %v", got)
	}
	if got := Names(rs, "ConfigMap"); !reflect.DeepEqual(got, []string{"settings"}) {
		t.Errorf("configmaps = %v", got)
	}
	if got := Names(rs, "Server"); !reflect.DeepEqual(got, []string{"web-1", "web-2"}) {
		t.Errorf("servers = %v", got)
	}
	if got := Names(rs, "Accessory"); !reflect.DeepEqual(got, []string{"db"}) {
		t.Errorf("accessories = %v", got)
	}
	for _, r := range rs {
		switch r.Name {
		case "registry":
			if r.SecretType != SecretTypeDockerConfigJSON {
				t.Errorf("pull secret type = %q", r.SecretType)
			}
		case "jobs":
			if !r.Optional || r.Field != "spec.roles[jobs].env[Q]" || r.Key != "Q" {
				t.Errorf("role env ref = %+v", r)
			}
		case "app":
			if r.Optional || r.Field != "spec.env[DB]" {
				t.Errorf("env ref = %+v", r)
			}
		}
	}
	// Roles come in name order, so messages about the first problem are stable.
	if a, b := indexOf(rs, "spec.roles[jobs].servers"), indexOf(rs, "spec.roles[web].servers"); a < 0 || b < 0 || a > b {
		t.Errorf("role order: jobs at %d, web at %d", a, b)
	}
}

func indexOf(rs []Ref, field string) int {
	for i, r := range rs {
		if r.Field == field {
			return i
		}
	}
	return -1
}

func TestServerRefs(t *testing.T) {
	s := &kamalv1.Server{Spec: kamalv1.ServerSpec{
		SSHKeySecretRef: corev1.LocalObjectReference{Name: "key"},
		JumpHost:        &kamalv1.JumpHost{ServerName: "bastion"},
	}}
	rs := Server(s)
	if len(rs) != 2 || rs[0].SecretType != SecretTypeSSHAuth || rs[0].Key != SSHPrivateKeyKey || rs[1].Kind != "Server" || rs[1].Name != "bastion" {
		t.Errorf("refs = %+v", rs)
	}
}

func TestAccessoryFileRefs(t *testing.T) {
	a := &kamalv1.Accessory{Spec: kamalv1.AccessorySpec{
		Servers: kamalv1.ServerSelector{Names: []string{"db-1"}},
		Files: []kamalv1.AccessoryFile{
			{Target: "/etc/a.conf", ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}, Key: "a"}},
			{Target: "/etc/tls.key", SecretKeyRef: secretKey("tls", "key", false)},
		},
	}}
	rs := Accessory(a)
	if got := Names(rs, "ConfigMap"); !reflect.DeepEqual(got, []string{"conf"}) {
		t.Errorf("configmaps = %v", got)
	}
	if got := Names(rs, "Secret"); !reflect.DeepEqual(got, []string{"tls"}) {
		t.Errorf("secrets = %v", got)
	}
	if indexOf(rs, "spec.files[/etc/tls.key]") < 0 {
		t.Errorf("file field missing: %+v", rs)
	}
}

// Servers named in another namespace are placement's to check, not reference checks of the
// object's own namespace; naming the own namespace explicitly is the same as leaving it out.
func TestServerNamesOfAnotherNamespaceAreNotLocalRefs(t *testing.T) {
	d := &kamalv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app"},
		Spec: kamalv1.DeploymentSpec{Roles: map[string]kamalv1.Role{
			"web":  {Servers: kamalv1.ServerSelector{Namespace: "platform", Names: []string{"web-1"}}},
			"jobs": {Servers: kamalv1.ServerSelector{Namespace: "team-a", Names: []string{"jobs-1"}}},
		}},
	}
	if got := Names(Deployment(d), "Server"); !reflect.DeepEqual(got, []string{"jobs-1"}) {
		t.Errorf("servers = %v, want only jobs-1 of the own namespace", got)
	}
	a := &kamalv1.Accessory{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a"},
		Spec: kamalv1.AccessorySpec{Servers: kamalv1.ServerSelector{Namespace: "platform", Names: []string{"db-1"}}}}
	if got := Names(Accessory(a), "Server"); len(got) != 0 {
		t.Errorf("servers = %v, want none", got)
	}
}

// With ssl on, the automatic certificate's Secret is an optional reference: watched, never
// required.
func TestDeploymentWithSSLWatchesItsCertificateSecret(t *testing.T) {
	on := true
	d := &kamalv1.Deployment{}
	d.Name = "app"
	d.Spec.Roles = map[string]kamalv1.Role{"web": {Proxy: &kamalv1.Proxy{SSL: &on}}}
	rs := Deployment(d)
	i := indexOf(rs, "status.certificate.secretName")
	if i < 0 || rs[i].Name != "app-kamal-tls" || !rs[i].Optional || rs[i].Kind != "Secret" {
		t.Errorf("refs = %+v", rs)
	}
	d.Spec.Roles = map[string]kamalv1.Role{"web": {}}
	if indexOf(Deployment(d), "status.certificate.secretName") >= 0 {
		t.Error("certificate Secret referenced without ssl")
	}
}
