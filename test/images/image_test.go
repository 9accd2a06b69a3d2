package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildIsDeterministicAndConsistent(t *testing.T) {
	img := SampleAppImage([]byte("#!binary"))
	a, err := img.Build()
	if err != nil {
		t.Fatal(err)
	}
	b, err := img.Build()
	if err != nil {
		t.Fatal(err)
	}
	if a.ManifestDigest != b.ManifestDigest || !bytes.Equal(a.Layer, b.Layer) {
		t.Fatalf("two builds of the same image differ: %s vs %s", a.ManifestDigest, b.ManifestDigest)
	}
	other, _ := SampleAppImage([]byte("#!other")).Build()
	if other.ManifestDigest == a.ManifestDigest {
		t.Fatal("different content, same digest")
	}

	// digests are those of the bytes
	sum := func(p []byte) string { s := sha256.Sum256(p); return "sha256:" + hex.EncodeToString(s[:]) }
	if sum(a.Layer) != a.LayerDigest || sum(a.Config) != a.ConfigDigest || sum(a.Manifest) != a.ManifestDigest {
		t.Fatal("a digest does not match its blob")
	}

	// the layer: gzip of a tar whose sha256 is the config's diff_id
	zr, err := gzip.NewReader(bytes.NewReader(a.Layer))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Architecture, OS string
		Config           struct{ Entrypoint, Cmd []string }
		RootFS           struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(a.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != sum(raw) || cfg.Architecture != "amd64" || cfg.OS != "linux" {
		t.Fatalf("config %s", a.Config)
	}
	if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/sampleapp" || cfg.Config.Cmd[0] != "serve" {
		t.Fatalf("config %s", a.Config)
	}
	entries := tarEntries(t, bytes.NewReader(raw))
	if h := entries["sampleapp"]; h == nil || h.Mode != 0o755 || h.Size != int64(len("#!binary")) {
		t.Fatalf("sampleapp entry %+v", h)
	}
	if h := entries["tmp/"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o1777 {
		t.Fatalf("tmp entry %+v", h)
	}

	var m struct {
		SchemaVersion int
		MediaType     string
		Config        struct{ Digest string }
		Layers        []struct{ Digest, MediaType string }
	}
	if err := json.Unmarshal(a.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 2 || m.MediaType != MediaTypeManifest || m.Config.Digest != a.ConfigDigest ||
		len(m.Layers) != 1 || m.Layers[0].Digest != a.LayerDigest || m.Layers[0].MediaType != MediaTypeLayer {
		t.Fatalf("manifest %s", a.Manifest)
	}
}

// tarEntries are the headers of the tar r, by name.
func tarEntries(t *testing.T, r io.Reader) map[string]*tar.Header {
	t.Helper()
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = h
	}
}

func TestParentFoldersAreAdded(t *testing.T) {
	b, err := ProxyImage([]byte("caddy")).Build()
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := gzip.NewReader(bytes.NewReader(b.Layer))
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Fatalf("%s twice in %v", n, names)
		}
		seen[n] = true
	}
	for _, want := range []string{"usr/", "usr/bin/", "usr/bin/caddy", "config/", "config/caddy/", "data/caddy/", "etc/caddy/", "tmp/"} {
		if !seen[want] {
			t.Fatalf("%s missing from %v", want, names)
		}
	}
	// a folder comes before what is in it
	pos := map[string]int{}
	for i, n := range names {
		pos[n] = i
	}
	if pos["usr/"] > pos["usr/bin/"] || pos["usr/bin/"] > pos["usr/bin/caddy"] {
		t.Fatalf("order %v", names)
	}
}

// The proxy image's tag names the Caddy version its Go module builds.
func TestCaddyVersionMatchesTheProxyModule(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(ProxySourceDir(), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "github.com/caddyserver/caddy/v2 v" + CaddyVersion + "\n"; !strings.Contains(string(b), want) {
		t.Fatalf("images/kamal-proxy/go.mod does not require %q: update CaddyVersion with it", strings.TrimSpace(want))
	}
}
