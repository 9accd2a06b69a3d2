package buildctx

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// tarNames reads the entry names (and the content of regular files) of a tar.
func tarNames(t *testing.T, b []byte) ([]string, map[string]string) {
	t.Helper()
	var names []string
	content := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, content
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want root", h.Name, h.Uid, h.Gid)
		}
		names = append(names, h.Name)
		if h.Typeflag == tar.TypeReg {
			c, _ := io.ReadAll(tr)
			content[h.Name] = string(c)
		}
		if h.Typeflag == tar.TypeSymlink {
			content[h.Name] = "-> " + h.Linkname
		}
	}
}

func TestTar(t *testing.T) {
	fsys := fstest.MapFS{
		"Dockerfile":               {Data: []byte("FROM scratch\n")},
		".dockerignore":            {Data: []byte("# comment\n*.log\nnode_modules\nsecrets/\n!secrets/public.pem\nDockerfile\n.dockerignore\n")},
		"app.go":                   {Data: []byte("package main")},
		"debug.log":                {Data: []byte("x")},
		"sub/deep.log":             {Data: []byte("x")}, // *.log matches the top level only
		"node_modules/a/index.js":  {Data: []byte("x")},
		"secrets/key.pem":          {Data: []byte("private")},
		"secrets/public.pem":       {Data: []byte("public")},
		"link":                     {Data: []byte("app.go"), Mode: fs.ModeSymlink},
		"docs/readme.md":           {Data: []byte("doc")},
		"docs/empty":               {Mode: fs.ModeDir | 0o755},
		"weird/socket":             {Mode: fs.ModeSocket},
		"node_modules/b/README.md": {Data: []byte("x")},
	}
	ex, err := Excludes(fsys)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Tar(&buf, fsys, ex, "Dockerfile", IgnoreFile); err != nil {
		t.Fatal(err)
	}
	names, content := tarNames(t, buf.Bytes())
	want := []string{".dockerignore", "Dockerfile", "app.go", "docs/", "docs/empty/", "docs/readme.md", "link", "secrets/public.pem", "sub/", "sub/deep.log", "weird/"}
	if !slices.Equal(names, want) {
		t.Errorf("entries\n got %v\nwant %v", names, want)
	}
	if content["link"] != "-> app.go" || content["secrets/public.pem"] != "public" || content["Dockerfile"] != "FROM scratch\n" {
		t.Errorf("content = %v", content)
	}

	// Without a .dockerignore everything is sent; a bad pattern is an error.
	buf.Reset()
	if err := Tar(&buf, fstest.MapFS{"a": {}, "b/c": {}}, nil, "Dockerfile"); err != nil {
		t.Fatal(err)
	}
	if names, _ := tarNames(t, buf.Bytes()); !slices.Equal(names, []string{"a", "b/", "b/c"}) {
		t.Errorf("entries = %v", names)
	}
	if err := Tar(io.Discard, fstest.MapFS{"a": {}}, []string{"[z-a"}); err == nil {
		t.Error("accepted a malformed pattern")
	}
	if ex, err := Excludes(fstest.MapFS{}); err != nil || ex != nil {
		t.Errorf("no .dockerignore: %v, %v", ex, err)
	}
}

func TestTag(t *testing.T) {
	sha := strings.Repeat("ab", 20)
	if got, err := Tag(sha+"\n", false, "x"); err != nil || got != sha {
		t.Errorf("clean: %q, %v", got, err)
	}
	if got, err := Tag(sha, true, "0123abcd"); err != nil || got != sha+"-dirty-0123abcd" {
		t.Errorf("dirty: %q, %v", got, err)
	}
	if got, _ := Tag(strings.Repeat("c", 64), false, ""); got != strings.Repeat("c", 64) {
		t.Errorf("sha256 repository: %q", got)
	}
	for _, bad := range []string{"", "abc", "HEAD", strings.Repeat("g", 40), strings.ToUpper(sha)} {
		if _, err := Tag(bad, false, ""); err == nil {
			t.Errorf("Tag(%q) accepted", bad)
		}
	}
	if Dirty("") || Dirty("\n") || !Dirty(" M Dockerfile\n") || !Dirty("?? new\n") {
		t.Error("Dirty")
	}
}

func TestRepositoryAndRef(t *testing.T) {
	digest := "@sha256:" + strings.Repeat("a", 64)
	for in, want := range map[string]string{
		"10.231.0.1:5001/app:v1":          "10.231.0.1:5001/app",
		"10.231.0.1:5001/app":             "10.231.0.1:5001/app",
		"10.231.0.1:5001/app:v1" + digest: "10.231.0.1:5001/app",
		"app" + digest:                    "app",
		"ghcr.io/a/b:latest":              "ghcr.io/a/b",
	} {
		if got := Repository(in); got != want {
			t.Errorf("Repository(%q) = %q, want %q", in, got, want)
		}
	}
	if got, err := ImageRef("10.231.0.1:5001/app", "abc-dirty-1"); err != nil || got != "10.231.0.1:5001/app:abc-dirty-1" {
		t.Errorf("ImageRef = %q, %v", got, err)
	}
	for _, bad := range [][2]string{{"", "t"}, {"app:v1", "t"}, {"App", "t"}, {"app", "bad tag!"}} {
		if _, err := ImageRef(bad[0], bad[1]); err == nil {
			t.Errorf("ImageRef(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func TestBuildArgs(t *testing.T) {
	env := map[string]string{"FROM_ENV": "e"}
	got, err := BuildArgs([]string{"A=1", "B=", "C=x=y", "FROM_ENV", "UNSET"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "", "C": "x=y", "FROM_ENV": "e"}
	if len(got) != len(want) {
		t.Errorf("got %d args, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] == nil || *got[k] != v {
			t.Errorf("%s = %v, want %q", k, got[k], v)
		}
	}
	if _, err := BuildArgs([]string{"=v"}, nil); err == nil {
		t.Error("accepted an empty key")
	}
}

func TestChooseBuilder(t *testing.T) {
	b, err := ChooseBuilder("flag", []string{"l"}, "p", "web")
	if err != nil || b.Name != "flag" || b.Reason != "--builder" {
		t.Errorf("flag: %+v %v", b, err)
	}
	b, _ = ChooseBuilder("", []string{"z", "b"}, "p", "web")
	if b.Name != "b" || !strings.Contains(b.Reason, "b, z") {
		t.Errorf("labelled: %+v", b)
	}
	b, _ = ChooseBuilder("", nil, "p", "web")
	if b.Name != "p" || !strings.Contains(b.Reason, "role web") {
		t.Errorf("primary: %+v", b)
	}
	if _, err := ChooseBuilder("", nil, "", "web"); err == nil {
		t.Error("chose a builder out of nothing")
	}
}

func TestCheckArch(t *testing.T) {
	unknown, err := CheckArch("b", "x86_64", map[string]string{"s1": "x86_64", "s2": "amd64", "s3": ""})
	if err != nil || !slices.Equal(unknown, []string{"s3"}) {
		t.Errorf("same arch: %v %v", unknown, err)
	}
	_, err = CheckArch("b", "x86_64", map[string]string{"s1": "x86_64", "s2": "aarch64"})
	if err == nil || !strings.Contains(err.Error(), "s2 (arm64)") || !strings.Contains(err.Error(), "builder b is amd64") {
		t.Errorf("differing arch: %v", err)
	}
}
