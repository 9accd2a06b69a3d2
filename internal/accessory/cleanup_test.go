package accessory

import (
	"reflect"
	"strings"
	"testing"
)

func TestFilesLabelListsTargetsNeverContents(t *testing.T) {
	s := pg()
	opts, err := s.CreateOptions(s.ContainerName, s.Hash("uid"))
	if err != nil {
		t.Fatal(err)
	}
	v := opts.Config.Labels[FilesLabel]
	if v != `["/etc/pg/pg.conf","/run/secrets/pw"]` {
		t.Errorf("%s = %s", FilesLabel, v)
	}
	if strings.Contains(v, "s3cret") || strings.Contains(v, "max_connections") {
		t.Errorf("file contents in the label: %s", v)
	}
	got, known := ParseFilesLabel(opts.Config.Labels)
	if !known || !reflect.DeepEqual(got, []string{"/etc/pg/pg.conf", "/run/secrets/pw"}) {
		t.Errorf("parsed %v %v", got, known)
	}
	// None written: known and empty, unlike a container from before the label.
	s.Files = nil
	opts, _ = s.CreateOptions(s.ContainerName, s.Hash("uid"))
	if got, known := ParseFilesLabel(opts.Config.Labels); !known || len(got) != 0 {
		t.Errorf("no files: %v %v", got, known)
	}
	for _, labels := range []map[string]string{{}, {FilesLabel: "not json"}} {
		if _, known := ParseFilesLabel(labels); known {
			t.Errorf("%v read as known", labels)
		}
	}
}

func TestStaleFiles(t *testing.T) {
	s := pg() // writes /etc/pg/pg.conf and /run/secrets/pw
	for _, tc := range []struct {
		name     string
		observed []Observed
		want     []string
	}{
		{"nothing runs", nil, nil},
		{"the same files", []Observed{{Files: []string{"/etc/pg/pg.conf", "/run/secrets/pw"}, FilesKnown: true}}, nil},
		{"a container from before the label", []Observed{{}}, nil},
		{
			"one dropped from the spec",
			[]Observed{{Files: []string{"/etc/pg/pg.conf", "/run/secrets/old-pw", "/run/secrets/pw"}, FilesKnown: true}},
			[]string{"files/run/secrets/old-pw"},
		},
		{
			"listed by two containers (an old name left over), once",
			[]Observed{
				{Name: "db", Files: []string{"/etc/old.conf"}, FilesKnown: true},
				{Name: "pg", Files: []string{"/etc/old.conf", "/a/b"}, FilesKnown: true},
			},
			[]string{"files/a/b", "files/etc/old.conf"},
		},
		{
			"a label that climbs out stays inside files/",
			[]Observed{{Files: []string{"../../../etc/passwd", "/x/../../y"}, FilesKnown: true}},
			[]string{"files/etc/passwd", "files/y"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.StaleFiles(tc.observed); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCheckDirectories(t *testing.T) {
	for _, tc := range []struct {
		dirs []string
		bad  string // in the error; "" for none
	}{
		{[]string{"data:/var/lib/postgresql/data", "logs:/var/log"}, ""},
		{[]string{"data:/d", "data:/e"}, ""}, // the same folder twice does not nest
		{[]string{"data:/d", "database:/e"}, ""},
		{[]string{"data:/d", "/srv/data:/e"}, ""},
		{[]string{"data:/d", "data/logs:/l"}, `"data:/d" and "data/logs:/l" nest`},
		{[]string{"data/logs:/l", "data:/d"}, "/var/lib/kamal-operator/accessories/shop/db/data/logs is inside /var/lib/kamal-operator/accessories/shop/db/data"},
		{[]string{"data:/d", "./data//logs/:/l"}, "nest"},
		{[]string{"/srv/app:/a", "/srv/app/cache/:/c:ro"}, "nest"},
		{[]string{"/var/lib/kamal-operator/accessories/shop/db/data:/d", "data/x:/x"}, "nest"},
		{[]string{"/var/lib/kamal-operator/accessories:/all", "data:/d"}, "nest"},
	} {
		s := pg()
		s.Directories = tc.dirs
		err := s.CheckDirectories()
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%q: %v", tc.dirs, err)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("%q: err = %v, want one saying %q", tc.dirs, err, tc.bad)
		}
	}
}

func TestPlanRemoval(t *testing.T) {
	withFiles := Observed{Name: "db", Running: true, Files: []string{"/run/secrets/pw"}, FilesKnown: true}
	noFiles := Observed{Name: "db", Running: true, FilesKnown: true}
	old := Observed{Name: "db", Running: true} // made before FilesLabel
	setup := Observed{Name: "db-setup", Setup: true}
	folder := HostCleanup{Dir: "/var/lib/kamal-operator/accessories/shop", Paths: []string{"db"}}
	files := HostCleanup{Dir: "/var/lib/kamal-operator/accessories/shop/db", Paths: []string{"files"}}
	for _, tc := range []struct {
		name               string
		observed           []Observed
		deleteData, placed bool
		want               HostCleanup
		ok                 bool
	}{
		{"Delete: ran there", []Observed{noFiles}, true, false, folder, true},
		{"Delete: placed there, nothing runs (a failed pull, or a retry after the containers went)", nil, true, true, folder, true},
		{"Delete: neither placed nor run there", nil, true, false, HostCleanup{}, false},
		{"Retain: its files go", []Observed{withFiles}, false, true, files, true},
		{"Retain: no files written", []Observed{noFiles}, false, true, HostCleanup{}, false},
		{"Retain: a container that does not say", []Observed{old}, false, false, files, true},
		{"Retain: a setup leftover only", []Observed{setup}, false, false, HostCleanup{}, false},
		{"Retain: nothing there", nil, false, true, HostCleanup{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := PlanRemoval("shop", "db", tc.observed, tc.deleteData, tc.placed)
			if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
