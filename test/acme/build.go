// Package acmeserver runs a real ACME server for tests: Pebble (Let's Encrypt's test CA) and its
// DNS test server, built from their Go modules and started as child processes.
package acmeserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kamal-operator/kamal-operator/test/images"
)

// PebbleVersion is the version of github.com/letsencrypt/pebble/v2 whose pebble and
// pebble-challtestsrv commands are built.
const PebbleVersion = "v2.10.1"

const pebbleModule = "github.com/letsencrypt/pebble/v2"

// Binaries are the paths of the built commands.
type Binaries struct {
	Pebble       string
	ChallTestSrv string
}

// BinariesDir is where the commands of PebbleVersion are cached: BinDir()/acme/<version>.
func BinariesDir() string { return filepath.Join(images.BinDir(), "acme", PebbleVersion) }

// Build builds pebble and pebble-challtestsrv from the Go module proxy into BinariesDir(), or
// returns the cached binaries at once. The first build takes a minute or less; logf (may be nil)
// hears about it while it runs.
func Build(ctx context.Context, logf func(string, ...any)) (Binaries, error) {
	dir := BinariesDir()
	bins := Binaries{Pebble: filepath.Join(dir, "pebble"), ChallTestSrv: filepath.Join(dir, "pebble-challtestsrv")}
	if executable(bins.Pebble) && executable(bins.ChallTestSrv) {
		return bins, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return bins, err
	}
	// Built into a fresh directory renamed into place, so that test packages building at the
	// same time never see half a binary.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".build-"+PebbleVersion+"-")
	if err != nil {
		return bins, err
	}
	defer os.RemoveAll(tmp)
	pr := images.StartProgress(logf, "building pebble "+PebbleVersion+" and pebble-challtestsrv (go install)", 5*time.Second)
	defer pr.Stop()
	args := []string{"install", "-trimpath", "-ldflags", "-s -w",
		pebbleModule + "/cmd/pebble@" + PebbleVersion,
		pebbleModule + "/cmd/pebble-challtestsrv@" + PebbleVersion}
	cmd := exec.CommandContext(ctx, goTool(), args...)
	// Outside any module, so that the project's go.mod and workspace play no part.
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return bins, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return bins, err
	}
	if err := os.Rename(tmp, dir); err != nil && !(executable(bins.Pebble) && executable(bins.ChallTestSrv)) {
		return bins, err
	}
	return bins, nil
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
