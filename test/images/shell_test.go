package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"slices"
	"testing"
)

// The shell image: busybox and its applet links, no bash, and a command line that a one-off
// container's command replaces whole.
func TestSampleAppShellImage(t *testing.T) {
	b, err := SampleAppShellImage([]byte("#!app"), []byte("#!busybox")).Build()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b.Layer))
	if err != nil {
		t.Fatal(err)
	}
	entries := tarEntries(t, zr)
	if h := entries["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode != 0o755 || h.Size != int64(len("#!busybox")) {
		t.Fatalf("bin/busybox %+v", h)
	}
	if h := entries["bin/printenv"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode != 0o755 {
		t.Fatalf("bin/printenv %+v", h)
	}
	for _, a := range []string{"sh", "env", "echo", "cat", "hostname"} {
		if h := entries["bin/"+a]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" || h.Size != 0 {
			t.Errorf("bin/%s %+v", a, h)
		}
	}
	for name := range entries {
		if name == "bin/bash" || name == "usr/bin/bash" {
			t.Errorf("%s in the image", name)
		}
	}
	if h := entries["sampleapp"]; h == nil || h.Mode != 0o755 {
		t.Fatalf("sampleapp %+v", h)
	}
	var cfg struct {
		Config struct{ Entrypoint, Cmd []string }
	}
	if err := json.Unmarshal(b.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Config.Entrypoint != nil || !slices.Equal(cfg.Config.Cmd, []string{"/sampleapp", "serve"}) {
		t.Fatalf("config %s", b.Config)
	}
}
