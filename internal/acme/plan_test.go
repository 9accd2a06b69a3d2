package acme

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestRenewAt(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, want := RenewAt(nb, nb.Add(90*24*time.Hour)), nb.Add(60*24*time.Hour); !got.Equal(want) {
		t.Errorf("90 days: renew at %s, want %s", got, want)
	}
	if got, want := RenewAt(nb, nb.Add(3*time.Minute)), nb.Add(2*time.Minute); !got.Equal(want) {
		t.Errorf("3 minutes: renew at %s, want %s", got, want)
	}
}

func TestNormalizeNames(t *testing.T) {
	got := NormalizeNames([]string{"WWW.example.com.", "example.com", " www.example.com", ""})
	if strings.Join(got, ",") != "example.com,www.example.com" {
		t.Errorf("got %q", got)
	}
}

// selfSigned is a PEM certificate for names valid from nb to na.
func selfSigned(t *testing.T, names []string, nb, na time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: names, NotBefore: nb, NotAfter: na}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestNeedsOrder(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(90 * 24 * time.Hour)
	cert := selfSigned(t, []string{"b.example.com", "a.example.com"}, nb, na)
	names := []string{"a.example.com", "B.example.com"}
	day := 24 * time.Hour
	for _, tc := range []struct {
		name   string
		chain  []byte
		want   []string
		now    time.Time
		order  bool
		reason string
	}{
		{"no certificate", nil, names, nb, true, "no certificate"},
		{"garbage", []byte("not a certificate"), names, nb, true, "cannot be read"},
		{"fresh, same names in another order and case", cert, names, nb.Add(day), false, ""},
		{"a day before renewal", cert, names, nb.Add(59 * day), false, ""},
		{"renewal due", cert, names, nb.Add(60 * day), true, "renewal due since 2026-03-02T00:00:00Z"},
		{"expired", cert, names, na.Add(day), true, "renewal due"},
		{"name added", cert, append(names, "c.example.com"), nb.Add(day), true, "wanted a.example.com, b.example.com, c.example.com"},
		{"name removed", cert, names[:1], nb.Add(day), true, "host names changed: the certificate is for a.example.com, b.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			order, reason := NeedsOrder(tc.chain, tc.want, tc.now)
			if order != tc.order || !strings.Contains(reason, tc.reason) || (!order && reason != "") {
				t.Errorf("NeedsOrder = %v, %q; want %v, %q", order, reason, tc.order, tc.reason)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for failures, want := range map[int]time.Duration{
		0: 0, 1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 6: 32 * time.Minute,
		7: time.Hour, 8: time.Hour, 1000: time.Hour,
	} {
		if got := Backoff(failures); got != want {
			t.Errorf("Backoff(%d) = %s, want %s", failures, got, want)
		}
	}
}

func TestRetryAt(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := RetryAt(at, 2, 0); !got.Equal(at.Add(2 * time.Minute)) {
		t.Errorf("backoff: %s", got)
	}
	if got := RetryAt(at, 2, 3*time.Hour); !got.Equal(at.Add(3 * time.Hour)) {
		t.Errorf("the CA's longer Retry-After: %s", got)
	}
	if got := RetryAt(at, 7, 10*time.Second); !got.Equal(at.Add(time.Hour)) {
		t.Errorf("a shorter Retry-After than the backoff: %s", got)
	}
}

func TestLeafSkipsOtherBlocks(t *testing.T) {
	nb := time.Now()
	cert := selfSigned(t, []string{"x.example.com"}, nb, nb.Add(time.Hour))
	chain := append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"), cert...)
	leaf, err := Leaf(chain)
	if err != nil || leaf.DNSNames[0] != "x.example.com" {
		t.Fatalf("Leaf = %v, %v", leaf, err)
	}
	if _, err := Leaf(nil); err == nil {
		t.Error("Leaf(nil) succeeded")
	}
}
