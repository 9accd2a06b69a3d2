package kamalproxy

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Certificates live in the module's certificate table, never in Caddy's config: installing or
// renewing one would otherwise replace the servers and drop connections. The controller sets
// them through the admin API (/kamal/certificates) under an id of its own ("namespace/
// deployment"); the names of each certificate's leaf (its DNS SANs) index the handshake lookup:
// the server name itself, else its parent's wildcard "*.<parent>". A name that no certificate
// covers fails the handshake.
//
// Two ids may cover the same name: two Deployments routing different paths of one host each get
// a certificate for it. Both are valid for the name, so refusing the second would only take
// HTTPS from one of them; the certificate that stays valid longer is served (later notAfter,
// then later notBefore, then the smaller id), and GET /kamal/certificates names, per id, the names
// another id's certificate serves ("shadowed"). Deleting the one served serves the other.
//
// The table is saved to <data dir>/CertificatesFile (mode 0600, a new file renamed over the old,
// as the route table) on every change and read when the module is provisioned, before the
// servers serve, so a restarted proxy serves HTTPS from its first handshake. A saved certificate
// that no longer reads is left out with a warning, and an unreadable file starts an empty table:
// HTTP must come up whatever the certificates' state; the controller pushes them again.

// CertificatesFile is the certificate table in Caddy's data directory.
const CertificatesFile = "kamal-certificates.json"

const certificatesFormat = 1

// Limits on what a certificate PUT may hold.
const (
	maxChainPEM  = 64 << 10
	maxKeyPEM    = 16 << 10
	maxChainCert = 10
	maxCertNames = 100 // as public CAs allow
)

// CertificateInfo describes a certificate of the table; never its key.
type CertificateInfo struct {
	// Names are the leaf's DNS names, lowercase, sorted.
	Names []string `json:"names"`
	// Serial is the leaf's serial number in lowercase hex.
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// SHA256 is the fingerprint of the leaf (its DER), lowercase hex.
	SHA256 string `json:"sha256"`
	// Shadowed are names of this certificate that another id's certificate serves.
	Shadowed []string `json:"shadowed,omitempty"`
}

// certEntry is one certificate of the table, parsed.
type certEntry struct {
	chain, key []byte
	cert       *tls.Certificate
	info       CertificateInfo
}

// certState is one version of the certificate table; never changed once published.
type certState struct {
	entries map[string]*certEntry
	byName  map[string]string // name or "*.<parent>" → id served
}

// CertTable holds the certificates the proxy serves.
type CertTable struct {
	writeMu sync.Mutex // serializes changes, saves included
	st      atomic.Pointer[certState]
	path    string // "" keeps it in memory only
	now     func() time.Time
}

type savedCertificates struct {
	Format       int                         `json:"format"`
	Certificates map[string]savedCertificate `json:"certificates"`
}

type savedCertificate struct {
	Chain string `json:"chain"`
	Key   string `json:"key"`
}

// OpenCertificates returns the certificate table saved at path (none: empty); notes name what
// could not be read.
func OpenCertificates(path string) (*CertTable, []string) {
	c := &CertTable{path: path, now: time.Now}
	c.st.Store(newCertState(map[string]*certEntry{}))
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	var saved savedCertificates
	if err == nil {
		err = json.Unmarshal(b, &saved)
	}
	if err == nil && saved.Format != certificatesFormat {
		err = fmt.Errorf("format %d, want %d", saved.Format, certificatesFormat)
	}
	if err != nil {
		return c, []string{fmt.Sprintf("not loading the certificates of %s: %v", path, err)}
	}
	var notes []string
	entries := map[string]*certEntry{}
	for id, sc := range saved.Certificates {
		// An expired certificate loads: the controller replaces it, and a client refuses it
		// as it would have before the restart.
		e, err := parseCertificate(id, []byte(sc.Chain), []byte(sc.Key), time.Time{})
		if err != nil {
			notes = append(notes, fmt.Sprintf("not loading certificate %s: %v", id, err))
			continue
		}
		entries[id] = e
	}
	c.st.Store(newCertState(entries))
	return c, notes
}

// ValidCertID checks a certificate id: one to three DNS labels separated by '/'
// ("namespace/deployment").
func ValidCertID(id string) error {
	segs := strings.Split(id, "/")
	if len(segs) > 3 {
		return invalid("certificate id %q must be at most three labels separated by '/'", id)
	}
	for _, s := range segs {
		if len(s) > 63 || !labelRE.MatchString(s) {
			return invalid("certificate id %q: %q is not a DNS label", id, s)
		}
	}
	return nil
}

// parseCertificate reads a PEM chain (leaf first) and the leaf's PEM key. With now set, an
// expired leaf is refused. Messages never quote the key.
func parseCertificate(id string, chainPEM, keyPEM []byte, now time.Time) (*certEntry, error) {
	if err := ValidCertID(id); err != nil {
		return nil, err
	}
	if len(chainPEM) > maxChainPEM || len(keyPEM) > maxKeyPEM {
		return nil, invalid("the chain must have at most %d bytes and the key %d", maxChainPEM, maxKeyPEM)
	}
	var ders [][]byte
	for rest := chainPEM; len(bytes.TrimSpace(rest)) > 0; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil || b.Type != "CERTIFICATE" {
			return nil, invalid("the chain must be PEM CERTIFICATE blocks only")
		}
		ders = append(ders, b.Bytes)
	}
	if len(ders) == 0 || len(ders) > maxChainCert {
		return nil, invalid("the chain must hold 1 to %d certificates, leaf first", maxChainCert)
	}
	for i, der := range ders {
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, invalid("certificate %d of the chain: %v", i+1, err)
		}
	}
	if kb, rest := pem.Decode(keyPEM); kb == nil || !strings.HasSuffix(kb.Type, "PRIVATE KEY") || len(bytes.TrimSpace(rest)) > 0 {
		return nil, invalid("the key must be one PEM private key block")
	}
	// X509KeyPair checks that the key is the leaf's; its messages are fixed texts.
	cert, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, invalid("the key does not go with the leaf certificate: %v", err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, invalid("the leaf certificate: %v", err)
		}
		cert.Leaf = leaf
	}
	if !now.IsZero() && now.After(leaf.NotAfter) {
		return nil, invalid("the leaf certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if len(leaf.DNSNames) == 0 || len(leaf.DNSNames) > maxCertNames {
		return nil, invalid("the leaf certificate must name 1 to %d DNS names (subject alternative names)", maxCertNames)
	}
	var names []string
	for _, n := range leaf.DNSNames {
		if len(n) > maxHostLen || !hostRE.MatchString(n) {
			return nil, invalid("the leaf certificate's name %q is not a host name or a wildcard *.<name>", n)
		}
		if k := hostKey(n); !slices.Contains(names, k) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	sum := sha256.Sum256(leaf.Raw)
	return &certEntry{
		chain: chainPEM, key: keyPEM, cert: &cert,
		info: CertificateInfo{Names: names, Serial: leaf.SerialNumber.Text(16), NotBefore: leaf.NotBefore.UTC(),
			NotAfter: leaf.NotAfter.UTC(), SHA256: hex.EncodeToString(sum[:])},
	}, nil
}

// newCertState indexes entries by name: of two ids covering one name, the certificate valid
// longer wins.
func newCertState(entries map[string]*certEntry) *certState {
	st := &certState{entries: entries, byName: map[string]string{}}
	better := func(a, b string) bool {
		x, y := entries[a].info, entries[b].info
		if c := x.NotAfter.Compare(y.NotAfter); c != 0 {
			return c > 0
		}
		if c := x.NotBefore.Compare(y.NotBefore); c != 0 {
			return c > 0
		}
		return cmp.Less(a, b)
	}
	for id, e := range entries {
		for _, n := range e.info.Names {
			if cur, ok := st.byName[n]; !ok || better(id, cur) {
				st.byName[n] = id
			}
		}
	}
	return st
}

// Get returns the certificate for a TLS server name: its own, else its parent's wildcard; nil
// when none covers it.
func (c *CertTable) Get(serverName string) *tls.Certificate {
	st := c.st.Load()
	name := hostKey(serverName)
	id, ok := st.byName[name]
	if !ok {
		if i := strings.IndexByte(name, '.'); i > 0 {
			id, ok = st.byName["*"+name[i:]]
		}
	}
	if !ok {
		return nil
	}
	return st.entries[id].cert
}

// List describes every certificate, by id.
func (c *CertTable) List() map[string]CertificateInfo {
	st := c.st.Load()
	out := make(map[string]CertificateInfo, len(st.entries))
	for id := range st.entries {
		out[id] = st.info(id)
	}
	return out
}

// Info describes certificate id.
func (c *CertTable) Info(id string) (CertificateInfo, bool) {
	st := c.st.Load()
	if _, ok := st.entries[id]; !ok {
		return CertificateInfo{}, false
	}
	return st.info(id), true
}

func (st *certState) info(id string) CertificateInfo {
	info := st.entries[id].info
	info.Names = slices.Clone(info.Names)
	for _, n := range info.Names {
		if st.byName[n] != id {
			info.Shadowed = append(info.Shadowed, n)
		}
	}
	return info
}

// Put adds or replaces certificate id (PEM chain, leaf first, and the leaf's PEM key): from the
// next handshake on, its names are served with it. The same chain and key again is no change.
func (c *CertTable) Put(id string, chainPEM, keyPEM []byte) (CertificateInfo, error) {
	e, err := parseCertificate(id, chainPEM, keyPEM, c.now())
	if err != nil {
		return CertificateInfo{}, err
	}
	err = c.change(func(entries map[string]*certEntry) bool {
		if prev := entries[id]; prev != nil && bytes.Equal(prev.chain, e.chain) && bytes.Equal(prev.key, e.key) {
			return false
		}
		entries[id] = e
		return true
	})
	if err != nil {
		return CertificateInfo{}, err
	}
	info, _ := c.Info(id)
	return info, nil
}

// Delete removes certificate id; a missing one is no change.
func (c *CertTable) Delete(id string) error {
	if err := ValidCertID(id); err != nil {
		return err
	}
	return c.change(func(entries map[string]*certEntry) bool {
		if _, ok := entries[id]; !ok {
			return false
		}
		delete(entries, id)
		return true
	})
}

// change applies edit to a copy of the entries, saves and publishes it.
func (c *CertTable) change(edit func(map[string]*certEntry) bool) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	entries := maps.Clone(c.st.Load().entries)
	if !edit(entries) {
		return nil
	}
	if c.path != "" {
		saved := savedCertificates{Format: certificatesFormat, Certificates: make(map[string]savedCertificate, len(entries))}
		for id, e := range entries {
			saved.Certificates[id] = savedCertificate{Chain: string(e.chain), Key: string(e.key)}
		}
		b, err := json.Marshal(saved)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(c.path, b); err != nil {
			return err
		}
	}
	c.st.Store(newCertState(entries))
	return nil
}
