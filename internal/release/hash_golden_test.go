package release

import (
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/spechash"
)

// everyOption sets every field of ContainerOptions, so the goldens cover each one.
func everyOption() *kamalv1.ContainerOptions {
	return &kamalv1.ContainerOptions{
		Resources: &kamalv1.Resources{
			CPUs: ptr.To(resource.MustParse("1.5")), Memory: ptr.To(resource.MustParse("512Mi")),
			MemoryReservation: ptr.To(resource.MustParse("256Mi")), PidsLimit: ptr.To[int64](200),
		},
		RestartPolicy:          kamalv1.RestartOnFailure,
		RestartMaxRetries:      ptr.To[int32](5),
		ExtraHosts:             []string{"db.internal:10.0.0.5", "host.docker.internal:host-gateway"},
		Ulimits:                []kamalv1.Ulimit{{Name: "nofile", Soft: 1024, Hard: 65536}, {Name: "core", Soft: 0, Hard: 0}},
		User:                   "1000:1000",
		WorkingDir:             "/app",
		ShmSize:                ptr.To(resource.MustParse("64Mi")),
		CapAdd:                 []string{"NET_ADMIN"},
		CapDrop:                []string{"ALL"},
		Privileged:             true,
		ReadOnlyRootFilesystem: true,
		Init:                   true,
		StopSignal:             "SIGQUIT",
		Tmpfs:                  []string{"/tmp", "/run"},
		Devices:                []string{"/dev/fuse:/dev/fuse:rwm"},
		DNS:                    []string{"1.1.1.1", "2606:4700:4700::1111"},
		Sysctls:                map[string]string{"net.core.somaxconn": "1024", "net.ipv4.tcp_syncookies": "1"},
		Healthcheck: &kamalv1.ContainerHealthcheck{
			Command:  []string{"/bin/check", "--quick"},
			Interval: &metav1.Duration{Duration: 10 * time.Second}, Timeout: &metav1.Duration{Duration: 5 * time.Second},
			Retries: 3, StartPeriod: &metav1.Duration{Duration: 30 * time.Second},
		},
	}
}

const goldenUID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"

// goldenRoles are realistic roles whose hashes were taken from the code before the versioned
// projection (json.Marshal of Role). They must never change: a change recreates every running
// container of every Deployment on a controller upgrade.
func goldenRoles() map[string]struct {
	role Role
	hash string
} {
	type g = struct {
		role Role
		hash string
	}
	return map[string]g{
		"minimal": {Role{Namespace: "default", Deployment: "dokuya", Name: "web", Image: "docker.io/shuirong/dokuya:2f3c9a1",
			Env: []string{"PHX_HOST=0.0.0.0"}}, "41f772c8a2ace15b"},
		"no env at all": {Role{Namespace: "default", Deployment: "dokuya", Name: "jobs", Image: "docker.io/shuirong/dokuya:2f3c9a1"}, "e1d6546d149758b6"},
		"secrets, cmd, labels, volumes, restart": {Role{
			Namespace: "shop", Deployment: "storefront", Name: "jobs", Image: "registry.example.com:5000/shop/storefront:v1.4.2",
			Cmd: []string{"bin/jobs", "--queue", "default"},
			Env: []string{"PHX_HOST=0.0.0.0", "DATABASE_URL=postgres://app:p<w>&d@db:5432/app?sslmode=disable&pool=5",
				"SECRET_KEY_BASE=Zm9vYmFyYmF6cXV4\"quoted\"\\back", "EMPTY="},
			Labels:  map[string]string{"team": "shop", "app.example.com/tier": "backend", "a": ""},
			Volumes: []string{"/srv/uploads:/app/uploads", "cache:/app/tmp/cache:ro"},
			Logging: &kamalv1.Logging{Driver: "json-file", Options: map[string]string{"max-size": "10m", "max-file": "3"}},
			Restart: "2026-01-14T09:30:00+01:00",
			Proxy:   &Proxy{Hosts: []string{"shop.example.com"}, AppPort: 4000},
		}, "6355e4458773f103"},
		"every option": {Role{
			Namespace: "prod", Deployment: "storefront-billings", Name: "web",
			Image:   "ghcr.io/acme/billing@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			Env:     []string{"RAILS_ENV=production", "RAILS_MASTER_KEY=9f8e7d6c5b4a"},
			Labels:  map[string]string{},
			Options: everyOption(),
			Logging: &kamalv1.Logging{Driver: "local"},
		}, "210a70fa6292d09f"},
		"empty, not nil": {Role{
			Namespace: "default", Deployment: "dokuya", Name: "web", Image: "dokuya:latest",
			Cmd: []string{}, Env: []string{}, Labels: map[string]string{}, Volumes: []string{},
			Options: &kamalv1.ContainerOptions{Ulimits: []kamalv1.Ulimit{}, Healthcheck: &kamalv1.ContainerHealthcheck{Command: []string{}}},
			Logging: &kamalv1.Logging{Options: map[string]string{}},
		}, "281595ffb7918c28"},
		"partial options": {Role{
			Namespace: "default", Deployment: "dokuya", Name: "worker", Image: "dokuya:2f3c9a1",
			Env: []string{"QUEUE=mailers"},
			Options: &kamalv1.ContainerOptions{
				Resources:     &kamalv1.Resources{Memory: ptr.To(resource.MustParse("1Gi"))},
				RestartPolicy: kamalv1.RestartAlways,
				Healthcheck:   &kamalv1.ContainerHealthcheck{Command: []string{"pgrep", "worker"}},
			},
		}, "38594988668b356c"},
	}
}

func TestHashGolden(t *testing.T) {
	for name, g := range goldenRoles() {
		r := g.role
		if got := r.Hash(goldenUID); got != g.hash {
			t.Errorf("%s: hash %s, want %s (a changed hash recreates every running container on upgrade)", name, got, g.hash)
		}
	}
}

// hashInputV1Fields are the fields version 1 encodes even when unset.
var hashInputV1Fields = []string{
	"release.hashInputV1.Namespace", "release.hashInputV1.Deployment", "release.hashInputV1.Name",
	"release.hashInputV1.Image", "release.hashInputV1.Cmd", "release.hashInputV1.Env",
	"release.hashInputV1.Labels", "release.hashInputV1.Volumes", "release.hashInputV1.Options",
	"release.hashInputV1.Logging", "release.hashInputV1.Restart",
}

// The projection holds no API type (a field added to ContainerOptions or Logging cannot reach
// the hash unless added to the projection), and any field added to it after version 1 is
// omitempty, so unset it encodes as before.
func TestHashProjectionFollowsTheRule(t *testing.T) {
	if err := spechash.CheckProjection(reflect.TypeFor[hashInputV1](), hashInputV1Fields...); err != nil {
		t.Fatal(err)
	}
}

// Every field of Role is in the hash or deliberately not: a new one fails here until decided.
func TestEveryRoleFieldIsHashedOrLeftOut(t *testing.T) {
	leftOut := map[string]string{"UID": "the key of the hash", "Proxy": "shapes the route, rewritten in place"}
	in := reflect.TypeFor[hashInputV1]()
	for f := range reflect.TypeFor[Role]().Fields() {
		if _, ok := in.FieldByName(f.Name); !ok && leftOut[f.Name] == "" {
			t.Errorf("Role.%s is neither in hashInputV1 nor left out on purpose: add it under the rule of hash.go, or to leftOut here", f.Name)
		}
	}
}

// A field added to the projection under the rule keeps every existing hash while unset; so
// does anything outside it (the UID, the proxy, a new field of Role).
func TestNewUnsetFieldsKeepTheHash(t *testing.T) {
	type hashInputV2 struct {
		hashInputV1
		StopTimeout *int32            `json:"stopTimeout,omitempty"`
		Networks    []string          `json:"networks,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
		Hostname    string            `json:"hostname,omitempty"`
	}
	for name, g := range goldenRoles() {
		r := g.role
		if got := spechash.Must(goldenUID, hashInputV2{hashInputV1: r.hashInput()}); got != g.hash {
			t.Errorf("%s: unset new fields give %s, want %s", name, got, g.hash)
		}
		r.UID = "another-uid"
		r.Proxy = &Proxy{AppPort: 3000, Hosts: []string{"x.example.com"}}
		if got := r.Hash(goldenUID); got != g.hash {
			t.Errorf("%s: with a UID and a proxy set, hash %s, want %s", name, got, g.hash)
		}
		if spechash.Must(goldenUID, hashInputV2{hashInputV1: r.hashInput(), Hostname: "web"}) == g.hash {
			t.Errorf("%s: a set new field keeps the hash", name)
		}
	}
}

// spec.restartedAt rolls every container when set and changed, and leaves every golden hash
// as it was while unset.
func TestRestartedAtChangesTheHashOnlyWhenSet(t *testing.T) {
	for name, g := range goldenRoles() {
		r := g.role
		r.RestartedAt = ""
		if got := r.Hash(goldenUID); got != g.hash {
			t.Errorf("%s: without restartedAt, hash %s, want the golden %s", name, got, g.hash)
		}
		r.RestartedAt = "2026-03-02T10:00:00Z"
		first := r.Hash(goldenUID)
		if first == g.hash {
			t.Errorf("%s: restartedAt set keeps the hash %s", name, first)
		}
		r.RestartedAt = "2026-03-02T10:00:01Z"
		if again := r.Hash(goldenUID); again == first || again == g.hash {
			t.Errorf("%s: a new restartedAt gives %s (before: %s, golden: %s)", name, again, first, g.hash)
		}
	}
	// The annotation and the field are apart: the same value in each is not the same spec.
	a, b := goldenRoles()["minimal"].role, goldenRoles()["minimal"].role
	a.Restart, b.RestartedAt = "2026-03-02T10:00:00Z", "2026-03-02T10:00:00Z"
	if a.Hash(goldenUID) == b.Hash(goldenUID) {
		t.Error("restartedAt annotation and field hash alike")
	}
}
