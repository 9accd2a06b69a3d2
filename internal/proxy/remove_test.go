package proxy

import (
	"errors"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/mount"
)

func TestRemoveOptionsBindOnlyTheFolderAndPassPathsAsArguments(t *testing.T) {
	opts, err := RemoveOptions("reg/kamal-proxy:1", "/var/lib/kamal-operator/accessories/shop", []string{"db"}, false)
	if err != nil {
		t.Fatal(err)
	}
	c, hc := opts.Config, opts.HostConfig
	if c.Image != "reg/kamal-proxy:1" || !slices.Equal(c.Entrypoint, []string{caddyBinary}) {
		t.Errorf("image %q entrypoint %q", c.Image, c.Entrypoint)
	}
	if want := []string{RemoveDirCommand, "--root", removeMount, "--", removeMount + "/db"}; !slices.Equal(c.Cmd, want) {
		t.Errorf("cmd %q, want %q", c.Cmd, want)
	}
	if hc.NetworkMode != "none" || len(hc.Binds) != 0 || len(hc.Mounts) != 1 {
		t.Fatalf("host config %+v", hc)
	}
	if m := hc.Mounts[0]; m.Type != mount.TypeBind || m.Source != "/var/lib/kamal-operator/accessories/shop" || m.Target != removeMount || m.ReadOnly {
		t.Errorf("mount %+v", m)
	}
	if opts.Name != "" {
		t.Errorf("named %q: two removals at once would collide", opts.Name)
	}

	opts, err = RemoveOptions("p", "/srv/a/db", []string{"files/run/pw", "files/etc/x.conf"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{RemoveDirCommand, "--root", removeMount, "--prune", "--", removeMount + "/files/run/pw", removeMount + "/files/etc/x.conf"}; !slices.Equal(opts.Config.Cmd, want) {
		t.Errorf("cmd %q, want %q", opts.Config.Cmd, want)
	}
}

func TestRemoveOptionsRefusesPathsOutsideTheFolder(t *testing.T) {
	for _, tc := range []struct {
		dir   string
		paths []string
	}{
		{"/srv/a", []string{"../b"}},
		{"/srv/a", []string{"x/../../b"}},
		{"/srv/a", []string{"/etc"}},
		{"/srv/a", []string{""}},
		{"/srv/a", []string{"."}},
		{"/srv/a", nil},
		{"srv/a", []string{"x"}},
		{"/srv/a/", []string{"x"}},
		{"/", []string{"etc"}},
	} {
		if _, err := RemoveOptions("p", tc.dir, tc.paths, false); err == nil {
			t.Errorf("%q %q accepted", tc.dir, tc.paths)
		}
	}
}

func TestRemoverMessage(t *testing.T) {
	for line, want := range map[string]string{
		`{"level":"error","ts":1.5,"msg":"removing /kamal-remove/db: permission denied"}`: "removing /kamal-remove/db: permission denied",
		"exec /usr/bin/caddy: no such file or directory":                                  "exec /usr/bin/caddy: no such file or directory",
		`{"level":"error","ts":1.5,"msg":"trunc…`:                                         `{"level":"error","ts":1.5,"msg":"trunc…`,
		"": "",
	} {
		if got := removerMessage(line); got != want {
			t.Errorf("%q: %q", line, got)
		}
	}
	if !isMissingBindSource(errors.New(`Error response from daemon: invalid mount config for type "bind": bind source path does not exist: /x`)) {
		t.Error("a missing bind source not recognised")
	}
}
