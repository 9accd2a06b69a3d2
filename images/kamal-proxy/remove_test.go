package kamalproxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

// tree makes root/<paths>: names ending in / are folders, "name->target" are symbolic links,
// others files holding their own name.
func tree(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		full := filepath.Join(root, strings.Split(p, "->")[0])
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch name, target, isLink := strings.Cut(p, "->"); {
		case isLink:
			err = os.Symlink(target, filepath.Join(root, name))
		case strings.HasSuffix(p, "/"):
			err = os.MkdirAll(full, 0o755)
		default:
			err = os.WriteFile(full, []byte(p), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func TestRemoveTreesRemovesLinksNotTheirTargets(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	tree(t, outside, "secret", "dir/keep")
	root := filepath.Join(base, "accessories", "ns")
	tree(t, root,
		"db/data/PG_VERSION",
		"db/data/base/1/2",
		"db/data/escape->"+outside, // a folder outside
		"db/data/escape-file->"+filepath.Join(outside, "secret"), // a file outside
		"db/data/relative->../../../../outside",
		"db/files/run/secrets/pw",
		"other/data/keep",
	)
	// A read-only folder inside the tree goes too: the remover runs as root in its container.
	if os.Geteuid() == 0 {
		if err := os.Chmod(filepath.Join(root, "db/data/base/1"), 0o555); err != nil {
			t.Fatal(err)
		}
	}

	if err := RemoveTrees(root, []string{filepath.Join(root, "db")}, false); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(root, "db")) {
		t.Error("db is still there")
	}
	for _, p := range []string{filepath.Join(outside, "secret"), filepath.Join(outside, "dir", "keep"), filepath.Join(root, "other", "data", "keep")} {
		if !exists(p) {
			t.Errorf("%s was removed", p)
		}
	}
	// Gone already: no error, as a retry after a crash finds it.
	if err := RemoveTrees(root, []string{filepath.Join(root, "db")}, false); err != nil {
		t.Errorf("removing what is gone: %v", err)
	}
}

func TestRemoveTreesRefusesPathsOutsideTheRoot(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	tree(t, outside, "secret", "dir/keep")
	root := filepath.Join(base, "root")
	tree(t, root, "db/data/x", "link->"+outside, "db/files/dir->"+outside)

	for _, tc := range []struct {
		name, root string
		paths      []string
		want       string
	}{
		{"the root itself", root, []string{root}, "not inside the root"},
		{"the root with a slash", root, []string{root + "/"}, "not inside the root"},
		{"a parent", root, []string{base}, "not inside the root"},
		{"climbing out", root, []string{filepath.Join(root, "db", "..", "..", "outside")}, "not inside the root"},
		{"a relative path", root, []string{"db"}, "not absolute"},
		{"no path", root, nil, "no path"},
		{"a relative root", "root", []string{"root/db"}, "absolute"},
		{"through a link to outside", root, []string{filepath.Join(root, "link", "secret")}, "removing"},
		{"through a nested link to outside", root, []string{filepath.Join(root, "db", "files", "dir", "keep")}, "removing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := RemoveTrees(tc.root, tc.paths, true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
			for _, p := range []string{filepath.Join(outside, "secret"), filepath.Join(outside, "dir", "keep"), filepath.Join(root, "db", "data", "x")} {
				if !exists(p) {
					t.Fatalf("%s was removed", p)
				}
			}
		})
	}
	// A link named as the path goes, its target stays.
	if err := RemoveTrees(root, []string{filepath.Join(root, "link")}, false); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(root, "link")) || !exists(filepath.Join(outside, "secret")) {
		t.Error("want the link gone and its target kept")
	}
}

func TestRemoveTreesPrunesEmptyParents(t *testing.T) {
	root := t.TempDir()
	tree(t, root, "files/run/secrets/pw", "files/etc/app/a.conf", "files/etc/app/b.conf", "files/etc/keep/")
	err := RemoveTrees(root, []string{
		filepath.Join(root, "files/run/secrets/pw"),
		filepath.Join(root, "files/etc/app/a.conf"),
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"files/run":            false, // emptied: pruned up to files/, which still holds etc/
		"files":                true,
		"files/etc/app/b.conf": true,
		"files/etc/keep":       true,
	} {
		if got := exists(filepath.Join(root, p)); got != want {
			t.Errorf("%s exists = %v, want %v", p, got, want)
		}
	}
}

func TestRemoveDirCommandIsRegistered(t *testing.T) {
	cmd, ok := caddycmd.Commands()[RemoveDirCommand]
	if !ok {
		t.Fatalf("caddy has no %s subcommand", RemoveDirCommand)
	}
	if cmd.Flags.Lookup("root") == nil || cmd.Flags.Lookup("prune") == nil {
		t.Error("the subcommand lacks --root or --prune")
	}
}
