// Package tenancy decides who may use a Server: which namespaces may place on it (its
// spec.allowedNamespaces, in the shape of a Gateway's allowedRoutes), what objects placed on a
// Server of another namespace ("guests") may ask of the host (GuestPolicy), and which Server
// manages a host when several describe it (Owner). It is pure: callers pass the objects.
package tenancy

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/remote"
)

// From is srv's spec.allowedNamespaces.from; Same when unset (Servers stored before the field).
func From(srv *kamalv1.Server) kamalv1.NamespacesFrom {
	if a := srv.Spec.AllowedNamespaces; a != nil && a.From != "" {
		return a.From
	}
	return kamalv1.NamespacesFromSame
}

// NeedsNamespaceLabels says whether deciding if srv allows namespace takes that namespace's
// labels, so callers read the Namespace object only then.
func NeedsNamespaceLabels(srv *kamalv1.Server, namespace string) bool {
	return namespace != srv.Namespace && From(srv) == kamalv1.NamespacesFromSelector
}

// Allows says whether objects of namespace (whose Namespace object has nsLabels) may place on
// srv. The Server's own namespace is always allowed.
func Allows(srv *kamalv1.Server, namespace string, nsLabels map[string]string) (bool, error) {
	if namespace == srv.Namespace {
		return true, nil
	}
	switch From(srv) {
	case kamalv1.NamespacesFromAll:
		return true, nil
	case kamalv1.NamespacesFromSelector:
		a := srv.Spec.AllowedNamespaces
		if a.Selector == nil {
			return false, fmt.Errorf("spec.allowedNamespaces.selector is missing")
		}
		sel, err := metav1.LabelSelectorAsSelector(a.Selector)
		if err != nil {
			return false, fmt.Errorf("spec.allowedNamespaces.selector: %w", err)
		}
		// An empty selector would admit every namespace; the API refuses it, and so does this.
		return !sel.Empty() && sel.Matches(labels.Set(nsLabels)), nil
	}
	return false, nil
}

// DescribeAllowed says what srv admits, for messages: "from Same", "from All",
// "from Selector tenant=a".
func DescribeAllowed(srv *kamalv1.Server) string {
	from := From(srv)
	if from != kamalv1.NamespacesFromSelector || srv.Spec.AllowedNamespaces.Selector == nil {
		return "from " + string(from)
	}
	return "from Selector " + metav1.FormatLabelSelector(srv.Spec.AllowedNamespaces.Selector)
}

// Host identity prefixes. A host is identified by its address and port (for a Server reached
// directly) and, once connected, by the fingerprint of its host key.
const (
	identityAddress = "address/"
	identityHostKey = "hostkey/"
)

// HostIdentities are the values under which srv is indexed to find other Servers of its host:
// its address and port unless it is reached through a jump host (the same private address
// behind two jump hosts may be two machines), and the fingerprint of the host key it accepted.
func HostIdentities(srv *kamalv1.Server) []string {
	var out []string
	if srv.Spec.JumpHost == nil {
		port := int(srv.Spec.Port)
		if port == 0 {
			port = 22
		}
		if k, err := remote.StoreKey(srv.Spec.Address, port); err == nil {
			out = append(out, identityAddress+k)
		}
	}
	if fp := srv.Status.HostKeyFingerprint; fp != "" {
		out = append(out, identityHostKey+fp)
	}
	return out
}

// Older reports whether a was created before b: by creationTimestamp, then by UID, so that
// every reconcile of every Server agrees on one order.
func Older(a, b *kamalv1.Server) bool {
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.UID < b.UID
}

// Owner returns the Server that manages srv's host when that is another Server, with what the
// two share ("the same address and port 10.0.0.5:22", "the same host key SHA256:…"); nil when
// srv is the owner. The owner is the oldest (Older) of srv and the candidates sharing one of
// its host identities; candidates may include srv itself and Servers of other hosts.
func Owner(srv *kamalv1.Server, candidates []kamalv1.Server) (*kamalv1.Server, string) {
	mine := HostIdentities(srv)
	var owner *kamalv1.Server
	var shared string
	for i := range candidates {
		c := &candidates[i]
		if c.UID == srv.UID && c.Namespace == srv.Namespace && c.Name == srv.Name {
			continue
		}
		id := sharedIdentity(mine, HostIdentities(c))
		if id == "" || !Older(c, srv) || (owner != nil && !Older(c, owner)) {
			continue
		}
		owner, shared = c, id
	}
	if owner == nil {
		return nil, ""
	}
	return owner, describeIdentity(srv, shared)
}

func sharedIdentity(a, b []string) string {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return x
			}
		}
	}
	return ""
}

func describeIdentity(srv *kamalv1.Server, id string) string {
	if fp, ok := strings.CutPrefix(id, identityHostKey); ok {
		return "the same host key " + fp
	}
	port := srv.Spec.Port
	if port == 0 {
		port = 22
	}
	return fmt.Sprintf("the same address and port %s:%d", srv.Spec.Address, port)
}
