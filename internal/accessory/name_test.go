package accessory

import (
	"strings"
	"testing"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/release"
)

// The plain name is ContainerName itself; the suffixed one is apart per namespace and object
// (UID), stays a DNS label at any length, and keeps the plain name readable in front.
func TestHostNames(t *testing.T) {
	a, b := pg(), pg()
	a.UID, b.UID, b.Namespace = "uid-a", "uid-b", "other-shop"
	pa, sa := a.HostNames()
	pb, sb := b.HostNames()
	if pa != "db" || pb != "db" {
		t.Errorf("plain names %q %q", pa, pb)
	}
	if sa == sb || !strings.HasPrefix(sa, "db-") || len(sa) != len("db-")+8 {
		t.Errorf("suffixed names %q %q", sa, sb)
	}
	if _, again := a.HostNames(); again != sa {
		t.Errorf("suffixed name not stable: %q then %q", sa, again)
	}
	long := pg()
	long.ContainerName = strings.Repeat("p", 54) + "-" + strings.Repeat("q", 8)
	if _, s := long.HostNames(); len(s) > 63 || !release.ValidDNSLabel(s) || strings.Contains(s, "--") {
		t.Errorf("long suffixed name %q (%d)", s, len(s))
	}
}

// NameOnHost: the plain name when free or the accessory's own; suffixed when another
// namespace's container, or one the controller did not make, holds it; refused when the holder
// is of the same namespace, or an app of another namespace (the proxy resolves apps by name).
func TestNameOnHost(t *testing.T) {
	s := pg()
	s.UID = "uid-a"
	_, suffixed := s.HostNames()
	labels := func(ns, kind, name string) map[string]string {
		return map[string]string{kamalv1.LabelManagedBy: kamalv1.ManagerName, kamalv1.LabelNamespace: ns, kind: name}
	}
	for _, tc := range []struct {
		name    string
		holder  Holder
		want    string
		refused string
	}{
		{"free", Holder{}, "db", ""},
		{"its own", Holder{Exists: true, Name: "db", Labels: labels("shop", kamalv1.LabelAccessory, "db")}, "db", ""},
		{"another namespace's accessory", Holder{Exists: true, Name: "db", Labels: labels("blog", kamalv1.LabelAccessory, "db")}, suffixed, ""},
		{"a person's container", Holder{Exists: true, Name: "db", Labels: map[string]string{"app": "x"}}, suffixed, ""},
		{"same namespace, another accessory", Holder{Exists: true, Name: "db", Labels: labels("shop", kamalv1.LabelAccessory, "cache")}, "", "in the same namespace"},
		{"same namespace, an app", Holder{Exists: true, Name: "db", Labels: labels("shop", kamalv1.LabelDeployment, "web")}, "", "in the same namespace"},
		{"another namespace's app", Holder{Exists: true, Name: "db", Labels: labels("blog", kamalv1.LabelDeployment, "web")}, "", "app container of another namespace"},
	} {
		got, err := s.NameOnHost(tc.holder)
		switch {
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("%s: %q, %v; want refused with %q", tc.name, got, err, tc.refused)
		case tc.refused == "" && (err != nil || got != tc.want):
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// The setup container is named in the reserved kamal-setup-… space, apart per accessory,
// labelled as the accessory's, and never on a network.
func TestSetupName(t *testing.T) {
	a, b := pg(), pg()
	b.Namespace = "other-shop"
	sa, sb := a.SetupOptions(), b.SetupOptions()
	if sa.Name == sb.Name || !strings.HasPrefix(sa.Name, "kamal-setup-db-") || !docker.ReservedName(sa.Name) {
		t.Errorf("setup names %q %q", sa.Name, sb.Name)
	}
	if sa.HostConfig.NetworkMode != "none" || !docker.Owned(sa.Config.Labels, a.SetupLabels()) || docker.Owned(sa.Config.Labels, b.SetupLabels()) {
		t.Errorf("setup %q on %q labelled %v", sa.Name, sa.HostConfig.NetworkMode, sa.Config.Labels)
	}
	long := pg()
	long.ContainerName = strings.Repeat("p", 63)
	if n := long.SetupName(); len(n) > 63 || !release.ValidDNSLabel(n) {
		t.Errorf("long setup name %q (%d)", n, len(n))
	}
}
