package accessory

import (
	"archive/tar"
	"bytes"
	"io"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/container"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func pg() *Spec {
	return &Spec{
		Namespace: "shop", Name: "db", ContainerName: "db", Image: "postgres:15",
		Env:         []string{"POSTGRES_PASSWORD=s3cret"},
		Port:        "127.0.0.1:5432:5432",
		Directories: []string{"data:/var/lib/postgresql/data", "/srv/backups:/backups:ro"},
		Volumes:     []string{"pgrun:/run/postgresql"},
		Files: []File{
			{Target: "/etc/pg/pg.conf", Mode: 0o644, Content: []byte("max_connections = 20\n")},
			{Target: "/run/secrets/pw", Mode: 0o600, UID: 999, GID: 998, Content: []byte("s3cret")},
		},
	}
}

func TestPortBindings(t *testing.T) {
	for _, tc := range []struct {
		in, port, ip, host string
	}{
		{"5432", "5432/tcp", "", "5432"},
		{"8080:80", "80/tcp", "", "8080"},
		{"127.0.0.1:5432:5432", "5432/tcp", "127.0.0.1", "5432"},
		{"[::1]:6379:6379", "6379/tcp", "::1", "6379"},
		{"53/udp", "53/udp", "", "53"},
		{"10.0.0.1:5353:53/udp", "53/udp", "10.0.0.1", "5353"},
	} {
		exposed, bindings, err := PortBindings(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if len(exposed) != 1 || len(bindings) != 1 {
			t.Errorf("%s: %v %v", tc.in, exposed, bindings)
			continue
		}
		for p, bs := range bindings {
			ip := ""
			if bs[0].HostIP.IsValid() {
				ip = bs[0].HostIP.String()
			}
			if p.String() != tc.port || ip != tc.ip || bs[0].HostPort != tc.host {
				t.Errorf("%s: got %s %q %q", tc.in, p, ip, bs[0].HostPort)
			}
		}
	}
	for _, bad := range []string{"0", "70000", "a:b", "1.2.3.4.5:1:2", "[::1:80"} {
		if _, _, err := PortBindings(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestServicePort(t *testing.T) {
	for in, want := range map[string]string{"127.0.0.1:5432:5432": "5432", "8080:80": "80", "6379": "6379", "53/udp": "", "": ""} {
		got, ok := (&Spec{Port: in}).ServicePort()
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v", in, got, ok)
		}
	}
}

func TestParseDirectory(t *testing.T) {
	s := pg()
	m, err := s.ParseDirectory("data:/var/lib/postgresql/data")
	if err != nil || m.HostPath != "/var/lib/kamal-operator/accessories/shop/db/data" || !m.Own || m.ReadOnly {
		t.Fatalf("relative: %+v %v", m, err)
	}
	m, err = s.ParseDirectory("/srv/backups:/backups:ro")
	if err != nil || m.HostPath != "/srv/backups" || m.Own || !m.ReadOnly {
		t.Fatalf("absolute: %+v %v", m, err)
	}
	for _, bad := range []string{"data", "../x:/x", "a/../../x:/x", "data:relative", "data:/x:rx", ":/x", "files:/x", "files/a:/x", ".:/x"} {
		if _, err := s.ParseDirectory(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCreateOptions(t *testing.T) {
	s := pg()
	opts, err := s.CreateOptions("db-1a2b3c4d", s.Hash("uid"))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Name != "db-1a2b3c4d" || opts.Config.Image != "postgres:15" || string(opts.HostConfig.NetworkMode) != "kamal-shop" {
		t.Fatalf("name/image/network: %+v", opts)
	}
	// On its namespace's network only, reached there by its plain name whatever the
	// container is called on this host.
	eps := opts.NetworkingConfig.EndpointsConfig
	if len(eps) != 1 || eps["kamal-shop"] == nil || !slices.Equal(eps["kamal-shop"].Aliases, []string{"db"}) {
		t.Errorf("endpoints %+v", eps)
	}
	if opts.HostConfig.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
		t.Errorf("restart policy %q", opts.HostConfig.RestartPolicy.Name)
	}
	want := []string{
		"/var/lib/kamal-operator/accessories/shop/db/data:/var/lib/postgresql/data",
		"/srv/backups:/backups:ro",
		"/var/lib/kamal-operator/accessories/shop/db/files/etc/pg/pg.conf:/etc/pg/pg.conf:ro",
		"/var/lib/kamal-operator/accessories/shop/db/files/run/secrets/pw:/run/secrets/pw:ro",
		"pgrun:/run/postgresql",
	}
	if !slices.Equal(opts.HostConfig.Binds, want) {
		t.Errorf("binds\n got %q\nwant %q", opts.HostConfig.Binds, want)
	}
	l := opts.Config.Labels
	if l[kamalv1.LabelAccessory] != "db" || l[kamalv1.LabelNamespace] != "shop" || l[kamalv1.LabelSpecHash] == "" || l[kamalv1.LabelManagedBy] != kamalv1.ManagerName {
		t.Errorf("labels %v", l)
	}
	for k, v := range l {
		if bytes.Contains([]byte(k+v), []byte("s3cret")) {
			t.Errorf("a secret value is in label %s=%s", k, v)
		}
	}
	if len(opts.HostConfig.PortBindings) != 1 {
		t.Errorf("port bindings %v", opts.HostConfig.PortBindings)
	}
}

func TestHashCoversEnvFilesAndKey(t *testing.T) {
	base := pg().Hash("uid")
	if pg().Hash("uid") != base {
		t.Fatal("hash is not stable")
	}
	env := pg()
	env.Env = []string{"POSTGRES_PASSWORD=other"}
	file := pg()
	file.Files[1].Content = []byte("other")
	mode := pg()
	mode.Files[0].Mode = 0o640
	for name, h := range map[string]string{"env": env.Hash("uid"), "file": file.Hash("uid"), "mode": mode.Hash("uid"), "key": pg().Hash("other-uid")} {
		if h == base {
			t.Errorf("a change of %s keeps the hash", name)
		}
	}
}

func TestSetupArchive(t *testing.T) {
	s := pg()
	b, err := s.SetupArchive()
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(b))
	got := map[string]*tar.Header{}
	content := map[string]string{}
	var order []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
		order = append(order, h.Name)
		c, _ := io.ReadAll(tr)
		content[h.Name] = string(c)
	}
	for _, dir := range []string{"kamal-accessory/data/", "kamal-accessory/files/", "kamal-accessory/files/etc/pg/", "kamal-accessory/files/run/secrets/"} {
		if h := got[dir]; h == nil || h.Typeflag != tar.TypeDir {
			t.Errorf("no directory %s in %v", dir, order)
		}
	}
	if _, ok := got["kamal-accessory/"]; ok {
		t.Error("the archive changes the accessory folder itself")
	}
	if _, ok := got["kamal-accessory/srv/"]; ok {
		t.Error("an absolute directory is made under the accessory folder")
	}
	pw := got["kamal-accessory/files/run/secrets/pw"]
	if pw == nil || pw.Mode != 0o600 || pw.Uid != 999 || pw.Gid != 998 || content[pw.Name] != "s3cret" {
		t.Fatalf("secret file: %+v", pw)
	}
	if c := got["kamal-accessory/files/etc/pg/pg.conf"]; c == nil || c.Mode != 0o644 || content[c.Name] != "max_connections = 20\n" {
		t.Fatalf("config file: %+v", c)
	}
}

func TestParseOwner(t *testing.T) {
	for in, want := range map[string][2]int{"": {0, 0}, "999": {999, 999}, "999:1000": {999, 1000}} {
		u, g, err := ParseOwner(in)
		if err != nil || u != want[0] || g != want[1] {
			t.Errorf("%q: %d %d %v", in, u, g, err)
		}
	}
	if _, _, err := ParseOwner("postgres"); err == nil {
		t.Error("a user name was accepted")
	}
}

func TestPlanHost(t *testing.T) {
	cur := Observed{ID: "1", Name: "db", Hash: "h1", Running: true}
	for _, tc := range []struct {
		name   string
		obs    []Observed
		action Action
		remove int
		ready  bool
	}{
		{"nothing runs", nil, ActionCreate, 0, false},
		{"converged", []Observed{cur}, ActionNone, 0, true},
		{"stopped by hand", []Observed{{ID: "1", Name: "db", Hash: "h1"}}, ActionStart, 0, false},
		{"spec changed", []Observed{{ID: "1", Name: "db", Hash: "h0", Running: true}}, ActionRecreate, 0, false},
		{"unhealthy", []Observed{{ID: "1", Name: "db", Hash: "h1", Running: true, Health: "unhealthy"}}, ActionNone, 0, false},
		{"renamed and a setup leftover", []Observed{{ID: "0", Name: "old-db", Hash: "h1", Running: true}, {ID: "2", Name: "db-setup", Setup: true}, cur}, ActionNone, 2, true},
		{"under the suffixed name", []Observed{{ID: "1", Name: "db-1a2b3c4d", Hash: "h1", Running: true}}, ActionNone, 0, true},
		{"under both names: the desired hash stays", []Observed{{ID: "0", Name: "db", Hash: "h0", Running: true}, {ID: "1", Name: "db-1a2b3c4d", Hash: "h1", Running: true}}, ActionNone, 1, true},
		{"under both names: the running one stays", []Observed{{ID: "0", Name: "db", Hash: "h0"}, {ID: "1", Name: "db-1a2b3c4d", Hash: "h0", Running: true}}, ActionRecreate, 1, false},
	} {
		p := PlanHost(tc.obs, []string{"db", "db-1a2b3c4d"}, "h1")
		if p.Action != tc.action || len(p.Remove) != tc.remove || p.Ready() != tc.ready {
			t.Errorf("%s: %+v ready=%v", tc.name, p, p.Ready())
		}
	}
}
