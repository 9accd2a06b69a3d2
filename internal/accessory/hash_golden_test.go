package accessory

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
			CPUs: ptr.To(resource.MustParse("2")), Memory: ptr.To(resource.MustParse("2Gi")),
			MemoryReservation: ptr.To(resource.MustParse("1Gi")), PidsLimit: ptr.To[int64](500),
		},
		RestartPolicy:          kamalv1.RestartOnFailure,
		RestartMaxRetries:      ptr.To[int32](10),
		ExtraHosts:             []string{"primary.db:10.0.0.10"},
		Ulimits:                []kamalv1.Ulimit{{Name: "nofile", Soft: 4096, Hard: 8192}},
		User:                   "postgres",
		WorkingDir:             "/var/lib/postgresql",
		ShmSize:                ptr.To(resource.MustParse("256Mi")),
		CapAdd:                 []string{"SYS_NICE"},
		CapDrop:                []string{"NET_RAW", "MKNOD"},
		Privileged:             true,
		ReadOnlyRootFilesystem: true,
		Init:                   true,
		StopSignal:             "SIGINT",
		Tmpfs:                  []string{"/tmp"},
		Devices:                []string{"/dev/sdb"},
		DNS:                    []string{"10.0.0.2"},
		Sysctls:                map[string]string{"net.ipv4.ip_local_port_range": "1024 65000"},
		Healthcheck: &kamalv1.ContainerHealthcheck{
			Command:  []string{"pg_isready", "-U", "postgres"},
			Interval: &metav1.Duration{Duration: 2 * time.Second}, Timeout: &metav1.Duration{Duration: time.Second},
			Retries: 10, StartPeriod: &metav1.Duration{Duration: 90 * time.Second},
		},
	}
}

const goldenUID = "0b4f4a4e-3c55-4a0e-9a43-7e2f3c1d5b21"

// goldenSpecs are realistic accessories whose hashes were taken from the code before the
// versioned projection (json.Marshal of Spec). They must never change: a change restarts every
// accessory (every database) on a controller upgrade.
func goldenSpecs() map[string]struct {
	spec Spec
	hash string
} {
	type g = struct {
		spec Spec
		hash string
	}
	return map[string]g{
		"postgres with files, directories and port": {Spec{
			Namespace: "shop", Name: "db", ContainerName: "db", Image: "postgres:15",
			Env:         []string{"POSTGRES_PASSWORD=s3cret"},
			Port:        "127.0.0.1:5432:5432",
			Directories: []string{"data:/var/lib/postgresql/data", "/srv/backups:/backups:ro"},
			Volumes:     []string{"pgrun:/run/postgresql"},
			Files: []File{
				{Target: "/etc/pg/pg.conf", Mode: 0o644, Content: []byte("max_connections = 20\n")},
				{Target: "/run/secrets/pw", Mode: 0o600, UID: 999, GID: 998, Content: []byte("s3cret")},
			},
		}, "4be8d9a99fc71233"},
		"minimal redis": {Spec{Namespace: "default", Name: "redis", ContainerName: "redis", Image: "redis:7"}, "cf62cbac33769a2d"},
		"every option": {Spec{
			Namespace: "prod", Name: "dokuya-postgres", ContainerName: "pg-primary", Image: "postgres:15.6-bookworm",
			Cmd:  []string{"postgres", "-c", "shared_buffers=256MB"},
			Env:  []string{"POSTGRES_USER=app", "POSTGRES_PASSWORD=p<a>&ss\"w\\rd", "POSTGRES_DB=production_db"},
			Port: "5432",
			Files: []File{
				{Target: "/docker-entrypoint-initdb.d/init.sql", Mode: 0o644, Content: []byte("CREATE EXTENSION pg_trgm;\n")},
				{Target: "/run/secrets/replication", Mode: 0o400, UID: 999, GID: 999, Content: []byte{0, 1, 2, 0xff}},
				{Target: "/etc/empty", Mode: 0o600, Content: []byte{}},
				{Target: "/etc/nil", Mode: 0o600},
			},
			Directories: []string{"data:/var/lib/postgresql/data", "/mnt/backups:/backups:rw"},
			Volumes:     []string{"pgsock:/var/run/postgresql"},
			Labels:      map[string]string{"backup": "nightly", "app.example.com/owner": "dba"},
			Options:     everyOption(),
			Logging:     &kamalv1.Logging{Driver: "json-file", Options: map[string]string{"max-size": "10m"}},
		}, "b939e5294a2ee5c8"},
		"empty, not nil": {Spec{
			Namespace: "default", Name: "cache", ContainerName: "cache", Image: "memcached:1.6", Port: "[::1]:11211:11211/udp",
			Cmd: []string{}, Env: []string{}, Files: []File{}, Directories: []string{}, Volumes: []string{}, Labels: map[string]string{},
			Options: &kamalv1.ContainerOptions{}, Logging: &kamalv1.Logging{},
		}, "a4fa9ef86b5d51a1"},
	}
}

func TestHashGolden(t *testing.T) {
	for name, g := range goldenSpecs() {
		s := g.spec
		if got := s.Hash(goldenUID); got != g.hash {
			t.Errorf("%s: hash %s, want %s (a changed hash restarts every accessory on upgrade)", name, got, g.hash)
		}
	}
}

// hashInputV1Fields are the fields version 1 encodes even when unset.
var hashInputV1Fields = []string{
	"accessory.hashInputV1.Namespace", "accessory.hashInputV1.Name", "accessory.hashInputV1.ContainerName",
	"accessory.hashInputV1.Image", "accessory.hashInputV1.Cmd", "accessory.hashInputV1.Env",
	"accessory.hashInputV1.Port", "accessory.hashInputV1.Files", "accessory.hashInputV1.Directories",
	"accessory.hashInputV1.Volumes", "accessory.hashInputV1.Labels", "accessory.hashInputV1.Options",
	"accessory.hashInputV1.Logging",
	"accessory.fileV1.Target", "accessory.fileV1.Mode", "accessory.fileV1.UID", "accessory.fileV1.GID", "accessory.fileV1.Content",
}

// The projection holds no API type (a field added to ContainerOptions or Logging cannot reach
// the hash unless added to the projection), and any field added to it after version 1 is
// omitempty, so unset it encodes as before.
func TestHashProjectionFollowsTheRule(t *testing.T) {
	if err := spechash.CheckProjection(reflect.TypeFor[hashInputV1](), hashInputV1Fields...); err != nil {
		t.Fatal(err)
	}
}

// Every field of Spec and File is in the hash or deliberately not: a new one fails here until
// decided.
func TestEverySpecFieldIsHashed(t *testing.T) {
	leftOut := map[string]string{"UID": "the key of the hash"}
	for _, c := range []struct{ of, in reflect.Type }{
		{reflect.TypeFor[Spec](), reflect.TypeFor[hashInputV1]()},
		{reflect.TypeFor[File](), reflect.TypeFor[fileV1]()},
	} {
		for f := range c.of.Fields() {
			if _, ok := c.in.FieldByName(f.Name); !ok && leftOut[f.Name] == "" {
				t.Errorf("%s.%s is not in %s: add it under the rule of hash.go, or leave it out here on purpose", c.of, f.Name, c.in)
			}
		}
	}
}

// Fields added to the projection under the rule keep every existing hash while unset: here
// the projection as it would be with fields appended to it and to its files.
func TestNewUnsetFieldsKeepTheHash(t *testing.T) {
	type fileV2 struct {
		Target   string `json:"target"`
		Mode     int64  `json:"mode"`
		UID      int    `json:"uid"`
		GID      int    `json:"gid"`
		Content  []byte `json:"content"`
		Template bool   `json:"template,omitempty"`
	}
	type hashInputV2 struct {
		Namespace     string            `json:"Namespace"`
		Name          string            `json:"Name"`
		ContainerName string            `json:"ContainerName"`
		Image         string            `json:"Image"`
		Cmd           []string          `json:"Cmd"`
		Env           []string          `json:"Env"`
		Port          string            `json:"Port"`
		Files         []fileV2          `json:"Files"`
		Directories   []string          `json:"Directories"`
		Volumes       []string          `json:"Volumes"`
		Labels        map[string]string `json:"Labels"`
		Options       *spechash.Options `json:"Options"`
		Logging       *spechash.Logging `json:"Logging"`
		StopTimeout   *int32            `json:"stopTimeout,omitempty"`
		Networks      []string          `json:"networks,omitempty"`
	}
	for name, g := range goldenSpecs() {
		in := g.spec.hashInput()
		v2 := hashInputV2{
			Namespace: in.Namespace, Name: in.Name, ContainerName: in.ContainerName, Image: in.Image, Cmd: in.Cmd,
			Env: in.Env, Port: in.Port, Directories: in.Directories, Volumes: in.Volumes, Labels: in.Labels,
			Options: in.Options, Logging: in.Logging,
		}
		if in.Files != nil {
			v2.Files = []fileV2{}
			for _, f := range in.Files {
				v2.Files = append(v2.Files, fileV2{Target: f.Target, Mode: f.Mode, UID: f.UID, GID: f.GID, Content: f.Content})
			}
		}
		if got := spechash.Must(goldenUID, v2); got != g.hash {
			t.Errorf("%s: unset new fields give %s, want %s", name, got, g.hash)
		}
		v2.Networks = []string{"shop"}
		if spechash.Must(goldenUID, v2) == g.hash {
			t.Errorf("%s: a set new field keeps the hash", name)
		}
	}
}
