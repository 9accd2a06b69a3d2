package controllers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/acme"
	"github.com/kamal-operator/kamal-operator/internal/metrics"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/internal/refs"
	"github.com/kamal-operator/kamal-operator/internal/release"
)

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch

// ACMEAccountSecret holds the controller's ACME account key, in its own namespace. It is
// created on first need.
const ACMEAccountSecret = "kamal-operator-acme-account"

const acmeAccountKey = "account.key"

// ACMEOptions are the controller's ACME settings for automatic certificates.
type ACMEOptions struct {
	// DirectoryURL of the CA (acme.LetsEncryptURL when empty).
	DirectoryURL string
	// Email is the account's contact (optional).
	Email string
	// CABundle is PEM certificates trusted for the directory, beside the system's.
	CABundle []byte
}

// certificateRecheck bounds how long a certificate pushed to a host may go unchecked: a proxy
// restarted from an old volume, or a host added, gets the certificate by the next reconcile.
const certificateRecheck = 5 * time.Minute

// CertificateSecretName is the Secret holding a Deployment's automatic certificate.
func CertificateSecretName(deployment string) string {
	return deployment + refs.AutomaticCertificateSuffix
}

// certificateID is the Deployment's id in the proxies' certificate tables.
func certificateID(namespace, deployment string) string { return namespace + "/" + deployment }

// certificateWant is what HTTPS a Deployment asks for, from its spec and placement.
type certificateWant struct {
	Names   []string // normalized host names of the roles with ssl
	Servers []string // Servers of the roles with ssl: each gets the certificate
	Secret  string   // sslCertificateSecretRef's Secret; empty for an automatic certificate
	Problem *refProblem
}

// planCertificate reads which names and hosts a Deployment's certificate is for. One
// certificate serves all its roles with ssl.
func planCertificate(spec *kamalv1.DeploymentSpec, placed map[string][]string, roles map[string]*release.Role) certificateWant {
	var w certificateWant
	var hosts []string
	secrets := map[string]bool{}
	for _, name := range sortedKeys(roles) {
		p := roles[name].Proxy
		if p == nil || !p.SSL {
			continue
		}
		hosts = append(hosts, p.Hosts...)
		w.Servers = append(w.Servers, placed[name]...)
		ref := spec.Roles[name].Proxy
		if ref == nil || ref.SSLCertificateSecretRef == nil {
			ref = spec.Proxy
		}
		if ref != nil && ref.SSLCertificateSecretRef != nil {
			secrets[ref.SSLCertificateSecretRef.Name] = true
		} else {
			secrets[""] = true
		}
	}
	w.Names = acme.NormalizeNames(hosts)
	slices.Sort(w.Servers)
	w.Servers = slices.Compact(w.Servers)
	if len(secrets) > 1 {
		w.Problem = &refProblem{Reason: kamalv1.ReasonInvalidSpec, Message: "the roles with ssl name different certificates (sslCertificateSecretRef): one certificate serves a Deployment"}
		return w
	}
	for s := range secrets {
		w.Secret = s
	}
	if w.Secret == "" {
		for _, n := range w.Names {
			if strings.HasPrefix(n, "*.") {
				w.Problem = &refProblem{Reason: kamalv1.ReasonWildcardNeedsSecret, Message: "host " + n + " is a wildcard: automatic certificates (HTTP-01) cannot cover it; set sslCertificateSecretRef (e.g. a cert-manager Secret issued with DNS-01)"}
			}
		}
	}
	return w
}

// orderDecision says whether to order a certificate now, and else when to look again (0: no
// need to). A failed order waits for status.certificate.nextOrderAt, kept across restarts.
func orderDecision(chainPEM []byte, names []string, st *kamalv1.CertificateStatus, now time.Time) (order bool, why string, wait time.Duration) {
	need, why := acme.NeedsOrder(chainPEM, names, now)
	if !need {
		leaf, _ := acme.Leaf(chainPEM)
		return false, "", acme.RenewAt(leaf.NotBefore, leaf.NotAfter).Sub(now)
	}
	if st != nil && st.Failures > 0 && st.NextOrderAt != nil && now.Before(st.NextOrderAt.Time) {
		return false, why, st.NextOrderAt.Sub(now)
	}
	return true, why, 0
}

// pushAction is what a host's proxy needs for the Deployment's certificate.
type pushAction int

const (
	pushNone pushAction = iota
	pushPut
	pushDelete
)

// planPush compares a host's entry for the certificate (nil: none) with the wanted leaf's
// fingerprint ("" when the host should serve none).
func planPush(fingerprint string, have *proxy.Certificate) pushAction {
	switch {
	case fingerprint == "" && have != nil:
		return pushDelete
	case fingerprint != "" && (have == nil || have.SHA256 != fingerprint):
		return pushPut
	}
	return pushNone
}

// leafFingerprint is the SHA-256 of the chain's leaf, as the proxy reports it.
func leafFingerprint(chainPEM []byte) (string, error) {
	leaf, err := acme.Leaf(chainPEM)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(leaf.Raw)
	return hex.EncodeToString(sum[:]), nil
}

// ownsCertificateSecret: the controller writes only a Secret it made for d.
func ownsCertificateSecret(s *corev1.Secret, d *kamalv1.Deployment) bool {
	if s.Labels[kamalv1.LabelCertificateOf] != d.Name {
		return false
	}
	for _, o := range s.OwnerReferences {
		if o.UID == d.UID {
			return true
		}
	}
	return false
}

// certOrder is one background ACME order of a Deployment.
type certOrder struct {
	cancel   context.CancelFunc
	done     bool
	names    []string
	err      error
	finished time.Time
	chain    []byte // the issued chain, until the Secret read shows it
}

// certOrders runs at most one ACME order per Deployment in the background: an order takes
// seconds to minutes (the CA validates), far too long for a reconcile.
type certOrders struct {
	base context.Context
	stop context.CancelFunc
	wake func(namespace, name string)

	mu sync.Mutex
	m  map[types.NamespacedName]*certOrder
}

func newCertOrders(wake func(namespace, name string)) *certOrders {
	ctx, cancel := context.WithCancel(context.Background())
	return &certOrders{base: ctx, stop: cancel, wake: wake, m: map[types.NamespacedName]*certOrder{}}
}

// start runs fn unless an order of key runs.
func (o *certOrders) start(key types.NamespacedName, names []string, fn func(ctx context.Context) ([]byte, error)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c := o.m[key]; (c != nil && !c.done) || o.base.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(o.base)
	c := &certOrder{cancel: cancel, names: names}
	o.m[key] = c
	var chain []byte
	goSafe(func() error {
		var err error
		chain, err = fn(ctx)
		return err
	}, func(err error) {
		cancel()
		o.mu.Lock()
		c.done, c.err, c.finished, c.chain = true, err, time.Now(), chain
		o.mu.Unlock()
		o.wake(key.Namespace, key.Name)
	})
}

// get returns a copy of key's order.
func (o *certOrders) get(key types.NamespacedName) (certOrder, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.m[key]
	if c == nil {
		return certOrder{}, false
	}
	return *c, true
}

func (o *certOrders) forget(key types.NamespacedName) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c := o.m[key]; c != nil {
		c.cancel()
		delete(o.m, key)
	}
}

func (o *certOrders) close() { o.stop() }

// certificates keeps the Deployment's certificate: it takes in finished orders, starts one
// when needed, and pushes the certificate to every host of its roles with ssl. Nothing here
// takes HTTP or a served certificate down; problems go to CertificateReady only.
func (r *DeploymentReconciler) certificates(ctx context.Context, s *deploymentScope) (*ctrl.Result, error) {
	d := s.d
	key := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
	w := planCertificate(&d.Spec, s.placed, s.roles)
	if len(w.Servers) == 0 {
		// ssl off: hosts are only asked when a certificate was served, to remove it.
		r.certs.forget(key)
		if d.Status.Certificate == nil {
			return nil, nil
		}
		if err := r.pushCertificate(ctx, s, nil, nil, nil); err != nil {
			return nil, err
		}
		d.Status.Certificate = nil
		metrics.ForgetCertificate(d.Namespace, d.Name)
		meta.RemoveStatusCondition(&d.Status.Conditions, kamalv1.ConditionCertificateReady)
		return nil, nil
	}
	notReady := func(reason, msg string) (*ctrl.Result, error) {
		setCertificateCondition(d, metav1.ConditionFalse, reason, msg)
		return nil, nil
	}
	if w.Problem != nil {
		return notReady(w.Problem.Reason, w.Problem.Message)
	}
	if d.Status.Certificate == nil {
		d.Status.Certificate = &kamalv1.CertificateStatus{}
	}
	st := d.Status.Certificate
	var chain, keyPEM []byte
	if w.Secret != "" {
		r.certs.forget(key)
		st.Failures, st.LastFailure, st.NextOrderAt = 0, nil, nil
		var sec corev1.Secret
		if err := r.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: w.Secret}, &sec); err != nil {
			return nil, client.IgnoreNotFound(err) // checkRefs stalls on a missing one
		}
		st.SecretName = w.Secret
		chain, keyPEM = sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey]
		if _, err := tls.X509KeyPair(chain, keyPEM); err != nil {
			// The parser's messages never quote key material.
			return notReady(kamalv1.ReasonCertificateSecretInvalid, fmt.Sprintf("Secret %q (sslCertificateSecretRef) holds no usable certificate and key: %v; the hosts keep what they serve", w.Secret, err))
		}
	} else {
		for _, server := range w.Servers {
			var srv kamalv1.Server
			if err := r.Get(ctx, serverKeyOf(d.Namespace, server), &srv); err == nil && srv.Spec.Proxy.HTTPPort != 0 && srv.Spec.Proxy.HTTPPort != 80 {
				return notReady(kamalv1.ReasonHTTPPortNot80, fmt.Sprintf("Server %s publishes the proxy's HTTP on port %d: automatic certificates are validated over HTTP on port 80 (HTTP-01); use port 80 or sslCertificateSecretRef", server, srv.Spec.Proxy.HTTPPort))
			}
		}
		name := CertificateSecretName(d.Name)
		st.SecretName = name
		var sec corev1.Secret
		err := r.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: name}, &sec)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, err
		case !ownsCertificateSecret(&sec, d):
			return notReady(kamalv1.ReasonSecretNotOwned, fmt.Sprintf("Secret %q exists and is not this Deployment's (no owner reference and label %s=%s): the controller writes only Secrets it owns; delete or rename it", name, kamalv1.LabelCertificateOf, d.Name))
		default:
			chain, keyPEM = sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey]
		}
		if res, err := r.orderIfDue(ctx, s, w, key, &chain, &keyPEM); res != nil || err != nil {
			return res, err
		}
		if len(chain) == 0 {
			return nil, nil
		}
	}
	leaf, err := acme.Leaf(chain)
	if err != nil {
		return notReady(kamalv1.ReasonCertificateSecretInvalid, "the certificate cannot be read: "+err.Error())
	}
	st.Names = acme.NormalizeNames(leaf.DNSNames)
	st.NotAfter = &metav1.Time{Time: leaf.NotAfter}
	metrics.SetCertificate(d.Namespace, d.Name, leaf.NotAfter)
	if w.Secret == "" {
		st.RenewAt = &metav1.Time{Time: acme.RenewAt(leaf.NotBefore, leaf.NotAfter)}
	} else {
		st.RenewAt = nil
	}
	if err := r.pushCertificate(ctx, s, w.Servers, chain, keyPEM); err != nil {
		if errors.Is(err, proxy.ErrNoCertificateTable) {
			return notReady(kamalv1.ReasonProxyTooOld, err.Error()+"; upgrade the Servers' proxy image")
		}
		return notReady(kamalv1.ReasonCertificatePushFailed, err.Error())
	}
	if c := meta.FindStatusCondition(d.Status.Conditions, kamalv1.ConditionCertificateReady); c == nil || c.Reason != kamalv1.ReasonOrderFailed || st.Failures == 0 {
		setCertificateCondition(d, metav1.ConditionTrue, kamalv1.ReasonCertificateServed,
			fmt.Sprintf("serving a certificate for %s until %s", strings.Join(st.Names, ", "), leaf.NotAfter.UTC().Format(time.RFC3339)))
	}
	s.requeueIn(certificateRecheck)
	return nil, nil
}

// orderIfDue takes in a finished order and starts one when the certificate needs it and no
// backoff holds. chain and key are replaced by a just issued certificate the Secret read did
// not show yet.
func (r *DeploymentReconciler) orderIfDue(ctx context.Context, s *deploymentScope, w certificateWant, key types.NamespacedName, chain, keyPEM *[]byte) (*ctrl.Result, error) {
	d, st := s.d, s.d.Status.Certificate
	if o, ok := r.certs.get(key); ok {
		switch {
		case !o.done:
			if len(*chain) == 0 {
				setCertificateCondition(d, metav1.ConditionFalse, kamalv1.ReasonOrdering, "ordering a certificate for "+strings.Join(o.names, ", "))
			}
			return nil, nil
		case o.err != nil:
			st.Failures++
			st.LastFailure = &metav1.Time{Time: o.finished}
			var retryAfter time.Duration
			var ae *acme.Error
			if errors.As(o.err, &ae) {
				retryAfter = ae.RetryAfter
			}
			next := acme.RetryAt(o.finished, int(st.Failures), retryAfter)
			st.NextOrderAt = &metav1.Time{Time: next}
			setCertificateCondition(d, metav1.ConditionFalse, kamalv1.ReasonOrderFailed,
				fmt.Sprintf("%s; retried at %s", orderProblem(o.err), next.UTC().Format(time.RFC3339)))
			r.certs.forget(key)
		default:
			st.Failures, st.LastFailure, st.NextOrderAt = 0, nil, nil
			if !bytes.Equal(o.chain, *chain) && time.Since(o.finished) < time.Minute {
				// The Secret was written; the read may not show it yet. Never order again
				// for that: look again shortly.
				s.requeueIn(2 * time.Second)
				return nil, nil
			}
			r.certs.forget(key)
			setCertificateCondition(d, metav1.ConditionTrue, kamalv1.ReasonCertificateIssued, "certificate issued")
		}
	}
	order, why, wait := orderDecision(*chain, w.Names, st, time.Now())
	if !order {
		s.requeueIn(wait)
		return nil, nil
	}
	renewal := len(*chain) > 0
	admins := []*proxy.Admin{}
	for _, server := range w.Servers {
		if h := s.hosts[server]; h != nil {
			admins = append(admins, h.Proxy)
		}
	}
	if len(admins) == 0 {
		return nil, nil // no host reachable to answer the challenge
	}
	dc := d.DeepCopy()
	names := w.Names
	log := ctrl.LoggerFrom(ctx)
	log.Info("ordering a certificate", "names", names, "why", why)
	r.certs.start(key, names, func(ctx context.Context) ([]byte, error) {
		chain, err := r.order(ctx, dc, names, admins)
		if err != nil {
			if ctx.Err() == nil {
				r.Recorder.Eventf(dc, nil, corev1.EventTypeWarning, kamalv1.ReasonCertificateOrderFailed, "Order", "ordering a certificate for %s failed: %s", strings.Join(names, ", "), orderProblem(err))
			}
			return nil, err
		}
		reason, verb := kamalv1.ReasonCertificateIssued, "issued"
		if renewal {
			reason, verb = kamalv1.ReasonCertificateRenewed, "renewed"
		}
		r.Recorder.Eventf(dc, nil, corev1.EventTypeNormal, reason, "Order", "certificate for %s %s", strings.Join(names, ", "), verb)
		return chain, nil
	})
	if len(*chain) == 0 {
		setCertificateCondition(d, metav1.ConditionFalse, kamalv1.ReasonOrdering, "ordering a certificate for "+strings.Join(names, ", "))
	}
	return nil, nil
}

// orderProblem is the CA's problem text of a failed order.
func orderProblem(err error) string {
	var ae *acme.Error
	if errors.As(err, &ae) {
		return ae.Error()
	}
	return err.Error()
}

// order obtains a certificate for names, answering HTTP-01 from every host's proxy, and keeps
// it in the Deployment's Secret. It returns the chain written.
func (r *DeploymentReconciler) order(ctx context.Context, d *kamalv1.Deployment, names []string, admins []*proxy.Admin) ([]byte, error) {
	c, err := r.acmeClient(ctx)
	if err != nil {
		return nil, err
	}
	publish := func(token, keyAuth string) error {
		var firstErr error
		ok := 0
		for _, a := range admins {
			if err := a.PutChallenge(ctx, token, keyAuth, names); err != nil {
				firstErr = err
				continue
			}
			ok++
		}
		if ok == 0 {
			return firstErr
		}
		return nil
	}
	unpublish := func(token string) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hostReadTimeout)
		defer cancel()
		for _, a := range admins {
			_ = a.DeleteChallenge(dctx, token)
		}
	}
	chain, keyPEM, err := c.Obtain(ctx, names, publish, unpublish)
	if err != nil {
		return nil, err
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: d.Namespace, Name: CertificateSecretName(d.Name),
			Labels:          map[string]string{kamalv1.LabelCertificateOf: d.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, kamalv1.GroupVersion.WithKind("Deployment"))},
		},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: chain, corev1.TLSPrivateKeyKey: keyPEM},
	}
	err = r.Create(ctx, sec)
	if apierrors.IsAlreadyExists(err) {
		var cur corev1.Secret
		if err = r.APIReader.Get(ctx, client.ObjectKeyFromObject(sec), &cur); err != nil {
			return nil, err
		}
		if !ownsCertificateSecret(&cur, d) {
			return nil, fmt.Errorf("Secret %q is not this Deployment's: not written", sec.Name)
		}
		sec.ResourceVersion = cur.ResourceVersion
		err = r.Update(ctx, sec)
	}
	if err != nil {
		return nil, fmt.Errorf("keeping the certificate in Secret %q: %w", sec.Name, err)
	}
	return chain, nil
}

// acmeClient returns the controller's ACME client, creating the account key Secret on first
// need. The key is never logged.
func (r *DeploymentReconciler) acmeClient(ctx context.Context) (*acme.Client, error) {
	r.acmeMu.Lock()
	defer r.acmeMu.Unlock()
	if r.acme != nil {
		return r.acme, nil
	}
	key := types.NamespacedName{Namespace: r.Namespace, Name: ACMEAccountSecret}
	var sec corev1.Secret
	err := r.APIReader.Get(ctx, key, &sec)
	if apierrors.IsNotFound(err) {
		k, kerr := acme.NewAccountKey()
		if kerr != nil {
			return nil, kerr
		}
		pemKey, kerr := acme.EncodeKey(k)
		if kerr != nil {
			return nil, kerr
		}
		sec = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}, Data: map[string][]byte{acmeAccountKey: pemKey}}
		if err = r.Create(ctx, &sec); apierrors.IsAlreadyExists(err) {
			err = r.APIReader.Get(ctx, key, &sec)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the ACME account Secret %s: %w", key, err)
	}
	signer, err := acme.ParseKey(sec.Data[acmeAccountKey])
	if err != nil {
		return nil, fmt.Errorf("the ACME account Secret %s: %w", key, err)
	}
	c, err := acme.New(acme.Config{DirectoryURL: r.ACME.DirectoryURL, Email: r.ACME.Email, CABundle: r.ACME.CABundle, AccountKey: signer, UserAgent: EventSource})
	if err != nil {
		return nil, err
	}
	r.acme = c
	return c, nil
}

// pushCertificate brings every connected host's entry for the Deployment's certificate to
// chain: put on servers, removed elsewhere (hosts the Deployment left, or ssl turned off).
func (r *DeploymentReconciler) pushCertificate(ctx context.Context, s *deploymentScope, servers []string, chain, keyPEM []byte) error {
	id := certificateID(s.d.Namespace, s.d.Name)
	fp := ""
	if len(chain) > 0 {
		var err error
		if fp, err = leafFingerprint(chain); err != nil {
			return err
		}
	}
	var errs []string
	var tooOld error
	for _, server := range sortedKeys(s.hosts) {
		h := s.hosts[server]
		want := fp
		if !slices.Contains(servers, server) {
			want = ""
		}
		rctx, cancel := context.WithTimeout(ctx, hostReadTimeout)
		err := pushTo(rctx, h.Proxy, id, want, chain, keyPEM)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, proxy.ErrNoCertificateTable):
			if want != "" {
				tooOld = fmt.Errorf("the proxy on %s: %w", server, err)
			}
		case isAdminUnreachable(err) && want == "":
		default:
			errs = append(errs, fmt.Sprintf("%s: %v", server, err))
		}
	}
	if tooOld != nil {
		return tooOld
	}
	if len(errs) > 0 {
		return errors.New("pushing the certificate: " + strings.Join(errs, "; "))
	}
	return nil
}

func pushTo(ctx context.Context, a *proxy.Admin, id, want string, chain, keyPEM []byte) error {
	have, err := a.Certificates(ctx)
	if err != nil {
		return err
	}
	var cur *proxy.Certificate
	if c, ok := have[id]; ok {
		cur = &c
	}
	switch planPush(want, cur) {
	case pushPut:
		_, err = a.PutCertificate(ctx, id, chain, keyPEM)
	case pushDelete:
		err = a.DeleteCertificate(ctx, id)
	}
	return err
}

func setCertificateCondition(d *kamalv1.Deployment, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&d.Status.Conditions, metav1.Condition{Type: kamalv1.ConditionCertificateReady, Status: status,
		ObservedGeneration: d.Generation, Reason: reason, Message: msg})
}
