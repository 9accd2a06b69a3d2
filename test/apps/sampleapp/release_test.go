package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestReleaseFails(t *testing.T) {
	t.Setenv("APP_VERSION", "v7")
	t.Setenv("RELEASE_FAIL", "1")
	t.Setenv("RELEASE_ECHO", "SECRET_TOKEN")
	t.Setenv("SECRET_TOKEN", "tok-123")
	var out bytes.Buffer
	if code := release(&out); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"release v7: starting", "SECRET_TOKEN is tok-123", "release v7: failed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}
}

func TestReleaseBrokenBuild(t *testing.T) {
	old := broken
	broken = "true"
	defer func() { broken = old }()
	t.Setenv("RELEASE_FAIL", "")
	var out bytes.Buffer
	if code := release(&out); code != 1 || !strings.Contains(out.String(), "failed") {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
}

func TestReleaseWithoutDatabase(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	t.Setenv("RELEASE_FAIL", "")
	var out bytes.Buffer
	if code := release(&out); code != 1 || !strings.Contains(out.String(), "DATABASE_URL is not set") {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
}
