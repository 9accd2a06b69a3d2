package images

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kamal-operator/kamal-operator/test/debian"
)

// The sample app with a shell: what `kubectl kamal exec` and `shell` run commands in. It has
// busybox's sh and a few of its applets, and no bash, so shell's fallback to sh is exercised.
const (
	SampleAppShellRepo = "sampleapp-shell"
	SampleAppShellTag  = "v1"
)

// busyboxPackage is Debian's statically linked busybox: it runs in a FROM-scratch image.
const (
	busyboxPackage = "busybox-static"
	busyboxPath    = "/bin/busybox"
)

// BusyboxApplets are the commands linked to busybox in SampleAppShellImage.
var BusyboxApplets = []string{"sh", "env", "echo", "cat", "ls", "sleep", "id", "hostname"}

// printenvScript is /bin/printenv of SampleAppShellImage: Debian's static busybox has no
// printenv applet. It prints the value of each NAME set, and exits 1 when one is not.
const printenvScript = `#!/bin/sh
[ $# -eq 0 ] && exec env
rc=0
for name in "$@"; do
	case $name in
	'' | [0-9]* | *[!A-Za-z0-9_]*) rc=1; continue ;;
	esac
	if eval "[ \"\${$name+set}\" = set ]"; then
		eval "printf '%s\\n' \"\$$name\""
	else
		rc=1
	fi
done
exit $rc
`

// SampleAppShellImage is the sample app (bin) with busybox (/bin/busybox and /bin/<applet>
// links to it) and a printenv. It has no entrypoint and the command "/sampleapp serve", so it runs as the
// sample app does while a command given to a container of it (a one-off's) replaces the whole
// command line rather than becoming the sample app's arguments.
func SampleAppShellImage(bin, busybox []byte) Image {
	img := SampleAppImage(bin)
	img.Files = append(img.Files,
		File{Path: busyboxPath, Mode: 0o755, Data: busybox},
		File{Path: "/bin/printenv", Mode: 0o755, Data: []byte(printenvScript)})
	for _, a := range BusyboxApplets {
		img.Files = append(img.Files, File{Path: "/bin/" + a, Link: "busybox"})
	}
	img.Entrypoint = nil
	img.Cmd = []string{"/sampleapp", "serve"}
	img.Labels = map[string]string{"org.opencontainers.image.title": "kamal-operator sampleapp with busybox sh"}
	return img
}

// EnsureBusybox returns Debian's static busybox, cached as BinDir()/fixtures/busybox-static.
// Without the cache it reads /bin/busybox, installing the package busybox-static with apt-get
// first when that is missing or not statically linked (Debian's other busybox package is not).
func EnsureBusybox(ctx context.Context, logf func(string, ...any)) ([]byte, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dir := filepath.Join(BinDir(), "fixtures")
	cached := filepath.Join(dir, busyboxPackage)
	if b, err := os.ReadFile(cached); err == nil && isStatic(b) == nil {
		return b, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, busyboxPackage+".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if b, err := os.ReadFile(cached); err == nil && isStatic(b) == nil {
		return b, nil // cached by another process meanwhile
	}
	b, err := os.ReadFile(busyboxPath)
	if err != nil || isStatic(b) != nil {
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("installing %s needs root", busyboxPackage)
		}
		logf("installing Debian package %s (for the %s image)", busyboxPackage, SampleAppShellRepo)
		pr := StartProgress(logf, "installing "+busyboxPackage, 5*time.Second)
		err := debian.Install(ctx, nil, busyboxPackage)
		pr.Stop()
		if err != nil {
			return nil, err
		}
		if b, err = os.ReadFile(busyboxPath); err != nil {
			return nil, err
		}
	}
	if err := isStatic(b); err != nil {
		return nil, fmt.Errorf("%s: %w", busyboxPath, err)
	}
	if err := hasApplets(ctx, busyboxPath); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cached+".tmp", b, 0o755); err != nil {
		return nil, err
	}
	return b, os.Rename(cached+".tmp", cached)
}

// hasApplets checks that the busybox at path has every one of BusyboxApplets.
func hasApplets(ctx context.Context, path string) error {
	out, err := exec.CommandContext(ctx, path, "--list").Output()
	if err != nil {
		return fmt.Errorf("%s --list: %w", path, err)
	}
	have := strings.Fields(string(out))
	for _, a := range BusyboxApplets {
		if !slices.Contains(have, a) {
			return fmt.Errorf("%s has no applet %s", path, a)
		}
	}
	return nil
}

// isStatic says b is an x86-64 ELF executable that needs no dynamic loader.
func isStatic(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return err
	}
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("built for %s, not x86-64", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked")
		}
	}
	return nil
}
