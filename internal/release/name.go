package release

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Host-side names are DNS labels, so the proxy (and anything on the namespace network) resolves
// them, and valid Docker container names.
const (
	// MaxNameLength is the longest DNS label.
	MaxNameLength = 63
	// shortVersion is how much of the version a long name keeps.
	shortVersion = 12
	// idDigits is how many hex digits of the identity hash a long name ends with.
	idDigits = 8
	// takenDigits is how many hex digits of the spec hash a short name adds when taken.
	takenDigits = 8
	// roleShare is what a long name keeps of the role, at least, when both names are long.
	roleShare = 16
)

// ContainerNameFor is the host-side name of a container of a Deployment's role: at most 63
// characters of a-z, 0-9 and '-', starting and ending with a letter or digit (ValidDNSLabel),
// readable, and apart from the names of other objects' containers.
//
// Each part is made a DNS label first: lowercased, any other character than a-z and 0-9
// becomes '-', runs of '-' become one, none at the ends (a tag v1.4.2_RC becomes v1-4-2-rc).
// Then:
//
//   - short form, when `<deployment>-<role>-<version>` leaves room for the taken suffix (at most
//     54 characters): that name, as users know it (dokuya-web-v2); taken adds '-' and the first
//     8 digits of the spec hash (dokuya-web-v2-3f9a0c1e), which is keyed with the
//     Deployment's UID and covers its namespace.
//   - long form, otherwise: `<deployment>-<role>-<version>-<id>` with the version cut to its
//     first 12 characters, the deployment and role cut to what is left (the role keeps at
//     least 16 when both are long), and id the first 8 hex digits of a SHA-256 over namespace,
//     UID, deployment, role and the full version, plus the spec hash when taken
//     (storefront-billings-web-9b1e4c27aa01-5c0f3e2d). Two objects whose cut names look
//     alike differ by id.
//
// The full version, namespace, deployment and role stay in the container's labels.
func ContainerNameFor(namespace, uid, deployment, role, version, hash string, taken bool) string {
	d, r, v := dnsPart(deployment), dnsPart(role), dnsPart(version)
	if d != "" && r != "" && v != "" {
		short := d + "-" + r + "-" + v
		if len(short)+1+takenDigits <= MaxNameLength {
			if taken {
				short += "-" + dnsPart(prefix(hash, takenDigits))
			}
			return strings.TrimSuffix(short, "-")
		}
	}
	sum := sha256.New()
	for _, s := range []string{"kamal-name-v1", namespace, uid, deployment, role, version} {
		sum.Write([]byte(s))
		sum.Write([]byte{0})
	}
	if taken {
		sum.Write([]byte(hash))
	}
	id := hex.EncodeToString(sum.Sum(nil))[:idDigits]
	v = strings.Trim(prefix(v, shortVersion), "-")
	budget := MaxNameLength - 1 - len(id) // "-<id>"
	if v != "" {
		budget -= len(v) + 1
	}
	if d != "" && r != "" {
		budget-- // the '-' between them
	}
	rn := min(len(r), max(roleShare, budget-len(d)))
	dn := min(len(d), budget-rn)
	return join(strings.Trim(d[:dn], "-"), strings.Trim(r[:rn], "-"), v, id)
}

// ValidDNSLabel says whether s is a DNS label as Kubernetes writes them (RFC 1123): 1 to 63
// characters of a-z, 0-9 and '-', starting and ending with a letter or digit. Such a name is
// also a valid Docker container name (when longer than 1 character).
func ValidDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLength || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// dnsPart makes s a part of a DNS label: lowercase a-z and 0-9, other characters as one '-',
// none at the ends.
func dnsPart(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(c)
			dash = false
		} else {
			dash = true
		}
	}
	return b.String()
}

// prefix is the first n bytes of s (s is ASCII here).
func prefix(s string, n int) string { return s[:min(len(s), n)] }

// join joins the non-empty parts with '-'.
func join(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "-")
}

// ReleaseContainerName is the host-side name of the container that runs a Deployment's release
// command for revision: `<deployment>-release-<version>-<id>`, id being the first 8 hex digits
// of a SHA-256 over namespace, UID, deployment and revision. It is the same on every host and
// after a restart, so a release started once is found again instead of run twice. The version
// is cut to its first 12 characters and the deployment to what is left of 63 characters; the
// whole revision stays in the container's labels. A role named "release" has containers of
// the same shape, but of another id: the controller still checks the labels of a container it
// finds under this name before it takes it for its release.
func ReleaseContainerName(namespace, uid, deployment, version, revision string) string {
	sum := sha256.New()
	for _, s := range []string{"kamal-release-v1", namespace, uid, deployment, revision} {
		sum.Write([]byte(s))
		sum.Write([]byte{0})
	}
	id := hex.EncodeToString(sum.Sum(nil))[:idDigits]
	const word = "release"
	d, v := dnsPart(deployment), strings.Trim(prefix(dnsPart(version), shortVersion), "-")
	budget := MaxNameLength - len(word) - 1 - len(id) - 1 // "<word>-" and "-<id>"
	if v != "" {
		budget -= len(v) + 1
	}
	if d != "" {
		budget-- // the '-' after it
	}
	d = strings.Trim(d[:min(len(d), max(budget, 0))], "-")
	return join(d, word, v, id)
}
