package proxy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files under images/kamal-proxy/testdata")

// The proxy module's tests run Caddy on this very config (images/kamal-proxy/testdata), so what
// they prove holds for the config the controller writes.
func TestFixedConfigIsWhatTheModuleIsTestedWith(t *testing.T) {
	path := filepath.Join("..", "..", "images", "kamal-proxy", "testdata", "fixed-config.json")
	if *update {
		if err := os.WriteFile(path, FixedConfig(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, FixedConfig()) {
		t.Fatalf("%s differs from FixedConfig(); run go test ./internal/proxy -run FixedConfig -update and the module's tests", path)
	}
}

// Without --resume, Caddy loads the fixed config on every start, also over an older proxy's
// autosave in the config volume.
func TestProxyRunsTheFixedConfigWithoutResume(t *testing.T) {
	opts, err := SettingsFor(kamalv1.ServerProxy{}, "reg/kamal-proxy:1").CreateOptions()
	if err != nil {
		t.Fatal(err)
	}
	if cmd := opts.Config.Cmd; slices.Contains(cmd, "--resume") || !slices.Equal(cmd, []string{"run", "--config", configFile}) {
		t.Fatalf("cmd %q", cmd)
	}
}
