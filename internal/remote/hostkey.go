package remote

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// HostKeyMismatchError is returned when a host presents a key that is not accepted, or holds
// no key of an accepted type. The connection is refused before authentication, so nothing ran
// on the host.
type HostKeyMismatchError struct {
	Address string
	// Fingerprint is the SHA256 fingerprint of the key the host presented; empty when it
	// presented none because it offers no accepted key type (see Offered).
	Fingerprint string
	// Offered are the host key algorithms the host offers, when it offers none of the accepted
	// ones.
	Offered []string
}

// Presented says what the host showed: "host key SHA256:…", or the key types it offers
// instead of the accepted ones.
func (e *HostKeyMismatchError) Presented() string {
	if e.Fingerprint != "" {
		return "host key " + e.Fingerprint
	}
	return fmt.Sprintf("host key (it offers only %s)", strings.Join(e.Offered, ", "))
}

func (e *HostKeyMismatchError) Error() string {
	if e.Fingerprint == "" {
		return fmt.Sprintf("host %s offers no key of an accepted type (it offers %s): refusing to connect", e.Address, strings.Join(e.Offered, ", "))
	}
	return fmt.Sprintf("host key of %s (%s) is not among the accepted keys: refusing to connect", e.Address, e.Fingerprint)
}

// trustOnFirstUseAlgorithms is the host key preference when no key is known yet: ed25519, then
// ecdsa, then rsa with SHA-2 signatures, SHA-1's ssh-rsa last for old servers. Certificates
// are left out: the key recorded is the host's own.
var trustOnFirstUseAlgorithms = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA,
}

// HostKeyAlgorithms are the host key algorithms a client offers to accept exactly keys: the
// algorithms that can sign with each key's type, in the keys' order (for rsa keys and rsa
// certificates SHA-512, then SHA-256, then SHA-1's ssh-rsa last). A server holding several
// keys (a stock sshd has rsa, ecdsa and ed25519 ones) then presents a pinned one rather than
// the one the client library happens to prefer. With no keys (trust on first use) it is a
// fixed preference, ed25519 first.
func HostKeyAlgorithms(keys []ssh.PublicKey) []string {
	if len(keys) == 0 {
		return append([]string(nil), trustOnFirstUseAlgorithms...)
	}
	var algos []string
	for _, k := range keys {
		for _, a := range algorithmsFor(k.Type()) {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// algorithmsFor are the signature algorithms of a host key format.
func algorithmsFor(keyType string) []string {
	switch keyType {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	case ssh.CertAlgoRSAv01:
		return []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01}
	default:
		return []string{keyType}
	}
}

// noAcceptedKeyType turns a failed host key negotiation into the mismatch it is: the host holds
// none of the accepted key types, so it cannot show an accepted key.
func noAcceptedKeyType(address string, err error) error {
	var neg *ssh.AlgorithmNegotiationError
	if errors.As(err, &neg) && neg.What == "host key" {
		return &HostKeyMismatchError{Address: address, Offered: neg.RequestedAlgorithms}
	}
	return err
}

// ParseKnownHosts parses authorized_keys-form lines ("ssh-ed25519 AAAA… [comment]").
func ParseKnownHosts(lines []string) ([]ssh.PublicKey, error) {
	keys := make([]ssh.PublicKey, 0, len(lines))
	for i, l := range lines {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(l)))
		if err != nil {
			return nil, fmt.Errorf("knownHosts[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// FormatKey gives a key in the form knownHosts accepts.
func FormatKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// hostKeyCallback accepts exactly the given keys; with trustAny and no keys it accepts the first
// key seen (trust on first use). The key presented is stored in *seen either way, so callers can
// record it.
func hostKeyCallback(accepted []ssh.PublicKey, trustAny bool, seen *ssh.PublicKey) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		*seen = key
		for _, k := range accepted {
			if k.Type() == key.Type() && bytes.Equal(k.Marshal(), key.Marshal()) {
				return nil
			}
		}
		if trustAny && len(accepted) == 0 {
			return nil
		}
		return &HostKeyMismatchError{Address: hostname, Fingerprint: ssh.FingerprintSHA256(key)}
	}
}

// IsHostKeyMismatch reports whether err is (or wraps) a host key refusal.
func IsHostKeyMismatch(err error) bool {
	var m *HostKeyMismatchError
	return errors.As(err, &m)
}

// IsAuthFailure reports whether the host refused our credentials.
func IsAuthFailure(err error) bool {
	return err != nil && strings.Contains(err.Error(), "unable to authenticate")
}
