package acmeserver_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kamal-operator/kamal-operator/internal/acme"
	acmeserver "github.com/kamal-operator/kamal-operator/test/acme"
)

// responder answers HTTP-01 challenges from the answers published to it, as the proxies on the
// hosts do, and records which host names the CA asked for.
type responder struct {
	mu      sync.Mutex
	answers map[string]string
	asked   map[string]int
}

func (r *responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	token, ok := strings.CutPrefix(req.URL.Path, "/.well-known/acme-challenge/")
	r.mu.Lock()
	answer, found := r.answers[token]
	host, _, err := net.SplitHostPort(req.Host)
	if err != nil {
		host = req.Host
	}
	r.asked[host]++
	r.mu.Unlock()
	if !ok || !found {
		http.NotFound(w, req)
		return
	}
	w.Write([]byte(answer))
}

func (r *responder) publish(token, keyAuth string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers[token] = keyAuth
	return nil
}

func (r *responder) unpublish(token string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.answers, token)
}

func (r *responder) state() (answers int, asked map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.answers), maps(r.asked)
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestObtainFromPebble orders certificates from a real Pebble whose DNS sends the HTTP-01
// validation to a responder in this process, on a loopback port.
func TestObtainFromPebble(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if _, err := acmeserver.Build(ctx, t.Logf); err != nil {
		t.Skipf("pebble %s cannot be built here (it is built from the Go module proxy): %v", acmeserver.PebbleVersion, err)
	}

	resp := &responder{answers: map[string]string{}, asked: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: resp, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	srv, err := acmeserver.Start(ctx, acmeserver.Options{
		// Another address than Pebble's own 127.0.0.1: the directory's certificate names it.
		Addr:     "127.0.0.3:0",
		HTTPPort: port,
		Validity: time.Hour,
		// Some good nonces refused: the client must retry them.
		NonceReject: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.DirectoryURL, "https://127.0.0.3:") {
		t.Errorf("directory %s, want it on 127.0.0.3", srv.DirectoryURL)
	}

	names := []string{"www.app.example.com", "app.example.com"}

	t.Run("DNS", func(t *testing.T) {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, srv.DNSAddr)
		}}
		lookup := func(host string) string {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			ips, err := r.LookupHost(ctx, host)
			if err != nil {
				t.Fatalf("looking up %s: %v", host, err)
			}
			return strings.Join(ips, ",")
		}
		if got := lookup("anything.example.com"); got != "127.0.0.1" {
			t.Errorf("default answer %q, want 127.0.0.1 and no IPv6", got)
		}
		if err := srv.SetA("other.example.com", "192.0.2.7"); err != nil {
			t.Fatal(err)
		}
		if got := lookup("other.example.com"); got != "192.0.2.7" {
			t.Errorf("after SetA: %q", got)
		}
		if err := srv.ClearA("other.example.com"); err != nil {
			t.Fatal(err)
		}
		if got := lookup("other.example.com"); got != "127.0.0.1" {
			t.Errorf("after ClearA: %q", got)
		}
	})

	accountKey, err := acme.NewAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	client, err := acme.New(acme.Config{
		DirectoryURL: srv.DirectoryURL,
		AccountKey:   accountKey,
		Email:        "ops@example.com",
		CABundle:     srv.CABundle,
		Timeout:      time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}

	var chainPEM []byte
	t.Run("Obtain", func(t *testing.T) {
		start := time.Now()
		var keyPEM []byte
		chainPEM, keyPEM, err = client.Obtain(ctx, names, resp.publish, resp.unpublish)
		if err != nil {
			t.Fatalf("Obtain: %v\n%s", err, srv.Logs())
		}
		t.Logf("obtained in %s", time.Since(start).Round(time.Millisecond))
		if n := srv.Orders(); n != 1 {
			t.Errorf("%d orders, want 1", n)
		}
		left, asked := resp.state()
		if left != 0 {
			t.Errorf("%d challenge answers still published", left)
		}
		for _, n := range names {
			if asked[n] == 0 {
				t.Errorf("the CA never asked %s: %v", n, asked)
			}
		}

		roots, err := srv.IssuerRoots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		certs := parseCerts(t, chainPEM)
		if len(certs) < 2 {
			t.Fatalf("chain of %d certificates, want leaf and intermediate", len(certs))
		}
		pool, inter := x509.NewCertPool(), x509.NewCertPool()
		if !pool.AppendCertsFromPEM(roots) {
			t.Fatal("no root from Pebble")
		}
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		leaf := certs[0]
		for _, n := range names {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: pool, Intermediates: inter}); err != nil {
				t.Errorf("verifying for %s: %v", n, err)
			}
		}
		if got, want := acme.NormalizeNames(leaf.DNSNames), acme.NormalizeNames(names); !slices.Equal(got, want) {
			t.Errorf("names %v, want %v", got, want)
		}
		if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 59*time.Minute || life > time.Hour {
			t.Errorf("lifetime %s, want an hour", life)
		}

		key, err := acme.ParseKey(keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
			t.Error("the key is not the certificate's")
		}
		if bytes.Contains(chainPEM, keyPEM) || bytes.Contains(chainPEM, []byte("PRIVATE KEY")) {
			t.Error("the chain holds the key")
		}

		if order, why := acme.NeedsOrder(chainPEM, names, time.Now()); order {
			t.Errorf("a new certificate needs an order: %s", why)
		}
		if order, _ := acme.NeedsOrder(chainPEM, names, leaf.NotBefore.Add(41*time.Minute)); !order {
			t.Error("no renewal due past two thirds of the lifetime")
		}
	})

	t.Run("DNS pointing elsewhere", func(t *testing.T) {
		// Nothing listens on 127.0.0.2 at the responder's port.
		if err := srv.SetA("app.example.com", "127.0.0.2"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.ClearA("app.example.com") })
		before := srv.Orders()
		chain, key, err := client.Obtain(ctx, names, resp.publish, resp.unpublish)
		if err == nil {
			t.Fatal("Obtain succeeded")
		}
		if chain != nil || key != nil {
			t.Error("a failed Obtain returned a certificate or key")
		}
		t.Logf("error: %v", err)
		var e *acme.Error
		if !errors.As(err, &e) {
			t.Fatalf("error %T, want *acme.Error", err)
		}
		if e.Op != "validating app.example.com" || !strings.Contains(e.Problem, "connection refused") || !strings.Contains(e.Problem, "127.0.0.2:"+strconv.Itoa(port)) {
			t.Errorf("Op %q, Problem %q: want the CA's connection refused from 127.0.0.2", e.Op, e.Problem)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Error("the error has more than one line")
		}
		if n := srv.Orders() - before; n != 1 {
			t.Errorf("%d orders, want 1", n)
		}
		if left, _ := resp.state(); left != 0 {
			t.Errorf("%d challenge answers still published", left)
		}
	})
}

func parseCerts(t *testing.T, chainPEM []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return certs
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
}
