// Package refs lists the Secrets, ConfigMaps, Servers and Accessories that a kamal object
// refers to, so controllers can check them and watch them. The functions are pure.
package refs

import (
	"sort"
	"strconv"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// Ref is one referenced object of the same namespace.
type Ref struct {
	// Kind is Secret, ConfigMap, Server or Accessory.
	Kind string
	Name string
	// Optional references may be missing without error.
	Optional bool
	// SecretType is the type the Secret must have, when it matters.
	SecretType string
	// Key must exist in the Secret or ConfigMap, when set.
	Key string
	// Field says where the reference is, for messages ("spec.env[DATABASE_URL]").
	Field string
}

// Secret types the API requires.
const (
	SecretTypeSSHAuth          = "kubernetes.io/ssh-auth"
	SecretTypeDockerConfigJSON = "kubernetes.io/dockerconfigjson"
	SecretTypeTLS              = "kubernetes.io/tls"
	SSHPrivateKeyKey           = "ssh-privatekey"
)

func isOptional(b *bool) bool { return b != nil && *b }

func envRefs(field string, env []kamalv1.EnvVar, envFrom []kamalv1.EnvFromSource) []Ref {
	var out []Ref
	for _, e := range env {
		if e.ValueFrom == nil {
			continue
		}
		f := field + ".env[" + e.Name + "]"
		if s := e.ValueFrom.SecretKeyRef; s != nil {
			out = append(out, Ref{Kind: "Secret", Name: s.Name, Key: s.Key, Optional: isOptional(s.Optional), Field: f})
		}
		if c := e.ValueFrom.ConfigMapKeyRef; c != nil {
			out = append(out, Ref{Kind: "ConfigMap", Name: c.Name, Key: c.Key, Optional: isOptional(c.Optional), Field: f})
		}
	}
	for i, e := range envFrom {
		f := field + ".envFrom[" + strconv.Itoa(i) + "]"
		if s := e.SecretRef; s != nil {
			out = append(out, Ref{Kind: "Secret", Name: s.Name, Optional: isOptional(s.Optional), Field: f})
		}
		if c := e.ConfigMapRef; c != nil {
			out = append(out, Ref{Kind: "ConfigMap", Name: c.Name, Optional: isOptional(c.Optional), Field: f})
		}
	}
	return out
}

// Server lists what a Server refers to: its SSH key, its jump host's key and its jump Server.
func Server(s *kamalv1.Server) []Ref {
	out := []Ref{{Kind: "Secret", Name: s.Spec.SSHKeySecretRef.Name, SecretType: SecretTypeSSHAuth, Key: SSHPrivateKeyKey, Field: "spec.sshKeySecretRef"}}
	if j := s.Spec.JumpHost; j != nil {
		if j.ServerName != "" {
			out = append(out, Ref{Kind: "Server", Name: j.ServerName, Field: "spec.jumpHost.serverName"})
		}
		if j.SSHKeySecretRef != nil {
			out = append(out, Ref{Kind: "Secret", Name: j.SSHKeySecretRef.Name, SecretType: SecretTypeSSHAuth, Key: SSHPrivateKeyKey, Field: "spec.jumpHost.sshKeySecretRef"})
		}
	}
	return out
}

// Deployment lists what a Deployment refers to, in a stable order.
func Deployment(d *kamalv1.Deployment) []Ref {
	var out []Ref
	for _, p := range d.Spec.ImagePullSecrets {
		out = append(out, Ref{Kind: "Secret", Name: p.Name, SecretType: SecretTypeDockerConfigJSON, Field: "spec.imagePullSecrets"})
	}
	out = append(out, envRefs("spec", d.Spec.Env, d.Spec.EnvFrom)...)
	if d.Spec.Proxy != nil && d.Spec.Proxy.SSLCertificateSecretRef != nil {
		out = append(out, Ref{Kind: "Secret", Name: d.Spec.Proxy.SSLCertificateSecretRef.Name, SecretType: SecretTypeTLS, Field: "spec.proxy.sslCertificateSecretRef"})
	}
	roles := make([]string, 0, len(d.Spec.Roles))
	for name := range d.Spec.Roles {
		roles = append(roles, name)
	}
	sort.Strings(roles)
	for _, name := range roles {
		role := d.Spec.Roles[name]
		f := "spec.roles[" + name + "]"
		out = append(out, envRefs(f, role.Env, role.EnvFrom)...)
		if role.Proxy != nil && role.Proxy.SSLCertificateSecretRef != nil {
			out = append(out, Ref{Kind: "Secret", Name: role.Proxy.SSLCertificateSecretRef.Name, SecretType: SecretTypeTLS, Field: f + ".proxy.sslCertificateSecretRef"})
		}
		out = append(out, serverRefs(d.Namespace, role.Servers, f+".servers")...)
	}
	for _, a := range d.Spec.DependsOn {
		out = append(out, Ref{Kind: "Accessory", Name: a.Name, Field: "spec.dependsOn"})
	}
	if usesSSL(d) {
		// The automatic certificate's Secret, which the controller writes: watched so that
		// its change or deletion reaches the Deployment at once. Missing until issued.
		out = append(out, Ref{Kind: "Secret", Name: d.Name + AutomaticCertificateSuffix, Optional: true, Field: "status.certificate.secretName"})
	}
	return out
}

// AutomaticCertificateSuffix names a Deployment's automatic certificate Secret after it.
const AutomaticCertificateSuffix = "-kamal-tls"

// usesSSL: some proxy section of d turns ssl on.
func usesSSL(d *kamalv1.Deployment) bool {
	if p := d.Spec.Proxy; p != nil && p.SSL != nil && *p.SSL {
		return true
	}
	for _, r := range d.Spec.Roles {
		if p := r.Proxy; p != nil && p.SSL != nil && *p.SSL {
			return true
		}
	}
	return false
}

// Accessory lists what an Accessory refers to.
func Accessory(a *kamalv1.Accessory) []Ref {
	var out []Ref
	for _, p := range a.Spec.ImagePullSecrets {
		out = append(out, Ref{Kind: "Secret", Name: p.Name, SecretType: SecretTypeDockerConfigJSON, Field: "spec.imagePullSecrets"})
	}
	out = append(out, envRefs("spec", a.Spec.Env, a.Spec.EnvFrom)...)
	for _, f := range a.Spec.Files {
		field := "spec.files[" + f.Target + "]"
		if s := f.SecretKeyRef; s != nil {
			out = append(out, Ref{Kind: "Secret", Name: s.Name, Key: s.Key, Optional: isOptional(s.Optional), Field: field})
		}
		if c := f.ConfigMapKeyRef; c != nil {
			out = append(out, Ref{Kind: "ConfigMap", Name: c.Name, Key: c.Key, Optional: isOptional(c.Optional), Field: field})
		}
	}
	out = append(out, serverRefs(a.Namespace, a.Spec.Servers, "spec.servers")...)
	return out
}

// serverRefs are the Servers a selection names in the object's own namespace; Servers of another
// namespace are placement's to check (they must also allow the object's namespace).
func serverRefs(namespace string, sel kamalv1.ServerSelector, field string) []Ref {
	if sel.Namespace != "" && sel.Namespace != namespace {
		return nil
	}
	out := make([]Ref, 0, len(sel.Names))
	for _, s := range sel.Names {
		out = append(out, Ref{Kind: "Server", Name: s, Field: field})
	}
	return out
}

// Names returns the distinct names of the given kind, sorted; controllers index objects by
// them to find what a changed Secret or Server affects.
func Names(refs []Ref, kind string) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range refs {
		if r.Kind == kind && !seen[r.Name] {
			seen[r.Name] = true
			out = append(out, r.Name)
		}
	}
	sort.Strings(out)
	return out
}
