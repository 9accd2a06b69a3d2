package release

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

const (
	sha40 = "9b1e4c27aa0153f0c2d4e6f8a1b3c5d7e9f0a2b4"
	hash  = "3f9a0c1e5b7d2468"
	uid   = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
)

func checkName(t *testing.T, n string) {
	t.Helper()
	if !ValidDNSLabel(n) || len(n) > 63 {
		t.Errorf("%q (%d characters) is not a DNS label of at most 63 characters", n, len(n))
	}
}

func TestContainerNameShortFormIsUnchanged(t *testing.T) {
	r := Role{Namespace: "default", UID: uid, Deployment: "dokuya", Name: "web", Image: "x/dokuya:2f3c9a1"}
	if n := r.ContainerName(hash, false); n != "dokuya-web-2f3c9a1" {
		t.Errorf("name %q", n)
	}
	if n := r.ContainerName(hash, true); n != "dokuya-web-2f3c9a1-3f9a0c1e" {
		t.Errorf("taken name %q", n)
	}
	r.Image = "localhost:5000/dokuya:v2"
	if n := r.ContainerName(hash, false); n != "dokuya-web-v2" {
		t.Errorf("name %q", n)
	}
	r.Image = "dokuya@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if n := r.ContainerName(hash, false); n != "dokuya-web-0123456789ab" {
		t.Errorf("digest name %q", n)
	}
}

// The 502 of issue: storefront-billings-web-<40-digit SHA> is 64 characters, one too many for
// a DNS label, so the proxy could not resolve its upstream.
func TestContainerNameAtTheDNSLimit(t *testing.T) {
	r := Role{Namespace: "shop", UID: uid, Deployment: "storefront-billings", Name: "web", Image: "registry.example.com/storefront:" + sha40}
	if old := r.Deployment + "-" + r.Name + "-" + sha40; len(old) != 64 {
		t.Fatalf("the old name has %d characters", len(old))
	}
	n := r.ContainerName(hash, false)
	checkName(t, n)
	if !strings.HasPrefix(n, "storefront-billings-web-"+sha40[:12]+"-") {
		t.Errorf("name %q does not show deployment, role and short version", n)
	}
	taken := r.ContainerName(hash, true)
	checkName(t, taken)
	if taken == n {
		t.Errorf("taken name %q is the plain name", taken)
	}
	if other := r.ContainerName("0000000000000000", true); other == taken {
		t.Errorf("two specs of a version share the taken name %q", taken)
	}
	if r.ContainerName(hash, false) != n {
		t.Error("the name is not stable")
	}
}

// The short form is kept while `-<8 digits>` still fits after it: 54 characters plain.
func TestContainerNameRoomForTheTakenSuffix(t *testing.T) {
	for _, c := range []struct {
		version string
		long    bool
	}{{strings.Repeat("a", 39), false}, {strings.Repeat("a", 40), true}, {strings.Repeat("a", 48), true}} {
		// "storefront-web-" is 15 characters.
		n := ContainerNameFor("shop", uid, "storefront", "web", c.version, hash, false)
		taken := ContainerNameFor("shop", uid, "storefront", "web", c.version, hash, true)
		checkName(t, n)
		checkName(t, taken)
		plain := "storefront-web-" + c.version
		if got := n != plain; got != c.long {
			t.Errorf("%d-character plain name: got %q", len(plain), n)
		}
		if !c.long && (len(n) != 54 || taken != n+"-3f9a0c1e" || len(taken) != 63) {
			t.Errorf("short form at the limit: %q, taken %q (%d)", n, taken, len(taken))
		}
	}
}

func TestContainerNameOfLongTags(t *testing.T) {
	tag := strings.Repeat("Release_2026.01.14-", 7)[:128]
	for _, d := range []string{"dokuya", "storefront-billings", strings.Repeat("d", 53)} {
		for _, role := range []string{"web", "background-jobs", strings.Repeat("r", 63)} {
			n := ContainerNameFor("shop", uid, d, role, tag, hash, false)
			taken := ContainerNameFor("shop", uid, d, role, tag, hash, true)
			checkName(t, n)
			checkName(t, taken)
			if n == taken {
				t.Errorf("taken %q is the plain name", n)
			}
			if !strings.Contains(n, "-release-202") {
				t.Errorf("%q does not show the start of the version", n)
			}
			if !strings.HasPrefix(n, d[:min(len(d), 20)]) || !strings.Contains(n, role[:min(len(role), 16)]) {
				t.Errorf("%q does not show deployment %s and role %s", n, d, role)
			}
		}
	}
}

func TestContainerNameMapsTags(t *testing.T) {
	for version, want := range map[string]string{
		"v1.4.2":              "app-web-v1-4-2",
		"1.4.2_RC1":           "app-web-1-4-2-rc1",
		"Release_2026.01":     "app-web-release-2026-01",
		"build--7__x..y":      "app-web-build-7-x-y",
		"_leading.and.trail_": "app-web-leading-and-trail",
		"V2":                  "app-web-v2",
	} {
		n := ContainerNameFor("ns", uid, "app", "web", version, hash, false)
		if n != want {
			t.Errorf("version %q: name %q, want %q", version, n, want)
		}
		checkName(t, n)
		checkName(t, ContainerNameFor("ns", uid, "app", "web", version, hash, true))
	}
	// A tag with no letter or digit names no version: the long form, which still identifies it.
	for _, version := range []string{"_", "__", "_._"} {
		n := ContainerNameFor("ns", uid, "app", "web", version, hash, false)
		checkName(t, n)
		if !strings.HasPrefix(n, "app-web-") || len(n) != len("app-web-")+8 {
			t.Errorf("version %q: name %q", version, n)
		}
	}
	if ContainerNameFor("ns", uid, "app", "web", "_", hash, false) == ContainerNameFor("ns", uid, "app", "web", "__", hash, false) {
		t.Error("two tags with no letter or digit share a name")
	}
}

// Cut names of two objects look alike; the id after them keeps them apart.
func TestContainerNameApartAcrossObjects(t *testing.T) {
	d := "storefront-billings-and-payments-eu-central-1-blue" // 50 characters
	a := ContainerNameFor("shop-a", uid, d, "web", sha40, hash, false)
	b := ContainerNameFor("shop-b", uid, d, "web", sha40, hash, false)
	c := ContainerNameFor("shop-a", "another-uid", d, "web", sha40, hash, false)
	for _, n := range []string{a, b, c} {
		checkName(t, n)
	}
	if a == b || a == c || b == c {
		t.Errorf("names of different objects collide: %q %q %q", a, b, c)
	}
	// Cut alike: the deployment names differ only after what the name keeps of them.
	e := ContainerNameFor("shop-a", uid, d+"-x", "web", sha40, hash, false)
	if a[:len(a)-8] != e[:len(e)-8] || a == e {
		t.Errorf("%q and %q should look alike and differ", a, e)
	}
	// Versions alike in their first 12 characters.
	f := ContainerNameFor("shop-a", uid, d, "web", sha40[:39]+"0", hash, false)
	if a == f {
		t.Errorf("two versions share the name %q", a)
	}
	// The short form is the same in every namespace: a host shared by namespaces must count a
	// name another object's container holds as taken; the taken names differ, as the spec
	// hash is keyed with the Deployment's UID and covers its namespace.
	r1 := Role{Namespace: "shop-a", UID: "uid-a", Deployment: "dokuya", Name: "web", Image: "dokuya:v2"}
	r2 := Role{Namespace: "shop-b", UID: "uid-b", Deployment: "dokuya", Name: "web", Image: "dokuya:v2"}
	if r1.ContainerName(r1.Hash(r1.UID), true) == r2.ContainerName(r2.Hash(r2.UID), true) {
		t.Error("taken names of two namespaces collide")
	}
}

func TestContainerNameAlwaysValid(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(alphabet string, n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	const label = "abcdefghijklmnopqrstuvwxyz0123456789-"
	const tag = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
	for i := range 20000 {
		d := "d" + pick(label, rng.IntN(52)) + "z"
		r := "r" + pick(label, rng.IntN(62))
		v := pick(tag[:62], 1) + pick(tag, rng.IntN(128))
		ns := fmt.Sprintf("ns-%d", i%7)
		for _, taken := range []bool{false, true} {
			n := ContainerNameFor(ns, uid, d, r, v, hash, taken)
			if !ValidDNSLabel(n) || n != ContainerNameFor(ns, uid, d, r, v, hash, taken) {
				t.Fatalf("(%q, %q, %q, %v) → %q (%d)", d, r, v, taken, n, len(n))
			}
		}
	}
}

func TestValidDNSLabel(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "dokuya-web-v2": true, "0abc": true, strings.Repeat("a", 63): true,
		"": false, strings.Repeat("a", 64): false, "-a": false, "a-": false, "A": false,
		"a_b": false, "a.b": false, "a b": false, "ä": false,
	} {
		if ValidDNSLabel(s) != want {
			t.Errorf("ValidDNSLabel(%q) = %v", s, !want)
		}
	}
}

// Examples of real names, for the docs (go test -run Examples -v).
func TestContainerNameExamples(t *testing.T) {
	for _, c := range [][3]string{
		{"dokuya", "web", "2f3c9a1"},
		{"dokuya", "web", "v1.4.2"},
		{"storefront-billings", "web", sha40},
		{"storefront", "web", strings.Repeat("Release_2026.01.14-", 7)[:128]},
		{"storefront-billings-and-payments-eu-central-1-blue", "background-jobs", "v2"},
	} {
		for _, ns := range []string{"shop", "shop-staging"} {
			t.Logf("%-13s %-52s %-16s %-20.20s → %s | taken %s", ns, c[0], c[1], c[2],
				ContainerNameFor(ns, uid, c[0], c[1], c[2], hash, false), ContainerNameFor(ns, uid, c[0], c[1], c[2], hash, true))
		}
	}
}

func TestReleaseContainerName(t *testing.T) {
	a := ReleaseContainerName("shop", "uid-1", "dokuya", "v2", "rev-a")
	if !strings.HasPrefix(a, "dokuya-release-v2-") || !ValidDNSLabel(a) {
		t.Errorf("name %q", a)
	}
	if b := ReleaseContainerName("shop", "uid-1", "dokuya", "v2", "rev-a"); b != a {
		t.Errorf("not deterministic: %q, %q", a, b)
	}
	for _, other := range []string{
		ReleaseContainerName("shop", "uid-1", "dokuya", "v2", "rev-b"),
		ReleaseContainerName("shop", "uid-2", "dokuya", "v2", "rev-a"),
		ReleaseContainerName("blog", "uid-1", "dokuya", "v2", "rev-a"),
	} {
		if other == a {
			t.Errorf("another revision or object has the same name %q", a)
		}
	}
	long := ReleaseContainerName("ns", "uid", strings.Repeat("d", 53), "V1.4.2_RC-"+strings.Repeat("x", 100), "rev")
	if !ValidDNSLabel(long) || !strings.Contains(long, "-release-v1-4-2-rc-") {
		t.Errorf("long name %q (%d)", long, len(long))
	}
	if n := ReleaseContainerName("ns", "uid", "app", "", "rev"); !ValidDNSLabel(n) || !strings.HasPrefix(n, "app-release-") {
		t.Errorf("no version: %q", n)
	}
}
