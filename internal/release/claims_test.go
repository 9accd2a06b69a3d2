package release

import (
	"reflect"
	"testing"
	"time"
)

func TestClaims(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Proxy
		want []Claim
	}{
		{"catch-all", Proxy{}, []Claim{{"", "/"}}},
		{"root path is no path", Proxy{PathPrefixes: []string{"/"}}, []Claim{{"", "/"}}},
		{"hosts lowercased, paths trimmed", Proxy{Hosts: []string{"App.Example.com", "b.example.com"}, PathPrefixes: []string{"/api/", "/api"}},
			[]Claim{{"app.example.com", "/api"}, {"b.example.com", "/api"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Claims(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Claims() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestConflicts(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	app := Claim{"app.example.com", "/"}
	api := Claim{"app.example.com", "/api"}
	a := Claimant{Key: "team-a/web", Created: t0, UID: "b", Hosts: []string{"h1", "h2"}, Claims: []Claim{app}}
	b := Claimant{Key: "team-b/web", Created: t0.Add(time.Second), UID: "a", Hosts: []string{"h2"}, Claims: []Claim{app, api}}
	sameTime := Claimant{Key: "team-c/web", Created: t0, UID: "c", Hosts: []string{"h1"}, Claims: []Claim{app}}
	elsewhere := Claimant{Key: "team-d/web", Created: t0.Add(-time.Hour), UID: "d", Hosts: []string{"h9"}, Claims: []Claim{app}}
	apiOnly := Claimant{Key: "team-e/api", Created: t0.Add(-time.Hour), UID: "e", Hosts: []string{"h2"}, Claims: []Claim{api}}

	for _, tc := range []struct {
		name   string
		self   Claimant
		others []Claimant
		want   []Conflict
	}{
		{"the older claimant owns", a, []Claimant{a, b}, []Conflict{}},
		{"the newer one conflicts on the shared claim only", b, []Claimant{a, b}, []Conflict{{app, "team-a/web"}}},
		{"same creation time: the lower UID owns", sameTime, []Claimant{a, sameTime}, []Conflict{{app, "team-a/web"}}},
		{"no shared host, no conflict", a, []Claimant{elsewhere}, []Conflict{}},
		{"a path of the same host is its own claim", b, []Claimant{apiOnly}, []Conflict{{api, "team-e/api"}}},
		{"the earliest owner is named", b, []Claimant{b, a, apiOnly, {Key: "x/y", Created: t0.Add(-2 * time.Hour), Hosts: []string{"h2"}, Claims: []Claim{app}}},
			[]Conflict{{app, "x/y"}, {api, "team-e/api"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Conflicts(tc.self, tc.others)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Conflicts() = %v, want %v", got, tc.want)
			}
			// The answer does not depend on the order the claimants are listed in.
			rev := append([]Claimant(nil), tc.others...)
			for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
				rev[i], rev[j] = rev[j], rev[i]
			}
			if got := Conflicts(tc.self, rev); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("reversed: Conflicts() = %v, want %v", got, tc.want)
			}
		})
	}
}
