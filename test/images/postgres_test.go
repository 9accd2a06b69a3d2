package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func sha(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

// readLayer returns the tar entries (and contents of regular files) of a gzipped layer file, with
// the sha256 of the uncompressed tar.
func readLayer(t *testing.T, path string) (map[string]*tar.Header, map[string][]byte, string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(zr, h))
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	for {
		hd, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := hdrs[hd.Name]; dup {
			t.Fatalf("%s twice in the layer", hd.Name)
		}
		hdrs[hd.Name] = hd
		if hd.Typeflag == tar.TypeReg && hd.Size < 1<<20 {
			data[hd.Name], _ = io.ReadAll(tr)
		}
	}
	_, _ = io.Copy(io.Discard, zr) // the tar's end blocks
	return hdrs, data, "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func TestWriteRootfsLayer(t *testing.T) {
	root := t.TempDir()
	mk := func(p, data string, mode os.FileMode) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
	mk("usr/bin/tool", "#!/bin/sh\n", 0o755)
	mk("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644)
	mk("dev/null-ish", "x", 0o644)
	mk("tmp/leftover", "x", 0o644)
	mk("proc/self-ish", "x", 0o644)
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/bin/tool2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "layer.tar.gz")
	l, raw, err := writeRootfsLayer(root, out)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if l.Size != int64(len(b)) || l.Digest != sha(b) || l.Path != out {
		t.Fatalf("layer %+v, file %d bytes %s", l, len(b), sha(b))
	}
	hdrs, data, diffID := readLayer(t, out)
	if diffID != l.DiffID || raw <= 0 {
		t.Fatalf("diff id %s, recorded %s (raw %d)", diffID, l.DiffID, raw)
	}
	if h := hdrs["usr/bin/tool"]; h == nil || h.Mode&0o7777 != 0o755 || string(data["usr/bin/tool"]) != "#!/bin/sh\n" || h.Uname != "" {
		t.Fatalf("usr/bin/tool: %+v", h)
	}
	if h := hdrs["usr/bin/tool2"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "usr/bin/tool" {
		t.Fatalf("hard link: %+v", h)
	}
	if h := hdrs["bin"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "usr/bin" {
		t.Fatalf("symlink: %+v", h)
	}
	for _, dir := range []string{"dev/", "tmp/", "proc/", "usr/", "usr/bin/"} {
		if h := hdrs[dir]; h == nil || h.Typeflag != tar.TypeDir {
			t.Fatalf("%s: %+v", dir, h)
		}
	}
	if h := hdrs["tmp/"]; h.Mode&0o7777 != 0o1777 {
		t.Fatalf("tmp mode %o", h.Mode)
	}
	for _, gone := range []string{"dev/null-ish", "tmp/leftover", "proc/self-ish"} {
		if hdrs[gone] != nil {
			t.Fatalf("%s is in the layer", gone)
		}
	}
}

func TestPostgresImageConfig(t *testing.T) {
	r := &PostgresRootfs{Version: "15.99-0+deb12u1", Layer: LayerFile{Path: "/nonexistent.tar.gz", Size: 12345,
		Digest: "sha256:" + strings.Repeat("a", 64), DiffID: "sha256:" + strings.Repeat("b", 64)}}
	b, err := PostgresImage(r).Build()
	if err != nil {
		t.Fatal(err)
	}
	if b.LayerFile != r.Layer.Path || b.LayerSize != 12345 || b.Layer != nil {
		t.Fatalf("built %+v", b)
	}
	var cfg struct {
		Config struct {
			User, StopSignal string
			Entrypoint, Cmd  []string
			Env              []string
			ExposedPorts     map[string]struct{}
			Labels           map[string]string
		} `json:"config"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(b.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	env := strings.Join(c.Env, "\n")
	if c.User != "root" || c.StopSignal != "SIGINT" || len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/usr/local/bin/docker-entrypoint.sh" ||
		len(c.Cmd) != 1 || c.Cmd[0] != "postgres" || !strings.Contains(env, "PGDATA=/var/lib/postgresql/data") ||
		!strings.Contains(env, "PATH=/usr/lib/postgresql/15/bin:") || len(c.ExposedPorts) != 1 ||
		c.Labels["org.opencontainers.image.version"] != r.Version {
		t.Fatalf("config %s", b.Config)
	}
	if _, ok := c.ExposedPorts["5432/tcp"]; !ok {
		t.Fatalf("ports %v", c.ExposedPorts)
	}
	if len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != r.Layer.DiffID {
		t.Fatalf("diff ids %v", cfg.RootFS.DiffIDs)
	}
	var m struct {
		Layers []struct {
			Size   int64
			Digest string
		}
	}
	if err := json.Unmarshal(b.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 1 || m.Layers[0].Size != 12345 || m.Layers[0].Digest != r.Layer.Digest {
		t.Fatalf("manifest %s", b.Manifest)
	}
	// The key changes with what the root is made of.
	k := postgresKey()
	old := postgresPackages
	postgresPackages = append([]string{"extra"}, old...)
	defer func() { postgresPackages = old }()
	if postgresKey() == k || len(k) != 16 {
		t.Fatalf("key %q does not follow the package list", k)
	}
}

func TestEntrypointScript(t *testing.T) {
	for _, want := range []string{"#!/bin/sh\n", "setpriv --reuid=postgres", "--pwfile=", "host all all all %s",
		"listen_addresses = '*'", "POSTGRES_HOST_AUTH_METHOD=trust", `exec "$@"`} {
		if !bytes.Contains(postgresEntrypointScript, []byte(want)) {
			t.Fatalf("entrypoint lacks %q", want)
		}
	}
	for _, sh := range []string{"dash", "sh"} {
		if p, err := exec.LookPath(sh); err == nil {
			cmd := exec.Command(p, "-n")
			cmd.Stdin = bytes.NewReader(postgresEntrypointScript)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v %s", sh, err, out)
			}
		}
	}
}

// A registry that keeps what is pushed to it, for the streaming push of a layer file.
type memRegistry struct {
	mu        sync.Mutex
	blobs     map[string][]byte
	manifests map[string][]byte
}

func (m *memRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	switch {
	case r.Method == http.MethodHead && strings.Contains(p, "/manifests/"):
		if b, ok := m.manifests[p]; ok {
			w.Header().Set("Docker-Content-Digest", sha(b))
			return
		}
		w.WriteHeader(404)
	case r.Method == http.MethodPut && strings.Contains(p, "/manifests/"):
		b, _ := io.ReadAll(r.Body)
		m.manifests[p] = b
		w.Header().Set("Docker-Content-Digest", sha(b))
		w.WriteHeader(201)
	case r.Method == http.MethodHead && strings.Contains(p, "/blobs/"):
		if _, ok := m.blobs[p[strings.LastIndex(p, "/")+1:]]; ok {
			return
		}
		w.WriteHeader(404)
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/blobs/uploads/"):
		w.Header().Set("Location", "/v2/"+p+"u1")
		w.WriteHeader(202)
	case r.Method == http.MethodPut && strings.Contains(p, "/blobs/uploads/"):
		b, _ := io.ReadAll(r.Body)
		d := r.URL.Query().Get("digest")
		if sha(b) != d || r.ContentLength != int64(len(b)) {
			http.Error(w, "digest or length mismatch", 400)
			return
		}
		m.blobs[d] = b
		w.WriteHeader(201)
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, 400)
	}
}

func TestPushStreamsLayerFile(t *testing.T) {
	layerData := bytes.Repeat([]byte("layer bytes "), 100000)
	path := filepath.Join(t.TempDir(), "l.tar.gz")
	if err := os.WriteFile(path, layerData, 0o644); err != nil {
		t.Fatal(err)
	}
	reg := &memRegistry{blobs: map[string][]byte{}, manifests: map[string][]byte{}}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	r := Registry{Addr: strings.TrimPrefix(srv.URL, "http://")}
	img := PostgresImage(&PostgresRootfs{Version: "x", Layer: LayerFile{Path: path, Size: int64(len(layerData)),
		Digest: sha(layerData), DiffID: "sha256:" + strings.Repeat("c", 64)}})
	b, err := img.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pushed, err := r.Push(ctx, PostgresRepo, PostgresTag, b)
	if err != nil || !pushed {
		t.Fatalf("push: %v %v", pushed, err)
	}
	if !bytes.Equal(reg.blobs[sha(layerData)], layerData) || !bytes.Equal(reg.blobs[b.ConfigDigest], b.Config) {
		t.Fatal("the registry lacks the layer or the config")
	}
	if pushed, err := r.Push(ctx, PostgresRepo, PostgresTag, b); err != nil || pushed {
		t.Fatalf("second push: %v %v", pushed, err)
	}
}

func TestAptSources(t *testing.T) {
	etc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(etc, "sources.list.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"sources.list": "# nothing here\ndeb [arch=amd64] https://deb.nodesource.com/node_20.x nodistro main\n",
		"sources.list.d/debian.sources": `Types: deb
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
`,
		"sources.list.d/other.list": "deb http://other.example/debian bookworm main\n",
	}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(etc, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := aptSourcesIn(etc)
	want := debianSources{main: "http://other.example/debian", updates: "http://mirror.example/debian",
		security: "http://security.example/debian-security"}
	// sources.list.d/*.list is read before *.sources
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got := aptSourcesIn(t.TempDir()); got.main != defaultMirror || got.updates != defaultMirror || got.security != "" {
		t.Fatalf("no sources: %+v", got)
	}
}

// TestPostgresRootfs builds (or takes from the cache) the real root filesystem: as root, with
// KAMAL_E2E=1, as the first build runs debootstrap and apt-get for a few minutes.
func TestPostgresRootfs(t *testing.T) {
	if os.Getenv("KAMAL_E2E") != "1" || os.Geteuid() != 0 {
		t.Skip("set KAMAL_E2E=1 and run as root to build the PostgreSQL root filesystem")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	r, err := EnsurePostgresRootfs(ctx, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rootfs %s: %d bytes gzipped, %d as tar, in %s (cold build took %s)", r.Version, r.Layer.Size,
		r.Uncompressed, time.Since(start).Round(time.Millisecond), r.BuildTime)
	if !strings.HasPrefix(r.Version, PostgresMajor+".") {
		t.Fatalf("version %q", r.Version)
	}
	hdrs, data, diffID := readLayer(t, r.Layer.Path)
	if diffID != r.Layer.DiffID {
		t.Fatalf("diff id %s, recorded %s", diffID, r.Layer.DiffID)
	}
	if h := hdrs["usr/local/bin/docker-entrypoint.sh"]; h == nil || h.Mode&0o777 != 0o755 ||
		!bytes.Equal(data["usr/local/bin/docker-entrypoint.sh"], postgresEntrypointScript) {
		t.Fatalf("entrypoint %+v", h)
	}
	for _, p := range []string{"usr/lib/postgresql/15/bin/postgres", "usr/lib/postgresql/15/bin/initdb",
		"usr/lib/postgresql/15/bin/pg_ctl", "usr/lib/postgresql/15/bin/psql", "usr/lib/postgresql/15/bin/pg_isready",
		"usr/bin/setpriv", "usr/bin/find", "usr/bin/mktemp", "bin/sh"} {
		if hdrs[p] == nil && hdrs[strings.Replace(p, "bin/", "usr/bin/", 1)] == nil {
			t.Errorf("%s missing", p)
		}
	}
	if !strings.Contains(string(data["etc/passwd"]), "postgres:x:999:999:") {
		t.Errorf("no postgres user 999 in /etc/passwd:\n%s", data["etc/passwd"])
	}
	if h := hdrs["var/run/postgresql/"]; h == nil && hdrs["run/postgresql/"] == nil {
		t.Errorf("no /run/postgresql")
	}
	for name := range hdrs {
		if strings.HasPrefix(name, "var/lib/apt/lists/") && !strings.HasSuffix(name, "/") ||
			strings.HasPrefix(name, "usr/share/man/") && name != "usr/share/man/" ||
			strings.HasPrefix(name, "usr/share/doc/") && !strings.HasSuffix(name, "/") && !strings.HasSuffix(name, "/copyright") ||
			strings.HasPrefix(name, "var/cache/apt/archives/") && strings.HasSuffix(name, ".deb") ||
			strings.HasPrefix(name, "var/lib/postgresql/15/") || name == "etc/resolv.conf" || name == "usr/sbin/policy-rc.d" ||
			strings.Contains(name, "libLLVM") || strings.Contains(name, "llvmjit") {
			t.Errorf("%s is in the image", name)
		}
	}

	// A second call takes the cache.
	t0 := time.Now()
	again, err := EnsurePostgresRootfs(ctx, t.Logf)
	if err != nil || again.Layer != r.Layer {
		t.Fatalf("cached: %+v %v", again, err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("cached rootfs took %s", d)
	}
}
