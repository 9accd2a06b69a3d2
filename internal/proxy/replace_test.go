package proxy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRouteStateMissing(t *testing.T) {
	before := RouteState{"kamal-a": "app-v1:80", "kamal-b": ""}
	if m := before.Missing(before); len(m) != 0 {
		t.Errorf("the same state misses %v", m)
	}
	more := RouteState{"kamal-a": "app-v1:80", "kamal-b": "", "ns/c/web": "c:80"}
	if m := before.Missing(more); len(m) != 0 {
		t.Errorf("a superset misses %v", m)
	}
	if m, want := before.Missing(RouteState{}), []string{"route kamal-a", "route kamal-b"}; !reflect.DeepEqual(m, want) {
		t.Errorf("missing = %v, want %v", m, want)
	}
	moved := RouteState{"kamal-a": "app-v2:80", "kamal-b": ""}
	if m, want := before.Missing(moved), []string{"upstream kamal-a=app-v1:80"}; !reflect.DeepEqual(m, want) {
		t.Errorf("a changed upstream: missing = %v, want %v", m, want)
	}
	// The owner took an older proxy's route over under its own id before the check.
	takenOver := RouteState{"ns/app/web": "app-v1:80", "kamal-b": ""}
	if m := before.Missing(takenOver); len(m) != 0 {
		t.Errorf("a route taken over under another id misses %v", m)
	}
	if m, want := before.Missing(RouteState{"ns/app/web": "app-v1:80"}), []string{"route kamal-b"}; !reflect.DeepEqual(m, want) {
		t.Errorf("a route without upstream is kept only by its id: missing = %v, want %v", m, want)
	}
}

func TestLastLine(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"one\ntwo\n\n  \n":       "two",
		"  only  ":               "only",
		strings.Repeat("x", 400): strings.Repeat("x", 300) + "…",
	} {
		if got := lastLine(in); got != want {
			t.Errorf("lastLine(%.20q) = %.20q, want %.20q", in, got, want)
		}
	}
}

func TestUpgradeErrorSaysWhatHappened(t *testing.T) {
	e := &UpgradeError{Image: "reg/kamal-proxy:broken", Reason: "exited before its admin API answered", ExitCode: 1,
		LastLog: "cannot start", Restored: true, Outage: 1234 * time.Millisecond}
	for _, want := range []string{"reg/kamal-proxy:broken", "exited", "exit code 1", `"cannot start"`, "old proxy was restored", "1.234s"} {
		if !strings.Contains(e.Error(), want) {
			t.Errorf("%q lacks %q", e.Error(), want)
		}
	}
	untouched := &UpgradeError{Image: "x", Reason: "cannot be pulled", ExitCode: -1, Restored: true}
	if s := untouched.Error(); strings.Contains(s, "exit code") || !strings.Contains(s, "not touched") {
		t.Errorf("%q", s)
	}
	lost := &UpgradeError{Image: "x", Reason: "did not come up", ExitCode: -1, RestoreErr: errors.New("boom")}
	if s := lost.Error(); !strings.Contains(s, "restoring the old proxy failed: boom") {
		t.Errorf("%q", s)
	}
}

func TestIsMissingImage(t *testing.T) {
	if !isMissingImage(errors.New("pulling r/x:1: manifest for r/x:1 not found: manifest unknown")) {
		t.Error("manifest unknown is a missing image")
	}
	if isMissingImage(errors.New("pulling r/x:1: dial tcp 10.0.0.1:5000: connect: connection refused")) {
		t.Error("a registry that does not answer is not a missing image")
	}
}
