package controllers

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func TestParseWatchNamespaces(t *testing.T) {
	for in, want := range map[string][]string{
		"":                       nil,
		" , ":                    nil,
		"team-a":                 {"team-a"},
		"team-a, team-b,,team-a": {"team-a", "team-b"},
	} {
		got, err := ParseWatchNamespaces(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseWatchNamespaces(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"Team-A", "team_a", "a/b", strings.Repeat("a", 64)} {
		if _, err := ParseWatchNamespaces(in); err == nil || !strings.Contains(err.Error(), "--watch-namespaces") {
			t.Errorf("ParseWatchNamespaces(%q) = %v, want an error naming the flag", in, err)
		}
	}
}

func TestCachedNamespacesAlwaysHoldTheControllersOwn(t *testing.T) {
	if got := cachedNamespaces(nil, "kamal-operator-system"); got != nil {
		t.Errorf("no watch list: %q, want nil (all namespaces)", got)
	}
	if got := cachedNamespaces([]string{"team-b", "team-a"}, "ops"); !slices.Equal(got, []string{"ops", "team-a", "team-b"}) {
		t.Errorf("got %q", got)
	}
	if got := cachedNamespaces([]string{"ops"}, "ops"); !slices.Equal(got, []string{"ops"}) {
		t.Errorf("got %q", got)
	}
}

func TestIdentityOnlyDropsEverythingButTheIdentity(t *testing.T) {
	in := &metav1.PartialObjectMetadata{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", UID: "u-1", ResourceVersion: "42",
			Labels:        map[string]string{"a": "b"},
			Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"password":"c2VjcmV0"}}`},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
			Finalizers:    []string{"f"},
		},
	}
	out, err := identityOnly(in)
	if err != nil {
		t.Fatal(err)
	}
	want := &metav1.PartialObjectMetadata{TypeMeta: in.TypeMeta, ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", ResourceVersion: "42"}}
	if fmt.Sprintf("%+v", out) != fmt.Sprintf("%+v", want) {
		t.Errorf("got %+v\nwant %+v", out, want)
	}
	other := &corev1.Namespace{}
	if out, _ := identityOnly(other); out != other {
		t.Errorf("a full object was changed: %+v", out)
	}
}

func secretOf(name, rv string, size int) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: rv},
		Data: map[string][]byte{"k": []byte(strings.Repeat("x", size))}}
}

func TestContentCacheServesOnlyTheCurrentVersion(t *testing.T) {
	c := newContentCache(1<<20, 10)
	c.put("Secret/ns/a", secretOf("a", "1", 10))
	var got corev1.Secret
	if !c.get("Secret/ns/a", "1", &got) || string(got.Data["k"]) != strings.Repeat("x", 10) {
		t.Fatalf("kept version not served: %+v", got)
	}
	got.Data["k"][0] = 'y' // the caller's copy is its own
	var again corev1.Secret
	if !c.get("Secret/ns/a", "1", &again) || again.Data["k"][0] != 'x' {
		t.Errorf("a caller changed the kept copy")
	}
	if c.get("Secret/ns/a", "2", &got) {
		t.Error("served resourceVersion 1 for 2")
	}
	if c.get("ConfigMap/ns/a", "1", &corev1.ConfigMap{}) || c.get("Secret/ns/a", "1", &corev1.ConfigMap{}) {
		t.Error("served a Secret for a ConfigMap")
	}
	c.put("Secret/ns/a", secretOf("a", "2", 10))
	if c.get("Secret/ns/a", "1", &got) || !c.get("Secret/ns/a", "2", &got) || c.len() != 1 {
		t.Errorf("a new version did not replace the old one (%d kept)", c.len())
	}
}

func TestContentCacheStaysWithinItsBounds(t *testing.T) {
	c := newContentCache(64<<10, 8)
	for i := range 20 {
		c.put(fmt.Sprintf("Secret/ns/%d", i), secretOf(fmt.Sprint(i), "1", 100))
	}
	if c.len() != 8 {
		t.Errorf("%d kept, want 8 (the count bound)", c.len())
	}
	if c.get("Secret/ns/0", "1", &corev1.Secret{}) || !c.get("Secret/ns/19", "1", &corev1.Secret{}) {
		t.Error("not the least recently used went first")
	}
	// Reading one keeps it: the others go first.
	c.get("Secret/ns/12", "1", &corev1.Secret{})
	for i := 20; i < 27; i++ {
		c.put(fmt.Sprintf("Secret/ns/%d", i), secretOf(fmt.Sprint(i), "1", 100))
	}
	if !c.get("Secret/ns/12", "1", &corev1.Secret{}) {
		t.Error("the entry read last was dropped")
	}
	// The byte bound: 7 KiB objects in 64 KiB.
	c = newContentCache(64<<10, 100)
	for i := range 20 {
		c.put(fmt.Sprintf("Secret/ns/%d", i), secretOf(fmt.Sprint(i), "1", 7<<10))
	}
	if c.bytes > 64<<10 || c.len() != 9 {
		t.Errorf("%d kept in %d bytes, want 9 within %d", c.len(), c.bytes, 64<<10)
	}
	// One object larger than an eighth of the budget is not kept.
	c.put("Secret/ns/big", secretOf("big", "1", 9<<10))
	if c.get("Secret/ns/big", "1", &corev1.Secret{}) {
		t.Error("kept an object of more than an eighth of the budget")
	}
}

// Managed fields are dropped from every cached object: no reconciler reads them, and a List
// copies them for each Server on every pass.
func TestManagerOptionsDropManagedFields(t *testing.T) {
	o := ManagerOptions(ctrl.Options{}, Options{})
	if o.Cache.DefaultTransform == nil {
		t.Fatal("no default transform")
	}
	srv := &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Name: "web-1", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	out, err := o.Cache.DefaultTransform(srv)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.(*kamalv1.Server); got.Name != "web-1" || got.ManagedFields != nil {
		t.Errorf("got %+v", got.ObjectMeta)
	}
}
