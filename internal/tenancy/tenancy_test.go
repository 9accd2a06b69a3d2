package tenancy

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func serverIn(ns string, allowed *kamalv1.AllowedNamespaces) *kamalv1.Server {
	return &kamalv1.Server{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-1"},
		Spec:       kamalv1.ServerSpec{Address: "10.0.0.5", Port: 22, AllowedNamespaces: allowed},
	}
}

func TestAllows(t *testing.T) {
	selector := func(sel *metav1.LabelSelector) *kamalv1.AllowedNamespaces {
		return &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromSelector, Selector: sel}
	}
	teamA := map[string]string{"kubernetes.io/metadata.name": "team-a", "tenant": "a"}
	cases := []struct {
		name      string
		allowed   *kamalv1.AllowedNamespaces
		namespace string
		labels    map[string]string
		want      bool
		wantErr   bool
	}{
		{"unset is Same: own namespace", nil, "platform", nil, true, false},
		{"unset is Same: other namespace refused", nil, "team-a", teamA, false, false},
		{"Same refuses another namespace", &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromSame}, "team-a", teamA, false, false},
		{"empty from is Same", &kamalv1.AllowedNamespaces{}, "team-a", teamA, false, false},
		{"All", &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromAll}, "team-a", nil, true, false},
		{"Selector matches", selector(&metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "a"}}), "team-a", teamA, true, false},
		{"Selector does not match", selector(&metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "c"}}), "team-a", teamA, false, false},
		{"Selector by expression", selector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tenant", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}}), "team-a", teamA, true, false},
		{"Selector never excludes the own namespace", selector(&metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "c"}}), "platform", nil, true, false},
		{"empty selector admits nothing", selector(&metav1.LabelSelector{}), "team-a", teamA, false, false},
		{"Selector without selector", selector(nil), "team-a", teamA, false, true},
		{"invalid selector", selector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tenant", Operator: "Near"}}}), "team-a", teamA, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Allows(serverIn("platform", c.allowed), c.namespace, c.labels)
			if got != c.want || (err != nil) != c.wantErr {
				t.Errorf("Allows = %v, %v; want %v (error %v)", got, err, c.want, c.wantErr)
			}
		})
	}
}

func TestNeedsNamespaceLabelsAndDescribe(t *testing.T) {
	sel := serverIn("platform", &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromSelector,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "a"}}})
	if !NeedsNamespaceLabels(sel, "team-a") || NeedsNamespaceLabels(sel, "platform") || NeedsNamespaceLabels(serverIn("platform", nil), "team-a") {
		t.Error("NeedsNamespaceLabels: only a Selector Server deciding on another namespace needs labels")
	}
	if got := DescribeAllowed(sel); got != "from Selector tenant=a" {
		t.Errorf("DescribeAllowed = %q", got)
	}
	if got := DescribeAllowed(serverIn("platform", nil)); got != "from Same" {
		t.Errorf("DescribeAllowed(unset) = %q", got)
	}
}

func TestHostIdentities(t *testing.T) {
	s := serverIn("platform", nil)
	s.Spec.Address = "WEB-1.Example.com"
	s.Spec.Port = 0
	if got := HostIdentities(s); len(got) != 1 || got[0] != "address/web-1.example.com_22" {
		t.Errorf("identities = %v", got)
	}
	s.Status.HostKeyFingerprint = "SHA256:abc"
	if got := HostIdentities(s); len(got) != 2 || got[1] != "hostkey/SHA256:abc" {
		t.Errorf("identities = %v", got)
	}
	// Behind a jump host the address may be any machine's: only the host key identifies it.
	s.Spec.JumpHost = &kamalv1.JumpHost{ServerName: "bastion"}
	if got := HostIdentities(s); len(got) != 1 || got[0] != "hostkey/SHA256:abc" {
		t.Errorf("identities behind a jump host = %v", got)
	}
}

func TestOwner(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	srv := func(ns, name, uid string, created time.Time, address string, port int32, fp string) kamalv1.Server {
		return kamalv1.Server{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), CreationTimestamp: metav1.NewTime(created)},
			Spec:       kamalv1.ServerSpec{Address: address, Port: port},
			Status:     kamalv1.ServerStatus{HostKeyFingerprint: fp},
		}
	}
	platform := srv("platform", "web-1", "u-2", t0, "10.0.0.5", 22, "SHA256:k1")
	copyA := srv("team-a", "mine", "u-1", t0.Add(time.Minute), "10.0.0.5", 22, "")
	byName := srv("team-a", "by-name", "u-3", t0.Add(2*time.Minute), "web-1.internal", 22, "SHA256:k1")
	sameSecond := srv("team-b", "twin", "u-0", t0, "10.0.0.5", 22, "")
	otherPort := srv("team-a", "other-port", "u-4", t0.Add(time.Minute), "10.0.0.5", 2222, "")
	otherHost := srv("team-a", "other", "u-5", t0.Add(-time.Hour), "10.0.0.6", 22, "SHA256:k2")
	all := []kamalv1.Server{platform, copyA, byName, sameSecond, otherPort, otherHost}

	cases := []struct {
		name      string
		self      kamalv1.Server
		wantOwner string
		wantHow   string
	}{
		// Created in the same second as platform/web-1 with a smaller UID: the older by the
		// tie-break, so it owns the host and web-1 is the duplicate.
		{"tie broken by UID", sameSecond, "", ""},
		{"same address, older by UID", platform, "team-b/twin", "the same address and port 10.0.0.5:22"},
		{"younger copy at the same address", copyA, "team-b/twin", "the same address and port 10.0.0.5:22"},
		{"another address, the same host key", byName, "platform/web-1", "the same host key SHA256:k1"},
		{"another port is another host", otherPort, "", ""},
		{"an older Server of another host", otherHost, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			owner, how := Owner(&c.self, all)
			got := ""
			if owner != nil {
				got = owner.Namespace + "/" + owner.Name
			}
			if got != c.wantOwner || how != c.wantHow {
				t.Errorf("Owner = %q (%q), want %q (%q)", got, how, c.wantOwner, c.wantHow)
			}
		})
	}
	// Every Server of the host agrees on one owner, whatever order the list comes in.
	reversed := []kamalv1.Server{otherHost, otherPort, sameSecond, byName, copyA, platform}
	for _, s := range []kamalv1.Server{platform, copyA} {
		if o, _ := Owner(&s, reversed); o == nil || o.Name != "twin" {
			t.Errorf("%s: owner %v in reversed order", s.Name, o)
		}
	}
	// When the owner goes, the next oldest takes over.
	rest := []kamalv1.Server{platform, copyA, byName}
	if o, _ := Owner(&platform, rest); o != nil {
		t.Errorf("platform/web-1 still has owner %s/%s after the older one went", o.Namespace, o.Name)
	}
	if o, _ := Owner(&copyA, rest); o == nil || o.Name != "web-1" {
		t.Errorf("team-a/mine: owner %v, want platform/web-1", o)
	}
}

func TestOlderIsAStrictOrder(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	a := &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{UID: "a", CreationTimestamp: t0}}
	b := &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{UID: "b", CreationTimestamp: t0}}
	if !Older(a, b) || Older(b, a) || Older(a, a) {
		t.Error("Older is not a strict order on equal timestamps")
	}
	b.CreationTimestamp = metav1.NewTime(t0.Add(-time.Second))
	if !Older(b, a) || Older(a, b) {
		t.Error("an earlier creationTimestamp is not older")
	}
}

func TestParseHostPathPrefixes(t *testing.T) {
	got, err := ParseHostPathPrefixes(" /srv/tenants/ , /data/shared,,/srv/tenants/../tenants")
	if err != nil || strings.Join(got, ",") != "/data/shared,/srv/tenants" {
		t.Errorf("prefixes = %v, %v", got, err)
	}
	if got, err := ParseHostPathPrefixes(""); err != nil || got != nil {
		t.Errorf("empty = %v, %v", got, err)
	}
	for _, bad := range []string{"srv/tenants", "/srv:/x"} {
		if _, err := ParseHostPathPrefixes(bad); err == nil || !strings.Contains(err.Error(), FlagHostPathPrefixes) {
			t.Errorf("%q: error %v, want one naming the flag", bad, err)
		}
	}
}
