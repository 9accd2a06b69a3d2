package acme

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Backoff after failed orders: FirstBackoff after the first, doubling up to MaxBackoff.
const (
	FirstBackoff = time.Minute
	MaxBackoff   = time.Hour
)

// NormalizeNames is names lower-cased, without a trailing dot, sorted and without repeats or
// empty names: the form in which two sets of host names compare.
func NormalizeNames(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		n = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
		if n != "" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// RenewAt is when a certificate valid from notBefore to notAfter is renewed: at two thirds of
// its lifetime, as Let's Encrypt advises (60 of 90 days), leaving a third for failed orders to be
// retried.
func RenewAt(notBefore, notAfter time.Time) time.Time {
	return notBefore.Add(notAfter.Sub(notBefore) * 2 / 3)
}

// NeedsOrder reports whether a certificate for want must be ordered, given the current chain
// (PEM, leaf first; nil if there is none), and why: no certificate, one that cannot be read,
// other names, or renewal due.
func NeedsOrder(chainPEM []byte, want []string, now time.Time) (bool, string) {
	if len(chainPEM) == 0 {
		return true, "no certificate"
	}
	leaf, err := Leaf(chainPEM)
	if err != nil {
		return true, "the certificate cannot be read: " + err.Error()
	}
	have, want := NormalizeNames(leaf.DNSNames), NormalizeNames(want)
	if !slices.Equal(have, want) {
		return true, fmt.Sprintf("host names changed: the certificate is for %s, wanted %s",
			strings.Join(have, ", "), strings.Join(want, ", "))
	}
	if at := RenewAt(leaf.NotBefore, leaf.NotAfter); !now.Before(at) {
		return true, fmt.Sprintf("renewal due since %s (expires %s)",
			at.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return false, ""
}

// Backoff is how long to wait after the given number of consecutive failed orders (1 for the
// first): FirstBackoff, doubling, at most MaxBackoff.
func Backoff(failures int) time.Duration {
	if failures < 1 {
		return 0
	}
	d := FirstBackoff
	for i := 1; i < failures && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

// RetryAt is when the next order may be made after the failures-th consecutive failure at
// failedAt: after Backoff(failures), or later if the CA asked for a longer wait (retryAfter,
// e.g. a rate limit's).
func RetryAt(failedAt time.Time, failures int, retryAfter time.Duration) time.Time {
	return failedAt.Add(max(Backoff(failures), retryAfter))
}

// Leaf is the first certificate of a PEM chain.
func Leaf(chainPEM []byte) (*x509.Certificate, error) {
	rest := chainPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

func encodeCerts(der [][]byte) []byte {
	var out []byte
	for _, d := range der {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	return out
}
