package metrics

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kamal-operator/kamal-operator/internal/remote"
)

func TestDialResult(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{&remote.HostKeyMismatchError{Address: "10.0.0.1:22", Fingerprint: "SHA256:x"}, "host_key_rejected"},
		{fmt.Errorf("ssh 10.0.0.1:22: %w", &remote.HostKeyMismatchError{Address: "10.0.0.1:22"}), "host_key_rejected"},
		{errors.New("ssh 10.0.0.1:22: ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey]"), "auth_failed"},
		{fmt.Errorf("ssh 10.0.0.1:22: %w", context.DeadlineExceeded), "timeout"},
		{errors.New("dial tcp 10.0.0.1:22: connect: connection refused"), "error"},
	} {
		if got := dialResult(tc.err); got != tc.want {
			t.Errorf("dialResult(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestServersGauge(t *testing.T) {
	SetServer("t-servers", "a", "True", "Reconciled")
	SetServer("t-servers", "b", "True", "Reconciled")
	SetServer("t-servers", "c", "False", "Unreachable")
	if got := testutil.ToFloat64(servers.WithLabelValues("t-servers", "True", "Reconciled")); got != 2 {
		t.Fatalf("ready servers = %v, want 2", got)
	}
	SetServer("t-servers", "b", "False", "Unreachable")
	SetServer("t-servers", "b", "False", "Unreachable") // unchanged: counted once
	if got := testutil.ToFloat64(servers.WithLabelValues("t-servers", "False", "Unreachable")); got != 2 {
		t.Fatalf("unreachable servers = %v, want 2", got)
	}
	ForgetServer("t-servers", "a")
	ForgetServer("t-servers", "a")
	// The series of a combination no Server has any more goes.
	if n := testutil.CollectAndCount(servers); n != 1 {
		t.Fatalf("%d series, want 1", n)
	}
}

func TestCertificateExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := &certCollector{now: func() time.Time { return now }, notAfter: map[[2]string]time.Time{},
		expiry: certificates.expiry, deadline: certificates.deadline}
	c.notAfter[[2]string{"ns", "app"}] = now.Add(90 * 24 * time.Hour)
	if n := testutil.CollectAndCount(c, Prefix+"certificate_expiry_seconds"); n != 1 {
		t.Fatalf("%d expiry series, want 1", n)
	}
	now = now.Add(24 * time.Hour) // computed at scrape time
	if got := testutil.ToFloat64(onlyExpiry{c}); got != (89 * 24 * time.Hour).Seconds() {
		t.Fatalf("expiry = %v, want 89 days", got)
	}
	c.forget("ns", "app")
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Fatalf("%d series after forget, want 0", n)
	}
}

// onlyExpiry collects the expiry gauge of a certCollector alone.
type onlyExpiry struct{ c *certCollector }

func (o onlyExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- o.c.expiry }
func (o onlyExpiry) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 16)
	o.c.Collect(all)
	close(all)
	for m := range all {
		if m.Desc() == o.c.expiry {
			ch <- m
		}
	}
}
