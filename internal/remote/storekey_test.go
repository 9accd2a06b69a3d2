package remote

import (
	"regexp"
	"testing"
)

// validConfigMapKey is the apiserver's rule for ConfigMap data keys.
var validConfigMapKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

func TestStoreKey(t *testing.T) {
	for _, tc := range []struct {
		address string
		port    int
		want    string
	}{
		{"10.231.0.11", 22, "10.231.0.11_22"},
		{"185.194.123.12", 2222, "185.194.123.12_2222"},
		{"Web-1.Example.COM", 22, "web-1.example.com_22"},
		{"web-1.example.com.", 22, "web-1.example.com_22"},
		{"2001:db8::1", 22, "2001_db8__1_22"},
		{"2001:DB8:0:0::1", 22, "2001_db8__1_22"}, // the same address, canonical form
		{"[2001:db8::1]", 22, "2001_db8__1_22"},
		{"::ffff:10.0.0.5", 22, "10.0.0.5_22"},
		{"::1", 22, "__1_22"},
	} {
		got, err := StoreKey(tc.address, tc.port)
		if err != nil || got != tc.want {
			t.Errorf("StoreKey(%q, %d) = %q, %v; want %q", tc.address, tc.port, got, err, tc.want)
		}
		if !validConfigMapKey.MatchString(got) || len(got) > 253 {
			t.Errorf("StoreKey(%q, %d) = %q is not a valid ConfigMap key", tc.address, tc.port, got)
		}
	}
	// Distinct address:port pairs that a naive "replace ':' by '_'" of "address:port" would
	// merge, and the other way round, keep distinct keys.
	seen := map[string]string{}
	for _, ap := range []struct {
		a string
		p int
	}{{"2001:db8::1", 22}, {"2001:db8::1:22", 22}, {"2001:db8::", 122}, {"10.0.0.1", 22}, {"10.0.0.12", 2}, {"10.0.0.1", 222}} {
		k, err := StoreKey(ap.a, ap.p)
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := seen[k]; dup {
			t.Errorf("%s:%d and %s share the key %q", ap.a, ap.p, prev, k)
		}
		seen[k] = ap.a
	}
	for _, bad := range []struct {
		a string
		p int
	}{{"", 22}, {"10.0.0.1", 0}, {"10.0.0.1", 70000}, {"fe80::1%eth0", 22}, {"host name", 22}, {"host_1", 22}, {"a/b", 22}} {
		if k, err := StoreKey(bad.a, bad.p); err == nil {
			t.Errorf("StoreKey(%q, %d) = %q, want an error", bad.a, bad.p, k)
		}
	}
}
