package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kamal-operator/kamal-operator/test/debian"
)

// The PostgreSQL fixture image: Debian bookworm's postgresql-15 on a debootstrap root (variant
// minbase), one layer holding the whole root filesystem, like `docker import` makes.
const (
	PostgresMajor = "15"
	PostgresUID   = 999 // uid and gid of the user postgres in the image (as in the official image)

	postgresSuite      = "bookworm"
	defaultMirror      = "http://deb.debian.org/debian"
	postgresEntrypoint = "/usr/local/bin/docker-entrypoint.sh"
)

// postgresEntrypointScript is the image's entrypoint (see its header for what it does).
//
//go:embed postgres/docker-entrypoint.sh
var postgresEntrypointScript []byte

// postgresPackages are installed on the minbase root (with their dependencies, no recommends).
var postgresPackages = []string{"postgresql-" + PostgresMajor}

// postgresSetup runs in the chroot after debootstrap. The user postgres is made first with the
// official image's uid/gid, and Debian's automatic "main" cluster is turned off before the server
// package is installed (the entrypoint makes the cluster in $PGDATA).
var postgresSetup = `set -eu
groupadd --system --gid ` + fmt.Sprint(PostgresUID) + ` postgres
useradd --system --uid ` + fmt.Sprint(PostgresUID) + ` --gid postgres --home-dir /var/lib/postgresql \
	--shell /bin/bash --comment 'PostgreSQL administrator' postgres
mkdir -p /var/lib/postgresql
chown postgres:postgres /var/lib/postgresql
apt-get update
apt-get install -y --no-install-recommends postgresql-common
sed -ri 's/#(create_main_cluster) .*$/\1 = false/' /etc/postgresql-common/createcluster.conf
grep -q '^create_main_cluster = false' /etc/postgresql-common/createcluster.conf
apt-get install -y --no-install-recommends "$@"
apt-get clean
mkdir -p /var/lib/postgresql/data /docker-entrypoint-initdb.d /var/run/postgresql
chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql
chmod 0700 /var/lib/postgresql/data
chmod 2775 /var/run/postgresql
test -x /usr/lib/postgresql/` + PostgresMajor + `/bin/postgres
test -x /usr/lib/postgresql/` + PostgresMajor + `/bin/initdb
command -v setpriv >/dev/null
test ! -e /var/lib/postgresql/` + PostgresMajor + `/main
dpkg-query -W -f '${Version}\n' postgresql-` + PostgresMajor + ` >/postgres-version
`

// dpkg leaves out documentation, manuals and translations of every package installed after
// debootstrap (and the image keeps this setting, like Debian's slim images). PostgreSQL's own
// manuals (/usr/share/postgresql/15/man) are installed, as update-alternatives needs them, and
// deleted afterwards.
//
// It also leaves out PostgreSQL's JIT compiler: the LLVM and Z3 libraries (libllvm14, libz3-4:
// 135 MB of the 375) and the llvmjit provider with its bitcode. The packages stay installed for
// dpkg and apt; the server finds no JIT provider and runs every query without JIT (as with
// jit = off), which changes nothing but the speed of very large analytical queries.
const dpkgNoDocs = `# kamal-operator PostgreSQL image: no documentation, manuals or translations
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
# no JIT: PostgreSQL disables it when its provider is missing
path-exclude=/usr/lib/x86_64-linux-gnu/libLLVM-*
path-exclude=/usr/lib/x86_64-linux-gnu/libz3.so*
path-exclude=/usr/lib/postgresql/*/lib/llvmjit*
path-exclude=/usr/lib/postgresql/*/lib/bitcode/*
`

// PostgresRootfs is the cached root filesystem of the PostgreSQL image.
type PostgresRootfs struct {
	Key          string    `json:"key"`     // hash of what the root is made of
	Version      string    `json:"version"` // the postgresql-15 package version installed
	Layer        LayerFile `json:"layer"`
	Uncompressed int64     `json:"uncompressed"` // size of the tar
	Built        time.Time `json:"built"`
	BuildTime    string    `json:"buildTime"`
}

func postgresKey() string {
	h := sha256.New()
	fmt.Fprintf(h, "suite %s\nvariant minbase\npackages %s\nsetup\n%s\ndpkg\n%s\nentrypoint\n%s\n",
		postgresSuite, strings.Join(postgresPackages, " "), postgresSetup, dpkgNoDocs, postgresEntrypointScript)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// PostgresImage is the image of a PostgreSQL root filesystem: entrypoint
// /usr/local/bin/docker-entrypoint.sh (run as root; it drops to the user postgres), command
// "postgres", PGDATA=/var/lib/postgresql/data, port 5432, stop signal SIGINT (fast shutdown).
func PostgresImage(r *PostgresRootfs) Image {
	layer := r.Layer
	return Image{
		Layer:      &layer,
		Entrypoint: []string{postgresEntrypoint},
		Cmd:        []string{"postgres"},
		Env: []string{
			"PATH=/usr/lib/postgresql/" + PostgresMajor + "/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"PG_MAJOR=" + PostgresMajor,
			"PGDATA=/var/lib/postgresql/data",
			"LANG=C.UTF-8",
		},
		User:         "root",
		ExposedPorts: []string{"5432/tcp"},
		StopSignal:   "SIGINT",
		Labels: map[string]string{
			"org.opencontainers.image.title":   "kamal-operator PostgreSQL " + PostgresMajor + " (Debian " + postgresSuite + ")",
			"org.opencontainers.image.version": r.Version,
		},
	}
}

// EnsurePostgresRootfs returns the root filesystem of the PostgreSQL image, cached as
// BinDir()/fixtures/postgres-15-rootfs-<key>.tar.gz (+ .json with its digests), where key is a hash
// of the package list, the setup script and the entrypoint. Without it, it builds one: debootstrap
// (installed with apt-get when missing) of bookworm/minbase from the machine's apt mirror, then
// postgresql-15 installed with apt-get in a chroot, documentation and apt's caches dropped, as one
// gzipped tar. It needs root. Concurrent callers (other processes too) build it once.
func EnsurePostgresRootfs(ctx context.Context, logf func(string, ...any)) (*PostgresRootfs, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dir := filepath.Join(BinDir(), "fixtures")
	base := filepath.Join(dir, "postgres-"+PostgresMajor+"-rootfs-"+postgresKey())
	if r, err := readPostgresRootfs(base); err == nil {
		return r, nil
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("building the PostgreSQL root filesystem needs root (debootstrap, chroot)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Another process may be building it: say so while waiting.
	wait := StartProgress(logf, "waiting for another process that builds the PostgreSQL root filesystem", 3*time.Second)
	unlock, err := lockFile(ctx, filepath.Join(dir, "postgres-"+PostgresMajor+".lock"))
	wait.Stop()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if r, err := readPostgresRootfs(base); err == nil {
		return r, nil // built by another process meanwhile
	}
	start := time.Now()
	logf("building the PostgreSQL %s root filesystem (debootstrap %s/minbase), a few minutes", PostgresMajor, postgresSuite)
	r, err := buildPostgresRootfs(ctx, dir, base, logf)
	if err != nil {
		return nil, fmt.Errorf("postgres root filesystem: %w", err)
	}
	logf("built the PostgreSQL root filesystem %s in %s: %.1f MB gzipped, %.1f MB as tar",
		r.Version, time.Since(start).Round(time.Second), float64(r.Layer.Size)/1e6, float64(r.Uncompressed)/1e6)
	// Older builds (another key) are not needed any more.
	old, _ := filepath.Glob(filepath.Join(dir, "postgres-"+PostgresMajor+"-rootfs-*"))
	for _, p := range old {
		if !strings.HasPrefix(p, base+".") {
			os.Remove(p)
		}
	}
	return r, nil
}

func readPostgresRootfs(base string) (*PostgresRootfs, error) {
	b, err := os.ReadFile(base + ".json")
	if err != nil {
		return nil, err
	}
	var r PostgresRootfs
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	r.Layer.Path = base + ".tar.gz"
	fi, err := os.Stat(r.Layer.Path)
	if err != nil {
		return nil, err
	}
	if fi.Size() != r.Layer.Size || r.Layer.Digest == "" || r.Layer.DiffID == "" {
		return nil, fmt.Errorf("%s: size %d, recorded %d", r.Layer.Path, fi.Size(), r.Layer.Size)
	}
	return &r, nil
}

// lockFile takes an exclusive flock on path, waiting (until ctx ends) while another process has it.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func buildPostgresRootfs(ctx context.Context, dir, base string, logf func(string, ...any)) (*PostgresRootfs, error) {
	t0 := time.Now()
	pr := StartProgress(logf, "building the PostgreSQL root filesystem", -1)
	defer pr.Stop()
	pr.Phase("installing debootstrap")
	if err := ensureDebootstrap(ctx, logf); err != nil {
		return nil, err
	}
	src := aptSources()
	proxy := aptProxy(ctx)
	root, err := os.MkdirTemp(dir, ".postgres-root-")
	if err != nil {
		return nil, err
	}
	defer removeRoot(root, logf)
	if err := os.Chmod(root, 0o755); err != nil { // the chroot's "/": apt's _apt and postgres go through it
		return nil, err
	}
	buildLog := base + ".build.log"
	lf, err := os.Create(buildLog)
	if err != nil {
		return nil, err
	}
	defer lf.Close()

	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C",
		"DEBIAN_FRONTEND=noninteractive", "HOME=/root"}
	if proxy != "" {
		env = append(env, "http_proxy="+proxy)
	}
	// Every mount debootstrap makes in the root (proc, sys) lives in a private mount namespace
	// that ends with it, whatever happens to it.
	args := []string{"--mount", "--propagation", "private", "--", "debootstrap", "--variant=minbase", "--arch=amd64"}
	if strings.HasPrefix(src.main, "https:") {
		args = append(args, "--include=ca-certificates")
	}
	args = append(args, postgresSuite, root, src.main)
	pr.Phase("debootstrap " + postgresSuite + "/minbase")
	if err := runLog(ctx, lf, env, "unshare", args...); err != nil {
		return nil, fmt.Errorf("debootstrap (log %s): %w", buildLog, err)
	}
	logf("debootstrap %s/minbase from %s took %s", postgresSuite, src.main, time.Since(t0).Round(time.Second))

	t1 := time.Now()
	list := "deb " + src.main + " " + postgresSuite + " main\n"
	if src.updates != "" {
		list += "deb " + src.updates + " " + postgresSuite + "-updates main\n"
	}
	if src.security != "" {
		list += "deb " + src.security + " " + postgresSuite + "-security main\n"
	}
	resolv, _ := os.ReadFile("/etc/resolv.conf")
	writes := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{"etc/apt/sources.list", []byte(list), 0o644},
		{"etc/resolv.conf", resolv, 0o644},
		{"usr/sbin/policy-rc.d", []byte("#!/bin/sh\nexit 101\n"), 0o755},
		{"etc/dpkg/dpkg.cfg.d/01-nodoc", []byte(dpkgNoDocs), 0o644},
	}
	if proxy != "" {
		writes = append(writes, struct {
			path string
			data []byte
			mode os.FileMode
		}{"etc/apt/apt.conf.d/99build-proxy", []byte(fmt.Sprintf("Acquire::http::Proxy %q;\n", proxy)), 0o644})
	}
	for _, w := range writes {
		p := filepath.Join(root, w.path)
		os.Remove(p) // e.g. a symlink
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, w.data, w.mode); err != nil {
			return nil, err
		}
	}
	// unshare … sh -c '…' sh ROOT SCRIPT PKG…: proc is mounted in the root for apt and dpkg, in a
	// mount namespace of its own, then SCRIPT runs in the chroot with the packages as arguments.
	chroot := append([]string{"--mount", "--propagation", "private", "--", "sh", "-c",
		`root=$1 script=$2; shift 2; mount -t proc proc "$root/proc" && exec chroot "$root" /bin/sh -c "$script" setup "$@"`,
		"sh", root, postgresSetup}, postgresPackages...)
	pr.Phase("apt-get install " + strings.Join(postgresPackages, " ") + " in the chroot")
	if err := runLog(ctx, lf, env, "unshare", chroot...); err != nil {
		return nil, fmt.Errorf("installing %s in the chroot (log %s): %w", strings.Join(postgresPackages, " "), buildLog, err)
	}
	logf("apt-get install %s took %s", strings.Join(postgresPackages, " "), time.Since(t1).Round(time.Second))

	version, err := os.ReadFile(filepath.Join(root, "postgres-version"))
	if err != nil {
		return nil, err
	}
	if err := slimRoot(root); err != nil {
		return nil, err
	}
	ep := filepath.Join(root, strings.TrimPrefix(postgresEntrypoint, "/"))
	if err := os.MkdirAll(filepath.Dir(ep), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(ep, postgresEntrypointScript, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(ep, 0o755); err != nil {
		return nil, err
	}

	t2 := time.Now()
	pr.Phase("writing the rootfs tar.gz")
	tmp := base + ".tar.gz.tmp"
	layer, raw, err := writeRootfsLayer(root, tmp)
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	logf("rootfs tar.gz written in %s", time.Since(t2).Round(time.Second))
	layer.Path = base + ".tar.gz"
	r := &PostgresRootfs{Key: postgresKey(), Version: strings.TrimSpace(string(version)), Layer: *layer,
		Uncompressed: raw, Built: time.Now().UTC().Truncate(time.Second), BuildTime: time.Since(t0).Round(time.Second).String()}
	meta, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, base+".tar.gz"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(base+".json.tmp", meta, 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(base+".json.tmp", base+".json"); err != nil {
		return nil, err
	}
	return r, nil
}

// slimRoot drops what a container does not need: apt's lists and caches, documentation, manuals,
// translations, locale sources, logs, and the build's own files (policy-rc.d, resolv.conf, proxy
// setting).
func slimRoot(root string) error {
	globs := []string{
		"var/lib/apt/lists/*", "var/cache/apt/*", "var/cache/debconf/*-old", "var/cache/ldconfig/aux-cache",
		"var/log/*.log", "var/log/apt/*", "var/lib/dpkg/*-old",
		"usr/share/man/*", "usr/share/info/*", "usr/share/locale/*", "usr/share/lintian/*",
		"usr/share/postgresql/*/man/*",
		// locale sources: the image uses C.UTF-8 (built into glibc), it does not run locale-gen
		"usr/share/i18n/locales/*", "usr/share/i18n/charmaps/*",
		"tmp/*", "var/tmp/*", "root/.*history",
		"usr/sbin/policy-rc.d", "etc/resolv.conf", "etc/apt/apt.conf.d/99build-proxy", "postgres-version",
	}
	for _, g := range globs {
		ms, err := filepath.Glob(filepath.Join(root, g))
		if err != nil {
			return err
		}
		for _, m := range ms {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	// Documentation: only the copyright files stay.
	docs := filepath.Join(root, "usr/share/doc")
	return filepath.WalkDir(docs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if p == docs {
			return nil
		}
		if d.IsDir() {
			if filepath.Dir(p) != docs {
				return os.RemoveAll(p) // deeper folders: examples and the like
			}
			return nil
		}
		if filepath.Base(p) != "copyright" || filepath.Dir(filepath.Dir(p)) != docs {
			return os.Remove(p)
		}
		return nil
	})
}

// writeRootfsLayer writes root as a gzipped tar to out (numeric owners, modes, times to the
// second, symlinks, hard links; the contents of /dev, /proc, /sys and /tmp left out) and returns
// it as a LayerFile plus the size of the uncompressed tar.
func writeRootfsLayer(root, out string) (*LayerFile, int64, error) {
	f, err := os.Create(out)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	gzHash, tarHash := sha256.New(), sha256.New()
	gzCount, tarCount := &counter{h: gzHash}, &counter{h: tarHash}
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := gzip.NewWriterLevel(io.MultiWriter(bw, gzCount), gzip.DefaultCompression)
	if err != nil {
		return nil, 0, err
	}
	tw := tar.NewWriter(io.MultiWriter(zw, tarCount))
	skipContents := map[string]bool{"dev": true, "proc": true, "sys": true, "tmp": true}
	links := map[uint64]string{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		if skipContents[filepath.Dir(rel)] || strings.HasPrefix(rel, "dev/") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSocket != 0 {
			return nil
		}
		var target string
		if fi.Mode()&fs.ModeSymlink != 0 {
			if target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, target)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uname, h.Gname = "", ""
		h.ModTime = fi.ModTime().Truncate(time.Second)
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		h.Format = tar.FormatPAX
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			if first, ok := links[st.Ino]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
			} else {
				links[st.Ino] = h.Name
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if h.Typeflag == tar.TypeReg && h.Size > 0 {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	for _, c := range []io.Closer{tw, zw} {
		if err := c.Close(); err != nil {
			return nil, 0, err
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, 0, err
	}
	if err := f.Sync(); err != nil {
		return nil, 0, err
	}
	return &LayerFile{Path: out, Size: gzCount.n, Digest: "sha256:" + hex.EncodeToString(gzHash.Sum(nil)),
		DiffID: "sha256:" + hex.EncodeToString(tarHash.Sum(nil))}, tarCount.n, nil
}

type counter struct {
	h hash.Hash
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// removeRoot deletes the build root, unless something is still mounted inside it (then it is
// left for a look, never deleted through a mount).
func removeRoot(root string, logf func(string, ...any)) {
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(mi), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && (f[4] == root || strings.HasPrefix(f[4], root+"/")) {
				logf("not removing %s: %s is mounted", root, f[4])
				return
			}
		}
	}
	if err := os.RemoveAll(root); err != nil {
		logf("removing %s: %v", root, err)
	}
}

// runLog runs name args with env (only), its output appended to w; an error carries the output's
// tail. The command runs in its own process group, all of which is killed when ctx ends.
func runLog(ctx context.Context, w io.Writer, env []string, name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdout = io.MultiWriter(w, &out)
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	fmt.Fprintf(w, "\n$ %s %s\n", name, strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		t := out.String()
		if len(t) > 4000 {
			t = t[len(t)-4000:]
		}
		return fmt.Errorf("%s %s: %w\n%s", name, args[0], err, t)
	}
	return nil
}

// ensureDebootstrap installs debootstrap (and the Debian archive keyring it checks the mirror
// with) with apt-get when either is missing.
func ensureDebootstrap(ctx context.Context, logf func(string, ...any)) error {
	var pkgs []string
	if _, err := os.Stat("/usr/sbin/debootstrap"); err != nil {
		pkgs = append(pkgs, "debootstrap")
	}
	if _, err := os.Stat("/usr/share/keyrings/debian-archive-keyring.gpg"); err != nil {
		pkgs = append(pkgs, "debian-archive-keyring")
	}
	if len(pkgs) == 0 {
		return nil
	}
	logf("installing Debian packages: %s", strings.Join(pkgs, " "))
	if err := debian.Install(ctx, nil, pkgs...); err != nil {
		return err
	}
	if _, err := os.Stat("/usr/sbin/debootstrap"); err != nil {
		return fmt.Errorf("debootstrap still missing after apt-get install: %w", err)
	}
	return nil
}

type debianSources struct{ main, updates, security string }

// aptSources finds this machine's Debian mirrors for bookworm, bookworm-updates and
// bookworm-security in /etc/apt/sources.list, sources.list.d/*.list and *.sources (deb822).
func aptSources() debianSources { return aptSourcesIn("/etc/apt") }

func aptSourcesIn(etc string) debianSources {
	type entry struct{ uri, suite string }
	var entries []entry
	add := func(types, uris, suites, comps []string) {
		if !slices.Contains(types, "deb") || !slices.Contains(comps, "main") {
			return
		}
		for _, u := range uris {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				continue
			}
			for _, s := range suites {
				entries = append(entries, entry{strings.TrimSuffix(u, "/"), s})
			}
		}
	}
	files := []string{filepath.Join(etc, "sources.list")}
	l, _ := filepath.Glob(filepath.Join(etc, "sources.list.d", "*.list"))
	files = append(files, l...)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.Index(line, "#"); i >= 0 {
				line = line[:i]
			}
			// drop [ options ]
			if i := strings.Index(line, "["); i >= 0 {
				if j := strings.Index(line[i:], "]"); j >= 0 {
					line = line[:i] + line[i+j+1:]
				}
			}
			f := strings.Fields(line)
			if len(f) >= 4 {
				add(f[:1], f[1:2], f[2:3], f[3:])
			}
		}
	}
	s, _ := filepath.Glob(filepath.Join(etc, "sources.list.d", "*.sources"))
	for _, p := range s {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, stanza := range strings.Split(string(b), "\n\n") {
			fields := map[string][]string{}
			for _, line := range strings.Split(stanza, "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "#") {
					continue
				}
				k, v, ok := strings.Cut(line, ":")
				if ok && !strings.HasPrefix(line, " ") {
					fields[strings.ToLower(k)] = strings.Fields(v)
				}
			}
			if e := fields["enabled"]; len(e) == 1 && e[0] == "no" {
				continue
			}
			add(fields["types"], fields["uris"], fields["suites"], fields["components"])
		}
	}
	var r debianSources
	for _, e := range entries {
		switch {
		case e.suite == postgresSuite && r.main == "":
			r.main = e.uri
		case e.suite == postgresSuite+"-updates" && r.updates == "":
			r.updates = e.uri
		case e.suite == postgresSuite+"-security" && r.security == "":
			r.security = e.uri
		}
	}
	if r.main == "" {
		r.main = defaultMirror
	}
	if r.updates == "" {
		r.updates = r.main
	}
	return r
}

// aptProxy is apt's Acquire::http::Proxy setting on this machine, if any.
func aptProxy(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "apt-config", "shell", "P", "Acquire::http::Proxy").Output()
	if err != nil {
		return ""
	}
	v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "P="))
	v = strings.Trim(v, "'\"")
	if strings.HasPrefix(v, "http://") || strings.HasPrefix(v, "https://") {
		return v
	}
	return ""
}
