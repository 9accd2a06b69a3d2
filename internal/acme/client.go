// Package acme obtains certificates from an ACME CA (RFC 8555) with HTTP-01 challenges whose
// answers the caller publishes, and plans when to order: never more often than a certificate's
// names and lifetime, or the backoff after a failure, call for.
package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	xacme "golang.org/x/crypto/acme"
)

// LetsEncryptURL is Let's Encrypt's production directory.
const LetsEncryptURL = xacme.LetsEncryptURL

// DefaultTimeout bounds one Obtain when the caller's context has no earlier deadline.
const DefaultTimeout = 3 * time.Minute

// Config is what a Client needs.
type Config struct {
	// DirectoryURL is the CA's ACME directory. Default LetsEncryptURL.
	DirectoryURL string
	// AccountKey identifies the ACME account; it is registered on first use.
	AccountKey crypto.Signer
	// Email is the account's contact, optional.
	Email string
	// CABundle is PEM of more roots to trust for the directory's HTTPS, besides the system's.
	CABundle []byte
	// UserAgent is sent with every request.
	UserAgent string
	// Timeout bounds one Obtain. Default DefaultTimeout.
	Timeout time.Duration
}

// Client talks to one ACME CA with one account. It is safe for concurrent use.
type Client struct {
	c       *xacme.Client
	email   string
	timeout time.Duration

	mu         sync.Mutex
	registered bool
}

// New returns a Client for cfg; it makes no request.
func New(cfg Config) (*Client, error) {
	if cfg.AccountKey == nil {
		return nil, errors.New("acme: no account key")
	}
	if cfg.DirectoryURL == "" {
		cfg.DirectoryURL = LetsEncryptURL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(cfg.CABundle) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(cfg.CABundle) {
			return nil, errors.New("acme: the CA bundle holds no PEM certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{
		c: &xacme.Client{
			Key:          cfg.AccountKey,
			DirectoryURL: cfg.DirectoryURL,
			UserAgent:    cfg.UserAgent,
			HTTPClient:   &http.Client{Transport: tr, Timeout: 30 * time.Second},
		},
		email:   cfg.Email,
		timeout: cfg.Timeout,
	}, nil
}

// Register registers the account key with the CA, agreeing to its terms of service, or finds
// the account it already has. Obtain calls it once by itself.
func (c *Client) Register(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.registered {
		return nil
	}
	acct := &xacme.Account{}
	if c.email != "" {
		acct.Contact = []string{"mailto:" + c.email}
	}
	if _, err := c.c.Register(ctx, acct, xacme.AcceptTOS); err != nil && !errors.Is(err, xacme.ErrAccountAlreadyExists) {
		return wrap("registering the ACME account", err)
	}
	c.registered = true
	return nil
}

// Obtain orders one certificate for all names, answering the CA's HTTP-01 challenges: publish
// must make http://NAME/.well-known/acme-challenge/TOKEN answer keyAuth for every name (on every
// host the name may resolve to) before it returns; unpublish is called for every published token
// when Obtain returns. It returns the certificate chain (leaf first) and its new ECDSA P-256 key,
// both PEM. Errors are *Error, with the CA's reason.
func (c *Client) Obtain(ctx context.Context, names []string, publish func(token, keyAuth string) error, unpublish func(token string)) (chainPEM, keyPEM []byte, err error) {
	names = NormalizeNames(names)
	if len(names) == 0 {
		return nil, nil, &Error{Op: "ordering a certificate", Problem: "no host names"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.Register(ctx); err != nil {
		return nil, nil, err
	}

	order, err := c.c.AuthorizeOrder(ctx, xacme.DomainIDs(names...))
	if err != nil {
		return nil, nil, wrap("creating the order", err)
	}

	// Publish every answer first, then accept: the CA may validate one name while the next
	// answer is still on its way.
	var pending []*xacme.Authorization
	var chals []*xacme.Challenge
	defer func() {
		for _, ch := range chals {
			unpublish(ch.Token)
		}
	}()
	for _, u := range order.AuthzURLs {
		z, err := c.c.GetAuthorization(ctx, u)
		if err != nil {
			return nil, nil, wrap("reading an authorization", err)
		}
		switch z.Status {
		case xacme.StatusValid:
			continue
		case xacme.StatusPending:
		default:
			return nil, nil, &Error{Op: "validating " + z.Identifier.Value, Problem: "authorization is " + z.Status}
		}
		var ch *xacme.Challenge
		for _, x := range z.Challenges {
			if x.Type == "http-01" {
				ch = x
			}
		}
		if ch == nil {
			return nil, nil, &Error{Op: "validating " + z.Identifier.Value, Problem: "the CA offers no http-01 challenge"}
		}
		keyAuth, err := c.c.HTTP01ChallengeResponse(ch.Token)
		if err != nil {
			return nil, nil, wrap("validating "+z.Identifier.Value, err)
		}
		if err := publish(ch.Token, keyAuth); err != nil {
			return nil, nil, &Error{Op: "validating " + z.Identifier.Value, Problem: "publishing the challenge answer: " + err.Error(), Err: err}
		}
		chals = append(chals, ch)
		pending = append(pending, z)
	}
	for i, z := range pending {
		if _, err := c.c.Accept(ctx, chals[i]); err != nil {
			return nil, nil, wrap("validating "+z.Identifier.Value, err)
		}
	}
	for _, z := range pending {
		if _, err := c.c.WaitAuthorization(ctx, z.URI); err != nil {
			return nil, nil, wrap("validating "+z.Identifier.Value, err)
		}
	}
	order, err = c.c.WaitOrder(ctx, order.URI)
	if err != nil {
		return nil, nil, wrap("waiting for the order", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: commonName(names)},
		DNSNames: names,
	}, key)
	if err != nil {
		return nil, nil, err
	}
	der, _, err := c.c.CreateCertFromOrder(ctx, order, csr, true)
	if err != nil {
		return nil, nil, wrap("finalizing the order", err)
	}
	chainPEM, err = checkChain(der, key, names)
	if err != nil {
		return nil, nil, &Error{Op: "checking the issued certificate", Problem: err.Error(), Err: err}
	}
	keyPEM, err = EncodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return chainPEM, keyPEM, nil
}

// commonName is the first name that fits the subject's 64 characters, or none: CAs take the
// names from the SAN extension.
func commonName(names []string) string {
	for _, n := range names {
		if len(n) <= 64 {
			return n
		}
	}
	return ""
}

// checkChain makes sure the leaf is for key and covers names, and encodes the chain as PEM.
func checkChain(der [][]byte, key *ecdsa.PrivateKey, names []string) ([]byte, error) {
	if len(der) == 0 {
		return nil, errors.New("the CA returned no certificate")
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		return nil, err
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("the certificate is not for the key of the request")
	}
	for _, n := range names {
		if err := leaf.VerifyHostname(n); err != nil {
			return nil, fmt.Errorf("the certificate does not cover %s", n)
		}
	}
	return encodeCerts(der), nil
}
