package images

import (
	"context"
	"os"
	"path/filepath"
)

// BrokenProxyTag is a tag of ProxyRepo whose entrypoint exits 1 at once: a proxy upgrade that
// cannot start.
const BrokenProxyTag = "broken"

// BuildBrokenProxy builds test/images/brokenproxy as a static binary into BinDir()/fixtures and
// returns its path.
func BuildBrokenProxy(ctx context.Context) (string, error) {
	out := filepath.Join(BinDir(), "fixtures", "brokenproxy")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	err := run(ctx, RepoRoot(), []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=readonly"},
		goTool(), "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", out, "./test/images/brokenproxy")
	return out, err
}

// BrokenProxyImage is a FROM-scratch image laid out like ProxyImage whose /usr/bin/caddy is
// the brokenproxy binary: it exits 1 with one line on stderr.
func BrokenProxyImage(bin []byte) Image {
	img := ProxyImage(bin)
	img.Labels = map[string]string{"org.opencontainers.image.title": "kamal-operator proxy that cannot start (test fixture)"}
	return img
}
