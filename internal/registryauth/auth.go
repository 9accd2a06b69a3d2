// Package registryauth picks the credentials of an image's registry from dockerconfigjson
// Secrets and encodes them the way the Engine API takes them with a single pull request, so
// nothing is stored on the host.
package registryauth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// Registry is the registry host of an image reference ("docker.io" when none is named), in
// lower case, Docker Hub's other names spelled "docker.io".
func Registry(image string) string {
	first, _, found := strings.Cut(image, "/")
	if !found || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		return "docker.io"
	}
	return normalize(strings.ToLower(first))
}

// Repository is the repository of an image reference, with its registry and without tag or
// digest, spelled one way for each: "postgres:15" and "docker.io/library/postgres@sha256:…"
// are both "docker.io/library/postgres".
func Repository(image string) string {
	name, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i] // the tag; a colon before the last slash is a registry's port
	}
	reg := Registry(name)
	path := name
	if first, rest, found := strings.Cut(name, "/"); found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		path = rest
	}
	if reg == "docker.io" && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	return reg + "/" + path
}

type dockerConfig struct {
	Auths map[string]struct {
		Auth     string `json:"auth"`
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"auths"`
}

// normalize maps the spellings of a registry in config files to its host.
func normalize(key string) string {
	key = strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	key, _, _ = strings.Cut(key, "/")
	switch key {
	case "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return key
}

// For returns the X-Registry-Auth value for image from the first config that has its
// registry, or "" when none does.
func For(image string, configs [][]byte) (string, error) {
	reg := Registry(image)
	for i, raw := range configs {
		var cfg dockerConfig
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return "", fmt.Errorf("imagePullSecrets[%d]: not a docker config: %w", i, err)
		}
		for key, a := range cfg.Auths {
			if normalize(key) != reg {
				continue
			}
			user, pass := a.Username, a.Password
			if a.Auth != "" {
				dec, err := base64.StdEncoding.DecodeString(a.Auth)
				if err != nil {
					return "", fmt.Errorf("imagePullSecrets[%d]: auth for %s is not base64", i, key)
				}
				user, pass, _ = strings.Cut(string(dec), ":")
			}
			b, _ := json.Marshal(map[string]string{"username": user, "password": pass, "serveraddress": reg})
			return base64.URLEncoding.EncodeToString(b), nil
		}
	}
	return "", nil
}
