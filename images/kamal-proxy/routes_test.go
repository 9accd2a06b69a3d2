package kamalproxy

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTableSavesAndLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "kamal-routes.json")
	tb, err := NewTable(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Set("a", "app-a-1:80"); err != nil {
		t.Fatal(err)
	}
	if err := tb.Set("b", "app-b-1:3000"); err != nil {
		t.Fatal(err)
	}
	if err := tb.Delete("b"); err != nil {
		t.Fatal(err)
	}
	if err := tb.Delete("missing"); err != nil {
		t.Fatalf("deleting a missing route: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := NewTable(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.All(); len(got) != 1 || got["a"] != "app-a-1:80" {
		t.Fatalf("reloaded routes %v", got)
	}
}

func TestTableRefusesBadUpstreams(t *testing.T) {
	tb, _ := NewTable("")
	for _, up := range []string{"", "app", "app:", ":80", "app:http", "app:80:1"} {
		if err := tb.Set("a", up); err == nil {
			t.Errorf("Set(%q) accepted", up)
		}
	}
	if got := tb.Get("a"); got != "" {
		t.Fatalf("a bad upstream was kept: %q", got)
	}
}

func TestTableCountsInFlightPerUpstream(t *testing.T) {
	tb, _ := NewTable("")
	if up, done := tb.Begin("a"); up != "" {
		t.Fatalf("a route without upstream picked %q", up)
	} else {
		done()
	}
	_ = tb.Set("a", "old:80")
	_, done1 := tb.Begin("a")
	_, done2 := tb.Begin("a")
	_ = tb.Set("a", "new:80")
	up3, done3 := tb.Begin("a")
	if up3 != "new:80" {
		t.Fatalf("after the switch a request went to %q", up3)
	}
	if got := tb.InFlight(); got["old:80"] != 2 || got["new:80"] != 1 {
		t.Fatalf("in flight %v", got)
	}
	done1()
	done2()
	done3()
	if got := tb.InFlight(); len(got) != 0 {
		t.Fatalf("in flight after all done: %v", got)
	}
}
