package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/acme"
	acmeserver "github.com/kamal-operator/kamal-operator/test/acme"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/hosts"
)

// pebble is the suite's ACME server, started by the first test that needs it.
var (
	pebble     *acmeserver.Server
	pebbleOnce sync.Once
	pebbleErr  error
)

// pebbleValidity is short so that a test sees a renewal (at two thirds: 80s after issuance).
const pebbleValidity = 2 * time.Minute

// startPebble starts Pebble once, validating HTTP-01 on port 80 of the addresses its DNS
// gives, and restarts the manager with it as the ACME directory.
func startPebble(t *testing.T) *acmeserver.Server {
	t.Helper()
	pebbleOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if _, pebbleErr = acmeserver.Build(ctx, t.Logf); pebbleErr != nil {
			return
		}
		// Names without their own A record resolve to loopback, where nothing answers on 80.
		var srv *acmeserver.Server
		if srv, pebbleErr = acmeserver.Start(ctx, acmeserver.Options{HTTPPort: 80, DefaultIPv4: "127.0.0.1", NonceReject: 5, Validity: pebbleValidity}); pebbleErr != nil {
			return
		}
		pebble = srv
		mgr.Stop()
		mgr, pebbleErr = framework.StartManager(cp, managerOptions(env.ProxyImage()))
	})
	if pebbleErr != nil {
		t.Fatalf("starting Pebble: %v", pebbleErr)
	}
	return pebble
}

func closePebble() {
	if pebble != nil {
		pebble.Close()
	}
}

// servedLeaf does a TLS handshake with h's proxy on 443 for serverName, verifying the chain
// against roots, and returns the leaf.
func servedLeaf(h *hosts.Host, serverName string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort(h.Address(), "443"), &tls.Config{ServerName: serverName, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// httpsGet asks h's proxy on 443 for path on serverName, trusting roots.
func httpsGet(h *hosts.Host, serverName, path string, roots *x509.CertPool) (int, string, error) {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: serverName, RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(h.Address(), "443"))
		},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + serverName + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, b.String(), nil
}

// plainHTTP sends GET path for hostName to h's port 80 without following redirects.
func plainHTTP(h *hosts.Host, hostName, path string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+h.Address()+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = hostName
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location"), nil
}

// testCertificate makes a CA and a leaf for names signed by it: the leaf chain and key PEM,
// and a pool with the CA.
func testCertificate(t *testing.T, serial int64, names ...string) (chainPEM, keyPEM []byte, roots *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(serial * 1000), Subject: pkix.Name{CommonName: "e2e test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err = acme.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(caCert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, roots
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// An app with ssl on two hosts gets one certificate from Pebble, whose DNS names only the
// first host, served by both; plain HTTP redirects. A custom certificate Secret is served and
// its rotation too. An order that cannot validate leaves HTTP serving and says why.
func TestHTTPSCertificates(t *testing.T) {
	ctx := context.Background()
	srv := startPebble(t)
	main, other := env.Host(hostMain), env.Host(hostOther)
	p := platform(t)
	ns := newNamespace(t)
	const name = "secure.example.com"
	if err := srv.SetA(name, main.Address()); err != nil {
		t.Fatal(err)
	}
	ordersBefore := srv.Orders()
	// The third host's Server, for later; made first so it goes after the app.
	s3 := serverFor(p, "web-3", env.Host(hostThird))
	s3.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromAll}
	createServer(t, s3)

	app := guestApp(ns, p, "secure", "secure-1", name)
	app.Spec.Proxy.SSL = ptr.To(true)
	createDeployment(t, app)
	waitDeployed(t, app)
	waitDeployment(t, app, kamalv1.ConditionCertificateReady, metav1.ConditionTrue, kamalv1.ReasonCertificateServed, readyWithin)

	rootsPEM, err := srv.IssuerRoots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pebbleRoots := x509.NewCertPool()
	if !pebbleRoots.AppendCertsFromPEM(rootsPEM) {
		t.Fatal("no Pebble root")
	}

	t.Run("served on both hosts", func(t *testing.T) {
		var fps []string
		framework.Eventually(t, reactWithin, func() error {
			fps = nil
			for _, h := range []*hosts.Host{main, other} {
				leaf, err := servedLeaf(h, name, pebbleRoots)
				if err != nil {
					return fmt.Errorf("%s: %w", h.Name(), err)
				}
				fps = append(fps, fingerprint(leaf))
			}
			return nil
		})
		if fps[0] != fps[1] {
			t.Errorf("hosts serve different certificates: %v", fps)
		}
		for _, h := range []*hosts.Host{main, other} {
			code, body, err := httpsGet(h, name, "/version", pebbleRoots)
			if err != nil || code != http.StatusOK || !strings.Contains(body, "secure-1") {
				t.Errorf("%s HTTPS GET = %d %q %v", h.Name(), code, body, err)
			}
			code, loc, err := plainHTTP(h, name, "/version")
			if err != nil || code != http.StatusPermanentRedirect || !strings.HasPrefix(loc, "https://"+name) {
				t.Errorf("%s plain HTTP = %d Location %q %v, want 308 to https", h.Name(), code, loc, err)
			}
		}
		if n := srv.Orders() - ordersBefore; n != 1 {
			t.Errorf("Pebble saw %d orders, want 1", n)
		}
		var d kamalv1.Deployment
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(app), &d); err != nil {
			t.Fatal(err)
		}
		if c := d.Status.Certificate; c == nil || len(c.Names) != 1 || c.Names[0] != name || c.NotAfter == nil || c.SecretName != "secure-kamal-tls" {
			t.Errorf("status.certificate = %+v", d.Status.Certificate)
		}
		var sec corev1.Secret
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "secure-kamal-tls"}, &sec); err != nil {
			t.Fatal(err)
		}
		if sec.Type != corev1.SecretTypeTLS || sec.Labels[kamalv1.LabelCertificateOf] != "secure" || len(sec.OwnerReferences) != 1 {
			t.Errorf("certificate Secret: type %s labels %v owners %v", sec.Type, sec.Labels, sec.OwnerReferences)
		}
		// The private key is in no event and not in status.
		key := strings.TrimSpace(string(sec.Data[corev1.TLSPrivateKeyKey]))
		var evs corev1.EventList
		if err := k8s.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			if strings.Contains(e.Message, "PRIVATE KEY") || strings.Contains(e.Message, key) {
				t.Errorf("event %s holds key material", e.Name)
			}
		}
		if strings.Contains(fmt.Sprintf("%+v", d.Status), "PRIVATE KEY") {
			t.Error("status holds key material")
		}
		// Nor in the controllers' log: a line of the key's body, as it would appear however
		// a log line escaped the PEM's newlines.
		lines := strings.Split(key, "\n")
		if len(lines) < 3 {
			t.Fatalf("the key is not PEM: %d lines", len(lines))
		}
		if found, err := framework.LogContains(lines[1]); err != nil || found {
			t.Errorf("the controllers' log holds the private key (%v)", err)
		}
		// Nor in any container's labels or command line on the hosts.
		for _, h := range []*hosts.Host{env.Host(hostMain), env.Host(hostOther)} {
			out := hostExec(t, h, "sh", "-c", "docker inspect $(docker ps -aq)")
			if strings.Contains(out, lines[1]) {
				t.Errorf("a container on %s carries the private key in its configuration", h.Name())
			}
		}
	})

	var fp string
	t.Run("a third host gets the certificate without an order", func(t *testing.T) {
		before := srv.Orders()
		third := env.Host(hostThird)
		waitReady(t, s3)
		leaf, err := servedLeaf(main, name, pebbleRoots)
		if err != nil {
			t.Fatal(err)
		}
		fp = fingerprint(leaf)
		update(t, app, func(d *kamalv1.Deployment) {
			d.Spec.Roles = map[string]kamalv1.Role{"web": {Servers: kamalv1.ServerSelector{Namespace: p, Names: []string{"web-1", "web-2", "web-3"}}}}
		})
		framework.Eventually(t, reactWithin, func() error {
			leaf, err := servedLeaf(third, name, pebbleRoots)
			if err != nil {
				return err
			}
			if got := fingerprint(leaf); got != fp {
				return fmt.Errorf("%s serves %s, want %s", third.Name(), got, fp)
			}
			return nil
		})
		if n := srv.Orders() - before; n != 0 {
			t.Errorf("Pebble saw %d orders for the third host, want 0", n)
		}
		// The app itself follows on the third host (the certificate came before it).
		waitDeployed(t, app)
		framework.Eventually(t, reactWithin, func() error {
			code, body, err := httpsGet(third, name, "/version", pebbleRoots)
			if err != nil || code != http.StatusOK || !strings.Contains(body, "secure-1") {
				return fmt.Errorf("%s HTTPS GET = %d %q %v", third.Name(), code, body, err)
			}
			return nil
		})
	})

	t.Run("renewal under load", func(t *testing.T) {
		all := []*hosts.Host{main, other, env.Host(hostThird)}
		configs := map[string]string{}
		for _, h := range all {
			configs[h.Name()] = proxyConfig(t, h)
		}
		var d kamalv1.Deployment
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(app), &d); err != nil {
			t.Fatal(err)
		}
		if d.Status.Certificate == nil || d.Status.Certificate.RenewAt == nil {
			t.Fatalf("status.certificate = %+v", d.Status.Certificate)
		}
		t.Logf("renewal due at %s (in %s)", d.Status.Certificate.RenewAt.UTC().Format(time.RFC3339), time.Until(d.Status.Certificate.RenewAt.Time).Round(time.Second))

		// Clients on fresh TLS connections across all hosts: each handshake sees the table as it is.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var okCount int
		var failures []string
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := all[i%len(all)]
				for {
					select {
					case <-stop:
						return
					default:
					}
					code, body, err := httpsGet(h, name, "/version", pebbleRoots)
					mu.Lock()
					if err != nil || code != http.StatusOK || !strings.Contains(body, "secure-1") {
						failures = append(failures, fmt.Sprintf("%s: %d %v", h.Name(), code, err))
					} else {
						okCount++
					}
					mu.Unlock()
				}
			}()
		}
		framework.Eventually(t, pebbleValidity+reactWithin, func() error {
			for _, h := range all {
				leaf, err := servedLeaf(h, name, pebbleRoots)
				if err != nil {
					return err
				}
				if fingerprint(leaf) == fp {
					return fmt.Errorf("%s still serves the first certificate", h.Name())
				}
			}
			return nil
		})
		close(stop)
		wg.Wait()
		t.Logf("%d HTTPS requests during the renewal, %d failed", okCount, len(failures))
		if len(failures) > 0 {
			t.Errorf("%d requests failed, first: %s", len(failures), failures[0])
		}
		for _, h := range all {
			if proxyConfig(t, h) != configs[h.Name()] {
				t.Errorf("the Caddy config of %s changed during the renewal", h.Name())
			}
		}
		waitEvent(t, ns, "secure", kamalv1.ReasonCertificateRenewed)
	})

	t.Run("custom certificate served and rotated", func(t *testing.T) {
		chain, key, roots := testCertificate(t, 101, name)
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "custom-tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: chain, corev1.TLSPrivateKeyKey: key}}
		if err := k8s.Create(ctx, sec); err != nil {
			t.Fatal(err)
		}
		update(t, app, func(d *kamalv1.Deployment) {
			d.Spec.Proxy.SSLCertificateSecretRef = &corev1.LocalObjectReference{Name: "custom-tls"}
		})
		serves := func(serial int64, roots *x509.CertPool) func() error {
			return func() error {
				for _, h := range []*hosts.Host{main, other, env.Host(hostThird)} {
					leaf, err := servedLeaf(h, name, roots)
					if err != nil {
						return fmt.Errorf("%s: %w", h.Name(), err)
					}
					if leaf.SerialNumber.Int64() != serial {
						return fmt.Errorf("%s serves serial %s, want %d", h.Name(), leaf.SerialNumber, serial)
					}
				}
				return nil
			}
		}
		framework.Eventually(t, reactWithin, serves(101, roots))

		chain, key, roots = testCertificate(t, 202, name)
		sec.Data = map[string][]byte{corev1.TLSCertKey: chain, corev1.TLSPrivateKeyKey: key}
		if err := k8s.Update(ctx, sec); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		framework.Eventually(t, 20*time.Second, serves(202, roots))
		t.Logf("rotated certificate served after %s", time.Since(t0).Round(time.Millisecond))
	})

	t.Run("order that cannot validate", func(t *testing.T) {
		const elsewhere = "elsewhere.example.com" // resolves to loopback: no proxy there
		broken := guestApp(ns, p, "elsewhere", "elsewhere-1", elsewhere)
		broken.Spec.Proxy.SSL = ptr.To(true)
		broken.Spec.Proxy.SSLRedirect = ptr.To(false)
		createDeployment(t, broken)
		waitDeployed(t, broken)
		c := waitDeployment(t, broken, kamalv1.ConditionCertificateReady, metav1.ConditionFalse, kamalv1.ReasonOrderFailed, readyWithin)
		if !strings.Contains(c.Message, elsewhere) && !strings.Contains(strings.ToLower(c.Message), "connection") {
			t.Errorf("CertificateReady message %q does not give the CA's reason", c.Message)
		}
		t.Logf("CertificateReady: %s", c.Message)
		framework.Eventually(t, reactWithin, sharedServe(elsewhere, "elsewhere-1"))
		var d kamalv1.Deployment
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(broken), &d); err != nil {
			t.Fatal(err)
		}
		if st := d.Status.Certificate; st == nil || st.Failures < 1 || st.NextOrderAt == nil {
			t.Errorf("status.certificate = %+v, want a failure and the next order's time", st)
		}
	})
}
