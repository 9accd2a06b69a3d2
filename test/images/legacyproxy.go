package images

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
)

// LegacyProxyTag is a tag of ProxyRepo with the proxy module of the release before the route
// table: app routes as Caddy routes with a kamal_route handler, upstreams in a {id: upstream}
// table, run as `caddy run --resume`. The upgrade test replaces it with today's proxy.
const LegacyProxyTag = "legacy"

// LegacyProxySourceDir holds that module's sources (Go ignores testdata, so they stay as they
// were); they build against the proxy's go.mod and go.sum, of the same Caddy version.
func LegacyProxySourceDir() string {
	return filepath.Join(RepoRoot(), "test", "images", "testdata", "legacyproxy")
}

// BuildLegacyProxy builds the legacy proxy as a static binary cached at
// BinDir()/kamal-proxy-legacy/<source hash>/caddy.
func BuildLegacyProxy(ctx context.Context) (string, error) {
	src := LegacyProxySourceDir()
	sum, err := hashSources(src)
	if err != nil {
		return "", err
	}
	out := filepath.Join(BinDir(), "kamal-proxy-legacy", sum, "caddy")
	if fi, err := os.Stat(out); err == nil && fi.Mode()&0o111 != 0 {
		return out, nil
	}
	// A module directory: the proxy's go.mod and go.sum, and the legacy sources.
	dir, err := os.MkdirTemp("", "kamal-proxy-legacy-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(ProxySourceDir(), f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return "", err
		}
	}
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=readonly", "GOWORK=off"}
	if err := run(ctx, dir, env, goTool(), "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", out+".tmp", "./cmd/kamal-proxy"); err != nil {
		os.Remove(out + ".tmp")
		return "", err
	}
	return out, os.Rename(out+".tmp", out)
}
