package kamalproxy

import (
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCert is a self-signed certificate for names, the same for the same arguments (Ed25519
// keys from a seed sign deterministically), so answers about it can be recorded.
type testCert struct {
	chain, key string // PEM
	pool       *x509.CertPool
	serial     int64
}

var (
	longAgo = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	farOff  = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

func newTestCert(t testing.TB, seed byte, serial int64, notBefore, notAfter time.Time, names ...string) testCert {
	t.Helper()
	key := ed25519.NewKeyFromSeed(append(make([]byte, 31), seed))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return testCert{
		chain:  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		key:    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})),
		pool:   pool,
		serial: serial,
	}
}

// served is the serial of the leaf the proxy serves for name, verified against pool.
func served(addr, name string, pool *x509.CertPool) (int64, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, RootCAs: pool})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

func (p *testProxy) putCert(t *testing.T, id string, c testCert) CertificateInfo {
	t.Helper()
	a := p.do(t, http.MethodPut, "/kamal/certificates/"+id, certificateBody{Chain: c.chain, Key: c.key})
	var info CertificateInfo
	if err := json.Unmarshal([]byte(a.body), &info); a.code != http.StatusOK || err != nil {
		t.Fatalf("PUT certificate %s: %d %s", id, a.code, a.body)
	}
	return info
}

// A certificate put through the admin API is served on :443 from the next handshake, a
// replacement too, without any change of Caddy's config; it is saved with mode 0600 and served
// by a restarted proxy from its first handshake.
func TestCertificatesAreServedFromTheTable(t *testing.T) {
	up := backend(t, "app", nil)
	p := startProxy(t, nil)
	p.put(t, "ns/app/web", Route{Hosts: []string{"app.test", "www.app.test"}, Upstream: up})
	before := p.do(t, http.MethodGet, "/config/", nil)

	first := newTestCert(t, 1, 101, longAgo, farOff, "app.test", "*.app.test")
	start := time.Now()
	if _, err := served(p.https, "app.test", first.pool); err == nil {
		t.Fatal("a TLS handshake succeeded with an empty certificate table")
	} else if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the refused handshake took %s (an issuer asked?): %v", d, err)
	}

	info := p.putCert(t, "ns/app", first)
	if info.Serial != "65" || strings.Join(info.Names, ",") != "*.app.test,app.test" || !info.NotAfter.Equal(farOff) || len(info.SHA256) != 64 {
		t.Fatalf("PUT answered %+v", info)
	}
	for _, name := range []string{"app.test", "www.app.test", "APP.test"} {
		if serial, err := served(p.https, name, first.pool); err != nil || serial != 101 {
			t.Fatalf("%s: serial %d, %v", name, serial, err)
		}
	}
	if got, err := (&tlsDialer{addr: p.https}).get("www.app.test", first.pool); err != nil || got != "app /" {
		t.Fatalf("HTTPS to the route: %q %v", got, err)
	}
	for _, name := range []string{"other.test", "a.b.app.test"} {
		if _, err := served(p.https, name, nil); err == nil {
			t.Fatalf("%s, which no certificate covers, got one", name)
		}
	}

	second := newTestCert(t, 2, 102, longAgo, farOff, "app.test", "*.app.test")
	p.putCert(t, "ns/app", second)
	if serial, err := served(p.https, "app.test", second.pool); err != nil || serial != 102 {
		t.Fatalf("after the replacement: serial %d, %v", serial, err)
	}
	if after := p.do(t, http.MethodGet, "/config/", nil); after.body != before.body {
		t.Fatalf("Caddy's config changed:\nbefore %s\nafter  %s", before.body, after.body)
	}

	path := filepath.Join(p.dataDir, CertificatesFile)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want mode 0600", path, fi, err)
	}

	p.restart(t)
	if serial, err := served(p.https, "app.test", second.pool); err != nil || serial != 102 {
		t.Fatalf("after a restart: serial %d, %v", serial, err)
	}
	if got, err := (&tlsDialer{addr: p.https}).get("app.test", second.pool); err != nil || got != "app /" {
		t.Fatalf("HTTPS to the route after a restart: %q %v", got, err)
	}

	if a := p.do(t, http.MethodDelete, "/kamal/certificates/ns/app", nil); a.code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", a.code, a.body)
	}
	if _, err := served(p.https, "app.test", second.pool); err == nil {
		t.Fatal("a deleted certificate is served")
	}
}

// The admin API refuses what it cannot serve, and no answer, refusals included, holds the key.
func TestCertificateAPINeverShowsTheKey(t *testing.T) {
	p := startProxy(t, nil)
	good := newTestCert(t, 1, 1, longAgo, farOff, "app.test")
	other := newTestCert(t, 2, 2, longAgo, farOff, "app.test")
	expired := newTestCert(t, 3, 3, longAgo, longAgo.Add(time.Hour), "app.test")
	huge := strings.Repeat("x", maxChainPEM+1)
	var answers []string
	for _, c := range []struct {
		what  string
		id    string
		body  any
		want  int
		cause string
	}{
		{"good", "ns/app", certificateBody{good.chain, good.key}, http.StatusOK, ""},
		{"the key of another certificate", "ns/app", certificateBody{good.chain, other.key}, http.StatusBadRequest, "does not go with"},
		{"an expired leaf", "ns/app", certificateBody{expired.chain, expired.key}, http.StatusBadRequest, "expired"},
		{"a chain too large", "ns/app", certificateBody{huge, good.key}, http.StatusBadRequest, "at most"},
		{"the key as chain", "ns/app", certificateBody{good.key, good.key}, http.StatusBadRequest, "CERTIFICATE blocks"},
		{"two keys", "ns/app", certificateBody{good.chain, good.key + other.key}, http.StatusBadRequest, "one PEM private key"},
		{"no key", "ns/app", certificateBody{good.chain, ""}, http.StatusBadRequest, "one PEM private key"},
		{"a bad id", "ns/App", certificateBody{good.chain, good.key}, http.StatusBadRequest, "DNS label"},
		{"an unknown field", "ns/app", `{"chain":"","key":"","keyPassword":"x"}`, http.StatusBadRequest, "unknown field"},
	} {
		a := p.do(t, http.MethodPut, "/kamal/certificates/"+c.id, c.body)
		if a.code != c.want || !strings.Contains(a.body, c.cause) {
			t.Errorf("%s: %d %s, want %d with %q", c.what, a.code, a.body, c.want, c.cause)
		}
		answers = append(answers, a.body)
	}
	for _, path := range []string{"/kamal/certificates", "/kamal/certificates/ns/app"} {
		a := p.do(t, http.MethodGet, path, nil)
		if a.code != http.StatusOK || !strings.Contains(a.body, `"serial":"1"`) {
			t.Errorf("GET %s: %d %s", path, a.code, a.body)
		}
		answers = append(answers, a.body)
	}
	if a := p.do(t, http.MethodGet, "/kamal/certificates/ns/none", nil); a.code != http.StatusNotFound {
		t.Errorf("GET of a missing certificate: %d %s", a.code, a.body)
	}
	for _, c := range []testCert{good, other, expired} {
		secret := c.key[len("-----BEGIN PRIVATE KEY-----\n"):][:40]
		for _, a := range answers {
			if strings.Contains(a, secret) || strings.Contains(a, "PRIVATE KEY") {
				t.Fatalf("an answer shows a key: %s", a)
			}
		}
	}
}

// Of two ids covering one name, the certificate valid longer is served, whatever order they came
// in; the other's names are shadowed, and serve again when the first goes.
func TestOverlappingCertificatesServeTheLongerValid(t *testing.T) {
	a := newTestCert(t, 1, 1, longAgo, farOff, "app.test", "a.test")
	b := newTestCert(t, 2, 2, longAgo, farOff.Add(24*time.Hour), "app.test", "*.test")
	for _, order := range [][]string{{"a", "b"}, {"b", "a"}} {
		c, _ := OpenCertificates("")
		for _, id := range order {
			cert := map[string]testCert{"a": a, "b": b}[id]
			if _, err := c.Put("ns/"+id, []byte(cert.chain), []byte(cert.key)); err != nil {
				t.Fatal(err)
			}
		}
		serial := func(name string) int64 {
			if cert := c.Get(name); cert != nil {
				return cert.Leaf.SerialNumber.Int64()
			}
			return 0
		}
		if serial("app.test") != 2 || serial("a.test") != 1 || serial("x.test") != 2 || serial("a.b.test") != 0 {
			t.Fatalf("order %v: app.test %d, a.test %d, x.test %d, a.b.test %d", order, serial("app.test"), serial("a.test"), serial("x.test"), serial("a.b.test"))
		}
		if list := c.List(); strings.Join(list["ns/a"].Shadowed, ",") != "app.test" || list["ns/b"].Shadowed != nil {
			t.Fatalf("order %v: %+v", order, list)
		}
		_ = c.Delete("ns/b")
		if serial("app.test") != 1 || serial("x.test") != 0 {
			t.Fatalf("order %v: after the delete app.test %d", order, serial("app.test"))
		}
	}
}

// A saved certificate table loads again; a certificate that no longer reads is left out, and an
// unreadable file is an empty table, not a proxy that cannot start.
func TestCertificatesSaveAndLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", CertificatesFile)
	c, notes := OpenCertificates(path)
	if len(notes) > 0 {
		t.Fatal(notes)
	}
	a := newTestCert(t, 1, 1, longAgo, farOff, "a.test")
	b := newTestCert(t, 2, 2, longAgo, farOff, "b.test")
	for id, cert := range map[string]testCert{"ns/a": a, "ns/b": b} {
		if _, err := c.Put(id, []byte(cert.chain), []byte(cert.key)); err != nil {
			t.Fatal(err)
		}
	}
	again, notes := OpenCertificates(path)
	if len(notes) > 0 || again.Get("a.test") == nil || again.Get("b.test") == nil {
		t.Fatalf("reloaded: %v %v", again.List(), notes)
	}

	var saved savedCertificates
	raw, _ := os.ReadFile(path)
	_ = json.Unmarshal(raw, &saved)
	saved.Certificates["ns/b"] = savedCertificate{Chain: b.chain, Key: a.key}
	raw, _ = json.Marshal(saved)
	_ = os.WriteFile(path, raw, 0o600)
	again, notes = OpenCertificates(path)
	if len(notes) != 1 || !strings.Contains(notes[0], "ns/b") || again.Get("a.test") == nil || again.Get("b.test") != nil {
		t.Fatalf("with a broken entry: %v %v", again.List(), notes)
	}
	if strings.Contains(notes[0], a.key[30:60]) {
		t.Fatalf("the note shows the key: %s", notes[0])
	}

	_ = os.WriteFile(path, []byte("{"), 0o600)
	again, notes = OpenCertificates(path)
	if len(notes) != 1 || len(again.List()) != 0 {
		t.Fatalf("an unreadable file: %v %v", again.List(), notes)
	}
}

// An ACME HTTP-01 answer is served for its hosts on :80, before any route and whether a route
// redirects or not; a token the proxy does not hold is routed as usual. A RedirectHTTPS route
// answers plain HTTP with 308 to https, and serves requests that came over TLS.
func TestChallengesAndRedirects(t *testing.T) {
	up := backend(t, "app", nil)
	p := startProxy(t, nil)
	p.put(t, "ns/app/web", Route{Hosts: []string{"app.test"}, Upstream: up, RedirectHTTPS: true})
	p.put(t, "ns/plain/web", Route{Hosts: []string{"plain.test"}, Upstream: up})
	cert := newTestCert(t, 1, 1, longAgo, farOff, "app.test")
	p.putCert(t, "ns/app", cert)

	const token = "tok_EN-1"
	const keyAuth = token + ".thumb-print_0"
	if a := p.do(t, http.MethodPut, "/kamal/challenges/"+token, Challenge{KeyAuthorization: keyAuth, Hosts: []string{"app.test", "new.test"}}); a.code != http.StatusOK {
		t.Fatalf("PUT challenge: %d %s", a.code, a.body)
	}
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		host, path string
		code       int
		body, loc  string
	}{
		{"app.test", ChallengePathPrefix + token, http.StatusOK, keyAuth, ""},
		{"new.test:80", ChallengePathPrefix + token, http.StatusOK, keyAuth, ""}, // no route at all
		{"plain.test", ChallengePathPrefix + token, http.StatusOK, "app " + ChallengePathPrefix + token, ""},
		{"app.test", ChallengePathPrefix + "other", http.StatusOK, "app " + ChallengePathPrefix + "other", ""},
		{"new.test", ChallengePathPrefix + "other", http.StatusNotFound, NoRouteBody, ""},
		{"app.test", "/x/y?q=1&r=%2F", http.StatusPermanentRedirect, "", "https://app.test/x/y?q=1&r=%2F"},
		{"app.test:8080", "/", http.StatusPermanentRedirect, "", "https://app.test/"},
		{"plain.test", "/x", http.StatusOK, "app /x", ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.http+tc.path, nil)
		req.Host = tc.host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || (tc.body != "" && string(b) != tc.body) || resp.Header.Get("Location") != tc.loc {
			t.Errorf("GET %s%s: %d %q Location %q; want %d %q %q", tc.host, tc.path, resp.StatusCode, b, resp.Header.Get("Location"), tc.code, tc.body, tc.loc)
		}
		if tc.body == keyAuth && resp.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("GET %s%s: Content-Type %q", tc.host, tc.path, resp.Header.Get("Content-Type"))
		}
	}
	if got, err := (&tlsDialer{addr: p.https}).get("app.test", cert.pool); err != nil || got != "app /" {
		t.Fatalf("HTTPS to a redirecting route: %q %v", got, err)
	}

	if a := p.do(t, http.MethodDelete, "/kamal/challenges/"+token, nil); a.code != http.StatusOK {
		t.Fatalf("DELETE challenge: %d %s", a.code, a.body)
	}
	if code, body, _ := send(c, http.MethodGet, p.http, "app.test", ChallengePathPrefix+token, nil, nil); code != http.StatusOK || body != "app "+ChallengePathPrefix+token {
		t.Fatalf("a deleted challenge: %d %q", code, body)
	}
	for _, bad := range []struct {
		token string
		body  any
	}{
		{"a.b", Challenge{KeyAuthorization: "a.b.c", Hosts: []string{"app.test"}}},
		{"tok", Challenge{KeyAuthorization: "other.x", Hosts: []string{"app.test"}}},
		{"tok", Challenge{KeyAuthorization: "tok.x"}},
		{"tok", Challenge{KeyAuthorization: "tok.x", Hosts: []string{"*.app.test"}}},
		{"tok", `{"keyAuthorization":"tok.x","hosts":["a.test"],"ttl":5}`},
	} {
		if a := p.do(t, http.MethodPut, "/kamal/challenges/"+bad.token, bad.body); a.code != http.StatusBadRequest {
			t.Errorf("PUT challenge %s %v: %d %s", bad.token, bad.body, a.code, a.body)
		}
	}
}

// Challenges expire when never deleted, and the table is bounded.
func TestChallengesExpireAndAreBounded(t *testing.T) {
	c := NewChallenges()
	now := time.Now()
	c.now = func() time.Time { return now }
	for i := range maxChallenges {
		tok := "t" + big.NewInt(int64(i)).String()
		if err := c.Put(tok, Challenge{KeyAuthorization: tok + ".x", Hosts: []string{"a.test"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Put("one-more", Challenge{KeyAuthorization: "one-more.x", Hosts: []string{"a.test"}}); err != ErrTooManyChallenges {
		t.Fatalf("a full table took another: %v", err)
	}
	if err := c.Put("t0", Challenge{KeyAuthorization: "t0.y", Hosts: []string{"a.test"}}); err != nil {
		t.Fatalf("a full table refuses a replacement: %v", err)
	}
	if ka, ok := c.Answer("t0", "A.test."); !ok || ka != "t0.y" {
		t.Fatalf("answer %q %v", ka, ok)
	}
	now = now.Add(ChallengeTTL + time.Second)
	if _, ok := c.Answer("t0", "a.test"); ok {
		t.Fatal("an expired challenge is answered")
	}
	if err := c.Put("one-more", Challenge{KeyAuthorization: "one-more.x", Hosts: []string{"a.test"}}); err != nil {
		t.Fatalf("expired challenges are not dropped: %v", err)
	}
}

type tlsDialer struct{ addr string }

// get sends GET / over HTTPS for name, verified against roots.
func (d *tlsDialer) get(name string, roots *x509.CertPool) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: name, RootCAs: roots}}}
	req, _ := http.NewRequest(http.MethodGet, "https://"+d.addr+"/", nil)
	req.Host = name
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
