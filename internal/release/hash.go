package release

import "github.com/kamal-operator/kamal-operator/internal/spechash"

// hashInputV1 is a role as its spec hash sees it: exactly the settings that define its
// container. It encodes as json.Marshal(Role) did before the projection existed (the same
// names, order, and null for unset lists and maps), so a controller upgrade keeps the hash of
// every running container and recreates none; the goldens in the tests hold it to that.
//
// A new field must be omitempty and absent from today's specs: append it with an explicit
// JSON name and omitempty, of a kind omitempty drops (a pointer, not a struct value), meaning
// "as before" when unset. See package spechash; TestHashProjectionFollowsTheRule enforces it.
// Not in the hash: Proxy (it shapes the route, which is rewritten in place) and UID (the key).
type hashInputV1 struct {
	Namespace  string            `json:"Namespace"`
	Deployment string            `json:"Deployment"`
	Name       string            `json:"Name"`
	Image      string            `json:"Image"`
	Cmd        []string          `json:"Cmd"`
	Env        []string          `json:"Env"`
	Labels     map[string]string `json:"Labels"`
	Volumes    []string          `json:"Volumes"`
	Options    *spechash.Options `json:"Options"`
	Logging    *spechash.Logging `json:"Logging"`
	Restart    string            `json:"Restart"`
	// RestartedAt is spec.restartedAt, only when set.
	RestartedAt *string `json:"RestartedAt,omitempty"`
	// New fields go here.
}

// hashInput projects the role. Lists and maps are shared, not copied: nil and empty encode
// differently, as they did.
func (r *Role) hashInput() hashInputV1 {
	return hashInputV1{
		Namespace: r.Namespace, Deployment: r.Deployment, Name: r.Name, Image: r.Image,
		Cmd: r.Cmd, Env: r.Env, Labels: r.Labels, Volumes: r.Volumes,
		Options: spechash.FromOptions(r.Options), Logging: spechash.FromLogging(r.Logging),
		Restart: r.Restart, RestartedAt: omitEmpty(r.RestartedAt),
	}
}

// omitEmpty is nil for "": a field added after version 1 is absent from the hash when unset.
func omitEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Hash identifies everything that shapes the container, keyed with key (the Deployment's
// UID), so a host user reading the label cannot test guesses of secret values against it.
func (r *Role) Hash(key string) string { return spechash.Must(key, r.hashInput()) }
