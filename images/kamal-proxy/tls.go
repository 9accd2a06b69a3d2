package kamalproxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/caddyserver/certmagic"
)

// TLS on :443 comes from the proxy's own certificate table, through Caddy's certificate-manager
// hook (`get_certificate`), with Caddy's automatic HTTPS off. The table is empty for now, so every
// handshake fails; and the permission module refuses every name, so Caddy never turns to an
// issuer (ACME) for one.

func init() {
	caddy.RegisterModule(CertManager{})
	caddy.RegisterModule(CertPermission{})
}

// certTable holds the certificates the proxy serves, by host name or wildcard "*.<parent>".
type certTable struct {
	mu     sync.RWMutex
	byName map[string]*tls.Certificate
}

var certificates = &certTable{byName: map[string]*tls.Certificate{}}

// get returns the certificate for a server name: its own, else its parent's wildcard.
func (c *certTable) get(serverName string) *tls.Certificate {
	name := hostKey(serverName)
	c.mu.RLock()
	defer c.mu.RUnlock()
	if cert := c.byName[name]; cert != nil {
		return cert
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		return c.byName["*"+name[i:]]
	}
	return nil
}

// CertManager (`tls.get_certificate.kamal`) answers a TLS handshake from the certificate table.
type CertManager struct{}

// CaddyModule returns the Caddy module information.
func (CertManager) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "tls.get_certificate.kamal", New: func() caddy.Module { return new(CertManager) }}
}

// GetCertificate returns the table's certificate for the handshake's server name; none is
// (nil, nil), and the permission module then refuses the name.
func (CertManager) GetCertificate(_ context.Context, hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return certificates.get(hello.ServerName), nil
}

// CertPermission (`tls.permission.kamal`) refuses every on-demand certificate: the proxy gets
// certificates from its table only.
type CertPermission struct{}

// CaddyModule returns the Caddy module information.
func (CertPermission) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "tls.permission.kamal", New: func() caddy.Module { return new(CertPermission) }}
}

// CertificateAllowed refuses name.
func (CertPermission) CertificateAllowed(_ context.Context, name string) error {
	return fmt.Errorf("%w: the proxy has no certificate for %s", caddytls.ErrPermissionDenied, name)
}

var (
	_ certmagic.Manager           = CertManager{}
	_ caddytls.OnDemandPermission = CertPermission{}
)
