package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Names of the fixture images in the test registry.
const (
	SampleAppRepo = "sampleapp"
	ProxyRepo     = "kamal-proxy"
	CaddyVersion  = "2.11.9"
	ProxyTag      = "caddy-" + CaddyVersion
	PostgresRepo  = "postgres"
	PostgresTag   = PostgresMajor // "15"
)

// SHATag is a tag in Kamal's own version format, a 40-digit Git SHA: with a long Deployment
// name it makes container names at and past the 63-character DNS label limit.
const SHATag = "3f9c2b7e1d4a8f6c0b5e9d2a7c4f1e8b6d3a0c5f"

// SampleAppTags are the tags of SampleAppRepo: "vN" (and SHATag) answers /version with its
// tag, "broken" never answers /up with 200.
var SampleAppTags = []string{"v1", "v2", "v3", "broken", SHATag}

// RepoRoot is the root of the kamal-operator source tree this package was compiled from.
func RepoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "."
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BinDir is where built binaries are cached: $KAMALOP_BIN_DIR, else <repo>/bin.
func BinDir() string {
	if d := os.Getenv("KAMALOP_BIN_DIR"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "bin")
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// BuildSampleApp builds test/apps/sampleapp as a static binary with the given version (and broken
// mode) baked in, into BinDir()/fixtures, and returns its path. Go's build cache makes a repeat
// build take well under a second.
func BuildSampleApp(ctx context.Context, version string, broken bool) (string, error) {
	return buildSampleApp(ctx, version, broken, nil)
}

// buildSampleApp is BuildSampleApp; a build that takes more than a few seconds (an empty Go
// cache) is reported to logf while it runs.
func buildSampleApp(ctx context.Context, version string, broken bool, logf func(string, ...any)) (string, error) {
	out := filepath.Join(BinDir(), "fixtures", "sampleapp-"+version)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	ld := fmt.Sprintf("-s -w -X main.version=%s -X main.broken=%v", version, broken)
	pr := StartProgress(logf, "building the sample app "+version+" (go build ./test/apps/sampleapp)", 5*time.Second)
	defer pr.Stop()
	err := run(ctx, RepoRoot(), []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=readonly"},
		goTool(), "build", "-trimpath", "-buildvcs=false", "-ldflags", ld, "-o", out, "./test/apps/sampleapp")
	return out, err
}

// ProxySourceDir is the Go module of the proxy: Caddy with its standard modules and
// kamal-operator's module (images/kamal-proxy).
func ProxySourceDir() string { return filepath.Join(RepoRoot(), "images", "kamal-proxy") }

// BuildProxy builds the proxy (Caddy CaddyVersion with kamal-operator's module, from
// images/kamal-proxy) as a static binary cached at BinDir()/kamal-proxy/<source hash>/caddy; a
// cached binary is returned at once. The first build takes a few minutes on 2 cores.
func BuildProxy(ctx context.Context) (string, error) { return buildProxy(ctx, nil) }

// buildProxy is BuildProxy; a build (not a cached binary) is reported to logf when it starts and
// every ProgressEvery while it runs.
func buildProxy(ctx context.Context, logf func(string, ...any)) (string, error) {
	src := ProxySourceDir()
	sum, err := hashSources(src)
	if err != nil {
		return "", err
	}
	out := filepath.Join(BinDir(), "kamal-proxy", sum, "caddy")
	if fi, err := os.Stat(out); err == nil && fi.Mode()&0o111 != 0 {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=readonly", "GOWORK=off"}
	if logf != nil {
		logf("building the proxy (caddy %s with kamal_router, images/kamal-proxy): Go modules and compile, a few minutes the first time", CaddyVersion)
	}
	pr := StartProgress(logf, "building the proxy (caddy "+CaddyVersion+")", -1)
	defer pr.Stop()
	if err := run(ctx, src, env, goTool(), "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", out+".tmp", "./cmd/kamal-proxy"); err != nil {
		os.Remove(out + ".tmp")
		return "", err
	}
	return out, os.Rename(out+".tmp", out)
}

// hashSources hashes the Go sources and module files under dir (tests excluded), so a changed
// proxy source builds a new binary.
func hashSources(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := d.Name()
		if !(strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) && name != "go.mod" && name != "go.sum" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// SampleAppImage is the FROM-scratch image of a sampleapp binary: entrypoint /sampleapp, command
// "serve", port 80. Run it with command "worker" for a role without HTTP, and use
// ["CMD", "/sampleapp", "healthcheck"] as a container health check.
func SampleAppImage(bin []byte) Image {
	return Image{
		Files: []File{
			{Path: "/sampleapp", Mode: 0o755, Data: bin},
			{Path: "/tmp", Dir: true, Mode: 0o1777},
		},
		Entrypoint:   []string{"/sampleapp"},
		Cmd:          []string{"serve"},
		ExposedPorts: []string{"80/tcp"},
		Labels:       map[string]string{"org.opencontainers.image.title": "kamal-operator sampleapp"},
	}
}

// ProxyImage is the FROM-scratch image of the proxy binary (Caddy with kamal-operator's module):
// the controller runs it as `caddy run --config <fixed config>` with the admin API on a unix
// socket in a host folder; the route table is saved under /data, a volume, so a restarted
// container keeps its routes. The image's default admin address 0.0.0.0:2019 is never
// published.
func ProxyImage(caddy []byte) Image {
	return Image{
		Files: []File{
			{Path: "/usr/bin/caddy", Mode: 0o755, Data: caddy},
			{Path: "/config/caddy", Dir: true},
			{Path: "/data/caddy", Dir: true},
			{Path: "/etc/caddy", Dir: true},
			{Path: "/tmp", Dir: true, Mode: 0o1777},
		},
		Entrypoint: []string{"/usr/bin/caddy"},
		Cmd:        []string{"run"},
		Env: []string{
			"XDG_CONFIG_HOME=/config",
			"XDG_DATA_HOME=/data",
			"CADDY_ADMIN=0.0.0.0:2019",
		},
		WorkingDir:   "/",
		ExposedPorts: []string{"80/tcp", "443/tcp", "443/udp"},
		Volumes:      []string{"/config", "/data"},
		Labels: map[string]string{
			"org.opencontainers.image.title":   "kamal-operator proxy (Caddy)",
			"org.opencontainers.image.version": CaddyVersion,
		},
	}
}

// Result tells what EnsureFixtures did for one image reference.
type Result struct {
	Ref    string // registry/repo:tag
	Digest string // manifest digest
	Pushed bool   // false: the registry already had it
}

// EnsureFixtures builds every fixture image (sampleapp:v1, :v2, :v3, :broken,
// sampleapp-shell:v1, kamal-proxy:caddy-2.11.9, kamal-proxy:broken, kamal-proxy:legacy and
// postgres:15) and pushes to reg those it does not already hold with the same digest.
func EnsureFixtures(ctx context.Context, reg Registry, logf func(string, ...any)) ([]Result, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	type job struct {
		repo, tag string
		build     func(context.Context) (Image, error)
	}
	var jobs []job
	// Each sample app binary is built once: sampleapp-shell reuses v1's.
	sampleApp := map[string]func() ([]byte, error){}
	for _, tag := range SampleAppTags {
		sampleApp[tag] = sync.OnceValues(func() ([]byte, error) {
			p, err := buildSampleApp(ctx, tag, tag == "broken", logf)
			if err != nil {
				return nil, err
			}
			return os.ReadFile(p)
		})
		jobs = append(jobs, job{SampleAppRepo, tag, func(ctx context.Context) (Image, error) {
			b, err := sampleApp[tag]()
			return SampleAppImage(b), err
		}})
	}
	jobs = append(jobs, job{SampleAppShellRepo, SampleAppShellTag, func(ctx context.Context) (Image, error) {
		busybox, err := EnsureBusybox(ctx, logf)
		if err != nil {
			return Image{}, err
		}
		b, err := sampleApp["v1"]()
		return SampleAppShellImage(b, busybox), err
	}})
	jobs = append(jobs, job{ProxyRepo, ProxyTag, func(ctx context.Context) (Image, error) {
		start := time.Now()
		p, err := buildProxy(ctx, logf)
		if err != nil {
			return Image{}, err
		}
		if d := time.Since(start); d > 5*time.Second {
			logf("built the proxy (caddy %s) in %s", CaddyVersion, d.Round(time.Second))
		}
		b, err := os.ReadFile(p)
		return ProxyImage(b), err
	}})
	jobs = append(jobs, job{ProxyRepo, BrokenProxyTag, func(ctx context.Context) (Image, error) {
		p, err := BuildBrokenProxy(ctx)
		if err != nil {
			return Image{}, err
		}
		b, err := os.ReadFile(p)
		return BrokenProxyImage(b), err
	}})
	jobs = append(jobs, job{ProxyRepo, LegacyProxyTag, func(ctx context.Context) (Image, error) {
		p, err := BuildLegacyProxy(ctx)
		if err != nil {
			return Image{}, err
		}
		b, err := os.ReadFile(p)
		img := ProxyImage(b)
		img.Labels = map[string]string{"org.opencontainers.image.title": "kamal-operator proxy of the release before the route table (test fixture)"}
		return img, err
	}})
	jobs = append(jobs, job{PostgresRepo, PostgresTag, func(ctx context.Context) (Image, error) {
		r, err := EnsurePostgresRootfs(ctx, logf)
		if err != nil {
			return Image{}, err
		}
		return PostgresImage(r), nil
	}})

	results := make([]Result, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			img, err := j.build(ctx)
			if err != nil {
				errs[i] = fmt.Errorf("build %s:%s: %w", j.repo, j.tag, err)
				return
			}
			built, err := img.Build()
			if err != nil {
				errs[i] = fmt.Errorf("build %s:%s: %w", j.repo, j.tag, err)
				return
			}
			pushed, err := reg.Push(ctx, j.repo, j.tag, built)
			if err != nil {
				errs[i] = fmt.Errorf("push %s:%s: %w", j.repo, j.tag, err)
				return
			}
			results[i] = Result{Ref: reg.Addr + "/" + j.repo + ":" + j.tag, Digest: built.ManifestDigest, Pushed: pushed}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return results, err
		}
	}
	return results, nil
}
