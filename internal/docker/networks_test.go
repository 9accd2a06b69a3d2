package docker

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func TestNamespaceNetwork(t *testing.T) {
	if got := NamespaceNetwork("shop"); got != "kamal-shop" {
		t.Errorf("shop: %q", got)
	}
	// The longest namespace that fits keeps its whole name.
	fits := strings.Repeat("a", 63-len("kamal-"))
	if got := NamespaceNetwork(fits); got != "kamal-"+fits {
		t.Errorf("%d characters: %q", len(fits), got)
	}
	// Longer ones (a namespace may have 63) are cut and told apart by a hash of all of it.
	a := strings.Repeat("n", 60) + "-ab"
	b := strings.Repeat("n", 60) + "-cd"
	na, nb := NamespaceNetwork(a), NamespaceNetwork(b)
	if na == nb || len(na) > 63 || len(nb) > 63 || !strings.HasPrefix(na, "kamal-nnnn") {
		t.Errorf("long namespaces: %q (%d), %q (%d)", na, len(na), nb, len(nb))
	}
	if NamespaceNetwork(a) != na {
		t.Error("not stable")
	}
	// Never the old shared network, whatever the namespace.
	for _, ns := range []string{"a", "kamal", "default", a} {
		if NamespaceNetwork(ns) == LegacyNetwork {
			t.Errorf("%s: the shared network", ns)
		}
	}
}

func TestOwned(t *testing.T) {
	mine := map[string]string{kamalv1.LabelManagedBy: kamalv1.ManagerName, kamalv1.LabelNamespace: "shop", kamalv1.LabelAccessory: "db"}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   map[string]string
		owned  bool
	}{
		{"its own", mine, map[string]string{kamalv1.LabelNamespace: "shop", kamalv1.LabelAccessory: "db"}, true},
		{"managed, nothing more asked", mine, nil, true},
		{"another namespace", mine, map[string]string{kamalv1.LabelNamespace: "blog", kamalv1.LabelAccessory: "db"}, false},
		{"another object", mine, map[string]string{kamalv1.LabelNamespace: "shop", kamalv1.LabelAccessory: "cache"}, false},
		{"not the controller's", map[string]string{kamalv1.LabelNamespace: "shop", kamalv1.LabelAccessory: "db"}, map[string]string{kamalv1.LabelNamespace: "shop"}, false},
		{"no labels", nil, nil, false},
		{"a label missing", mine, map[string]string{kamalv1.LabelPrefix + "proxy": "true"}, false},
	} {
		if got := Owned(tc.labels, tc.want); got != tc.owned {
			t.Errorf("%s: owned %v, want %v", tc.name, got, tc.owned)
		}
	}
	if got := OwnerOf(mine); got != "Accessory shop/db" {
		t.Errorf("owner %q", got)
	}
	if got := OwnerOf(map[string]string{"app": "x"}); got != "" {
		t.Errorf("owner of someone else's %q", got)
	}
}

func TestReservedName(t *testing.T) {
	for name, want := range map[string]bool{
		"kamal-proxy": true, "kamal-proxy-previous": true, "kamal-proxy-failed": true, "kamal-setup-db-1a2b3c4d": true,
		"kamal": false, "kamal-proxyx": false, "kamal-db": false, "db": false, "my-kamal-proxy": false, "kamal-setup": false,
	} {
		if ReservedName(name) != want {
			t.Errorf("%s: reserved %v, want %v", name, !want, want)
		}
	}
}

// Docker's answers when its pools are used up, from 20.10 (Debian bookworm) and 27+.
func TestPoolsExhausted(t *testing.T) {
	for _, msg := range []string{
		"Error response from daemon: could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
		"Error response from daemon: all predefined address pools have been fully subnetted",
	} {
		if !isPoolsExhausted(errors.New(msg)) {
			t.Errorf("not read as exhausted: %s", msg)
		}
	}
	if isPoolsExhausted(errors.New("network with name kamal-shop already exists")) {
		t.Error("a conflict read as exhausted")
	}
	err := error(&PoolsExhaustedError{Network: "kamal-shop", Err: errors.New("all predefined address pools have been fully subnetted")})
	if !IsPoolsExhausted(err) || !strings.Contains(err.Error(), "default-address-pools") || !strings.Contains(err.Error(), "kamal-shop") {
		t.Errorf("message: %v", err)
	}
}

func TestAddressOn(t *testing.T) {
	ns := &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
		"kamal":      {IPAddress: netip.MustParseAddr("10.0.0.2")},
		"kamal-shop": {IPAddress: netip.MustParseAddr("10.0.1.2")},
		"none":       {},
	}}
	if ip, n := AddressOn(ns, "kamal-shop", LegacyNetwork); ip.String() != "10.0.1.2" || n != "kamal-shop" {
		t.Errorf("namespace network first: %s on %s", ip, n)
	}
	if ip, n := AddressOn(ns, "kamal-blog", LegacyNetwork); ip.String() != "10.0.0.2" || n != LegacyNetwork {
		t.Errorf("fallback: %s on %s", ip, n)
	}
	if ip, _ := AddressOn(ns, "none"); ip.IsValid() {
		t.Errorf("no address: %s", ip)
	}
	if ip, _ := AddressOn(nil, "kamal"); ip.IsValid() {
		t.Error("nil settings")
	}
}
