package remote

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
)

// HostKeyMismatchError is returned when a host presents a key that is not accepted. The
// connection is refused before authentication, so nothing ran on the host.
type HostKeyMismatchError struct {
	Address     string
	Fingerprint string
}

func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("host key of %s (%s) is not among the accepted keys: refusing to connect", e.Address, e.Fingerprint)
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
