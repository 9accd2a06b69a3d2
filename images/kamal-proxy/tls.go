package kamalproxy

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/caddyserver/certmagic"
)

// TLS on :443 comes from the module's certificate table (certificates.go), through Caddy's
// certificate-manager hook (`get_certificate`), with Caddy's automatic HTTPS off: a handshake for
// a name the table does not cover fails, and the permission module refuses every name, so Caddy
// never turns to an issuer (ACME) for one. Caddy does not cache what a manager returns: every
// handshake asks the table, so a replaced certificate is served from the next handshake on.

func init() {
	caddy.RegisterModule(CertManager{})
	caddy.RegisterModule(CertPermission{})
}

// CertManager (`tls.get_certificate.kamal`) answers a TLS handshake from the certificate table.
type CertManager struct {
	certificates *CertTable
}

// CaddyModule returns the Caddy module information.
func (CertManager) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "tls.get_certificate.kamal", New: func() caddy.Module { return new(CertManager) }}
}

// Provision loads the certificate table, before the servers start: a restarted proxy serves
// its certificates from the first handshake.
func (m *CertManager) Provision(caddy.Context) error {
	in, err := shared()
	if err != nil {
		return fmt.Errorf("kamal certificates: %w", err)
	}
	m.certificates = in.certificates
	return nil
}

// GetCertificate returns the table's certificate for the handshake's server name; none is
// (nil, nil), and the permission module then refuses the name.
func (m *CertManager) GetCertificate(_ context.Context, hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.certificates.Get(hello.ServerName), nil
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
	_ certmagic.Manager           = (*CertManager)(nil)
	_ caddy.Provisioner           = (*CertManager)(nil)
	_ caddytls.OnDemandPermission = CertPermission{}
)
