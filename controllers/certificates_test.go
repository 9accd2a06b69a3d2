package controllers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/internal/release"
)

func certSpec(mut func(*kamalv1.DeploymentSpec)) (*kamalv1.DeploymentSpec, map[string]*release.Role) {
	s := &kamalv1.DeploymentSpec{
		PrimaryRole: "web",
		Roles: map[string]kamalv1.Role{
			"web":  {},
			"api":  {Proxy: &kamalv1.Proxy{Hosts: []string{"API.example.com."}}},
			"jobs": {},
		},
		Proxy: &kamalv1.Proxy{Hosts: []string{"www.example.com", "example.com"}, SSL: ptr.To(true)},
	}
	mut(s)
	roles := map[string]*release.Role{}
	for name := range s.Roles {
		roles[name] = &release.Role{Name: name, Proxy: release.EffectiveProxy(s, name)}
	}
	return s, roles
}

var certPlaced = map[string][]string{"web": {"b", "a"}, "api": {"c", "a"}, "jobs": {"d"}}

func TestPlanCertificate(t *testing.T) {
	cases := []struct {
		name    string
		mut     func(*kamalv1.DeploymentSpec)
		names   []string
		servers []string
		secret  string
		problem string
	}{
		{"ssl off: nothing", func(s *kamalv1.DeploymentSpec) { s.Proxy.SSL = nil }, []string{}, nil, "", ""},
		{"every proxied role's names and hosts, normalized", func(*kamalv1.DeploymentSpec) {},
			[]string{"api.example.com", "example.com", "www.example.com"}, []string{"a", "b", "c"}, "", ""},
		{"one role without ssl", func(s *kamalv1.DeploymentSpec) {
			s.Roles["api"] = kamalv1.Role{Proxy: &kamalv1.Proxy{Hosts: []string{"api.example.com"}, SSL: ptr.To(false)}}
		}, []string{"example.com", "www.example.com"}, []string{"a", "b"}, "", ""},
		{"custom certificate", func(s *kamalv1.DeploymentSpec) {
			s.Proxy.SSLCertificateSecretRef = &corev1.LocalObjectReference{Name: "app-tls"}
		}, []string{"api.example.com", "example.com", "www.example.com"}, []string{"a", "b", "c"}, "app-tls", ""},
		{"wildcard without a Secret", func(s *kamalv1.DeploymentSpec) { s.Proxy.Hosts = []string{"*.example.com"} },
			nil, nil, "", kamalv1.ReasonWildcardNeedsSecret},
		{"wildcard with a Secret", func(s *kamalv1.DeploymentSpec) {
			s.Proxy.Hosts = []string{"*.example.com"}
			s.Proxy.SSLCertificateSecretRef = &corev1.LocalObjectReference{Name: "wild"}
		}, []string{"*.example.com", "api.example.com"}, []string{"a", "b", "c"}, "wild", ""},
		{"roles naming different certificates", func(s *kamalv1.DeploymentSpec) {
			s.Roles["api"] = kamalv1.Role{Proxy: &kamalv1.Proxy{Hosts: []string{"api.example.com"}, SSL: ptr.To(true),
				SSLCertificateSecretRef: &corev1.LocalObjectReference{Name: "api-tls"}}}
		}, nil, nil, "", kamalv1.ReasonInvalidSpec},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec, roles := certSpec(tc.mut)
			w := planCertificate(spec, certPlaced, roles)
			if tc.problem != "" {
				if w.Problem == nil || w.Problem.Reason != tc.problem {
					t.Fatalf("problem = %+v, want %s", w.Problem, tc.problem)
				}
				return
			}
			if w.Problem != nil {
				t.Fatalf("problem %+v", w.Problem)
			}
			if !reflect.DeepEqual(w.Names, tc.names) || !reflect.DeepEqual(w.Servers, tc.servers) || w.Secret != tc.secret {
				t.Errorf("plan = %+v, want names %q servers %q secret %q", w, tc.names, tc.servers, tc.secret)
			}
		})
	}
}

func selfSigned(t *testing.T, names []string, notBefore, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names, NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestOrderDecision(t *testing.T) {
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	names := []string{"a.example.com", "b.example.com"}
	fresh := selfSigned(t, names, now.Add(-24*time.Hour), now.Add(89*24*time.Hour)) // renew at day 60
	due := selfSigned(t, names, now.Add(-70*24*time.Hour), now.Add(20*24*time.Hour))
	failed := func(n int32, next time.Time) *kamalv1.CertificateStatus {
		return &kamalv1.CertificateStatus{Failures: n, LastFailure: &metav1.Time{Time: now.Add(-time.Minute)}, NextOrderAt: &metav1.Time{Time: next}}
	}
	cases := []struct {
		name  string
		chain []byte
		names []string
		st    *kamalv1.CertificateStatus
		order bool
		wait  time.Duration
	}{
		{"no certificate", nil, names, nil, true, 0},
		{"valid: wait for renewal", fresh, names, nil, false, 59 * 24 * time.Hour},
		{"renewal due", due, names, nil, true, 0},
		{"names changed", fresh, []string{"a.example.com"}, nil, true, 0},
		{"failed: backoff holds", nil, names, failed(2, now.Add(3*time.Minute)), false, 3 * time.Minute},
		{"failed: backoff over", nil, names, failed(2, now.Add(-time.Second)), true, 0},
		{"failed earlier, valid certificate: no order", fresh, names, failed(1, now.Add(time.Hour)), false, 59 * 24 * time.Hour},
	}
	for _, tc := range cases {
		order, _, wait := orderDecision(tc.chain, tc.names, tc.st, now)
		if order != tc.order || wait != tc.wait {
			t.Errorf("%s: order=%v wait=%s, want %v %s", tc.name, order, wait, tc.order, tc.wait)
		}
	}
}

func TestPlanPush(t *testing.T) {
	cur := &proxy.Certificate{SHA256: "aa"}
	cases := []struct {
		want string
		have *proxy.Certificate
		out  pushAction
	}{
		{"aa", cur, pushNone},
		{"bb", cur, pushPut},  // renewed or rotated
		{"aa", nil, pushPut},  // new host, or a proxy restarted without its volume
		{"", cur, pushDelete}, // the Deployment left the host, or ssl is off
		{"", nil, pushNone},
	}
	for _, tc := range cases {
		if got := planPush(tc.want, tc.have); got != tc.out {
			t.Errorf("planPush(%q, %v) = %v, want %v", tc.want, tc.have, got, tc.out)
		}
	}
}

func TestOwnsCertificateSecret(t *testing.T) {
	d := &kamalv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "app", UID: types.UID("u1")}}
	owned := func(label string, uid types.UID) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{}}}
		if label != "" {
			s.Labels[kamalv1.LabelCertificateOf] = label
		}
		if uid != "" {
			s.OwnerReferences = []metav1.OwnerReference{{UID: uid}}
		}
		return s
	}
	if !ownsCertificateSecret(owned("app", "u1"), d) {
		t.Error("owned Secret not recognized")
	}
	for _, s := range []*corev1.Secret{owned("", "u1"), owned("app", ""), owned("other", "u1"), owned("app", "u2")} {
		if ownsCertificateSecret(s, d) {
			t.Errorf("Secret %+v taken as owned", s.ObjectMeta)
		}
	}
}

// At most one order per Deployment runs; its end wakes the Deployment and keeps the result
// until forgotten.
func TestCertOrdersOneAtATime(t *testing.T) {
	woken := make(chan string, 4)
	o := newCertOrders(func(ns, name string) { woken <- ns + "/" + name })
	defer o.close()
	key := types.NamespacedName{Namespace: "ns", Name: "app"}
	release := make(chan struct{})
	runs := 0
	fn := func(ctx context.Context) ([]byte, error) {
		runs++
		<-release
		return []byte("chain"), nil
	}
	o.start(key, []string{"a.example.com"}, fn)
	o.start(key, []string{"a.example.com"}, fn) // ignored: one runs
	if c, ok := o.get(key); !ok || c.done {
		t.Fatalf("order = %+v, %v; want running", c, ok)
	}
	close(release)
	select {
	case w := <-woken:
		if w != "ns/app" {
			t.Errorf("woke %s", w)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not woken")
	}
	c, _ := o.get(key)
	if !c.done || c.err != nil || string(c.chain) != "chain" || runs != 1 {
		t.Errorf("order = %+v after %d runs", c, runs)
	}
	o.forget(key)
	if _, ok := o.get(key); ok {
		t.Error("forgotten order still there")
	}
}
