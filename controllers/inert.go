package controllers

import (
	"sort"
	"strings"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// Fields that validate and are stored but that the controller does not act on yet (README,
// "Accepted but not acted on yet"). The functions below list the ones a spec sets, as JSON field
// paths in sorted order, for the FieldsNotActedOn condition.
//
// A field is listed when its value asks for something the controller does not do:
//
//   - Deployment, in spec.proxy and in each role's proxy: logging naming request or response headers,
//     buffering.maxResponseBody above 0; and assetPath, in the spec and in each role.
//   - Server: docker.bootstrap IfMissing.
//   - Accessory: nothing at present.
//
// A value that asks for what the controller does anyway is not listed: docker.bootstrap Never (the default), maxResponseBody 0 (no
// limit), a logging section with no headers.

// inertDeploymentFields lists the fields of spec the controller does not act on yet.
func inertDeploymentFields(spec *kamalv1.DeploymentSpec) []string {
	if spec == nil {
		return nil
	}
	var out []string
	out = append(out, inertProxyFields("spec.proxy", spec.Proxy)...)
	if spec.AssetPath != "" {
		out = append(out, "spec.assetPath")
	}
	for name, role := range spec.Roles {
		field := "spec.roles[" + name + "]"
		out = append(out, inertProxyFields(field+".proxy", role.Proxy)...)
		if role.AssetPath != "" {
			out = append(out, field+".assetPath")
		}
	}
	sort.Strings(out)
	return out
}

// inertProxyFields lists the fields of one proxy section (at field) not acted on yet.
func inertProxyFields(field string, p *kamalv1.Proxy) []string {
	if p == nil {
		return nil
	}
	var out []string
	if l := p.Logging; l != nil && (len(l.RequestHeaders) > 0 || len(l.ResponseHeaders) > 0) {
		out = append(out, field+".logging")
	}
	if b := p.Buffering; b != nil && b.MaxResponseBody != nil && !b.MaxResponseBody.IsZero() {
		out = append(out, field+".buffering.maxResponseBody")
	}
	return out
}

// inertServerFields lists the fields of spec the controller does not act on yet.
func inertServerFields(spec *kamalv1.ServerSpec) []string {
	if spec == nil {
		return nil
	}
	var out []string
	if spec.Docker.Bootstrap == kamalv1.DockerBootstrapIfMissing {
		out = append(out, "spec.docker.bootstrap")
	}
	sort.Strings(out)
	return out
}

// inertAccessoryFields lists the fields of spec the controller does not act on yet: none at
// present, every Accessory field is used.
func inertAccessoryFields(spec *kamalv1.AccessorySpec) []string {
	if spec == nil {
		return nil
	}
	return nil
}

// inertMessage is the FieldsNotActedOn condition's message for fields, in their order; empty
// when there are none.
func inertMessage(fields []string) string {
	if len(fields) == 0 {
		return ""
	}
	return "not acted on yet, ignored: " + strings.Join(fields, ", ")
}
