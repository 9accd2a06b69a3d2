package controllers

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadHostsBoundsConcurrencyAndKeepsErrorsPerHost(t *testing.T) {
	var servers []string
	for i := range 200 {
		servers = append(servers, fmt.Sprintf("s-%03d", i))
	}
	var now, peak atomic.Int32
	out, errs := readHosts(servers, func(server string) (string, error) {
		n := now.Add(1)
		defer now.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		switch server {
		case "s-007":
			return "", errors.New("connection lost")
		case "s-013":
			panic("a bad host")
		}
		return "read " + server, nil
	})
	if p := peak.Load(); p > hostReadConcurrency || p < 2 {
		t.Errorf("%d reads at once, want 2..%d", p, hostReadConcurrency)
	}
	if len(out) != 198 || out["s-199"] != "read s-199" {
		t.Errorf("%d results, s-199: %q", len(out), out["s-199"])
	}
	if len(errs) != 2 || errs["s-007"] == nil || errs["s-013"] == nil {
		t.Errorf("errors %v", errs)
	}
	if _, ok := out["s-007"]; ok {
		t.Error("a failed read has a result")
	}
}
