// Package buildctx prepares an image build on a remote engine: the build context as a tar
// honouring .dockerignore, the image tag from a Git commit, the repository, the build
// arguments, the builder Server and the architecture check. It does no I/O of its own: the
// context is read through an fs.FS, Git's answers are passed in.
package buildctx

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// IgnoreFile is the name of the context's exclusion file.
const IgnoreFile = ".dockerignore"

// Excludes reads the patterns of a .dockerignore. A missing file is no patterns.
func Excludes(fsys fs.FS) ([]string, error) {
	f, err := fsys.Open(IgnoreFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", IgnoreFile, err)
	}
	return p, nil
}

// Tar writes fsys as a build context to w: every file, folder and symbolic link that excludes
// (.dockerignore patterns) leave, plus the names in keep (the Dockerfile and .dockerignore,
// which the engine reads whatever the patterns say). Entries are in walk order, owned by root,
// so the same files give the same context on any machine.
func Tar(w io.Writer, fsys fs.FS, excludes []string, keep ...string) error {
	pm, err := patternmatcher.New(excludes)
	if err != nil {
		return fmt.Errorf("%s: %w", IgnoreFile, err)
	}
	var kept []string
	for _, k := range keep {
		// A later "!" pattern wins: these are sent even when a pattern excludes them, as the
		// docker CLI does.
		if m, _ := pm.MatchesOrParentMatches(path.Clean(k)); m {
			kept = append(kept, "!"+path.Clean(k))
		}
	}
	if len(kept) > 0 {
		if pm, err = patternmatcher.New(append(append([]string(nil), excludes...), kept...)); err != nil {
			return err
		}
	}
	tw := tar.NewWriter(w)
	parents := map[string]patternmatcher.MatchInfo{}
	err = fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name == "." {
			return nil
		}
		excluded, info, err := pm.MatchesUsingParentResults(name, parents[path.Dir(name)])
		if err != nil {
			return err
		}
		if d.IsDir() {
			parents[name] = info
		}
		if excluded {
			if d.IsDir() && !mayReinclude(pm, name) {
				return fs.SkipDir
			}
			return nil
		}
		return writeEntry(tw, fsys, name, d)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// mayReinclude: a "!" pattern may bring back something under the excluded folder dir, so it
// is walked; otherwise it is skipped whole. The same test as the docker CLI's archive.
func mayReinclude(pm *patternmatcher.PatternMatcher, dir string) bool {
	if !pm.Exclusions() {
		return false
	}
	for _, p := range pm.Patterns() {
		if p.Exclusion() && strings.HasPrefix(p.String()+"/", dir+"/") {
			return true
		}
	}
	return false
}

func writeEntry(tw *tar.Writer, fsys fs.FS, name string, d fs.DirEntry) error {
	fi, err := d.Info()
	if err != nil {
		return err
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = fs.ReadLink(fsys, name); err != nil {
			return err
		}
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() && fi.Mode()&fs.ModeSymlink == 0 {
		return nil // sockets, devices, pipes: not part of a build context
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	hdr.Format = tar.FormatPAX
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// Tag is the image tag of a build of commit sha (the full SHA-1 or SHA-256, as git rev-parse
// HEAD prints it): the SHA itself, as Kamal tags, or "<sha>-dirty-<random>" when the work tree
// has uncommitted changes, so each such build is a new version that rolls out. Kamal writes
// "<sha>_uncommitted_<random>"; a dash keeps the tag a valid version in this project's
// container names.
func Tag(sha string, dirty bool, random string) (string, error) {
	sha = strings.TrimSpace(sha)
	if !shaRE.MatchString(sha) {
		return "", fmt.Errorf("not a commit SHA: %q", sha)
	}
	if !dirty {
		return sha, nil
	}
	return sha + "-dirty-" + random, nil
}

// Dirty reports whether `git status --porcelain` printed out: any line is a change.
func Dirty(porcelain string) bool { return strings.TrimSpace(porcelain) != "" }

// Repository is image without its tag or digest, spelled as given:
// "10.231.0.1:5000/app:v1@sha256:…" is "10.231.0.1:5000/app".
func Repository(image string) string {
	name, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i] // a colon before the last slash is a registry's port
	}
	return name
}

// ImageRef is repo:tag, checked as Docker reads references. repo must have no tag or digest.
func ImageRef(repo, tag string) (string, error) {
	if repo == "" {
		return "", errors.New("no image repository")
	}
	if Repository(repo) != repo {
		return "", fmt.Errorf("image repository %q has a tag or digest: give the repository only", repo)
	}
	ref := repo + ":" + tag
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	return ref, nil
}

// BuildArgs parses --build-arg values: "K=V", or "K" alone for the value of K in the
// environment (lookup), left out when it is unset, as docker build does.
func BuildArgs(args []string, lookup func(string) (string, bool)) (map[string]*string, error) {
	out := map[string]*string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if k == "" {
			return nil, fmt.Errorf("--build-arg %q: want KEY=VALUE", a)
		}
		if !ok {
			ev, set := lookup(k)
			if !set {
				continue
			}
			v = ev
		}
		out[k] = &v
	}
	return out, nil
}

// Builder is the Server chosen to build and why.
type Builder struct {
	Name   string
	Reason string
}

// ChooseBuilder picks the builder Server: flag (--builder) when given; else the one labelled
// as the namespace's builder (the first by name when several are); else primaryServer, the
// first Server of the Deployment's primary role. Reason says which applied.
func ChooseBuilder(flag string, labelled []string, primaryServer, primaryRole string) (Builder, error) {
	switch {
	case flag != "":
		return Builder{Name: flag, Reason: "--builder"}, nil
	case len(labelled) > 0:
		l := append([]string(nil), labelled...)
		sort.Strings(l)
		r := "labelled " + BuilderLabel + "=true"
		if len(l) > 1 {
			r += fmt.Sprintf(" (the first by name of %s)", strings.Join(l, ", "))
		}
		return Builder{Name: l[0], Reason: r}, nil
	case primaryServer != "":
		return Builder{Name: primaryServer, Reason: fmt.Sprintf("the first Server of role %s (no --builder, no Server labelled %s=true)", primaryRole, BuilderLabel)}, nil
	}
	return Builder{}, fmt.Errorf("no builder: pass --builder SERVER, label a Server %s=true, or name a Deployment whose primary role has Servers", BuilderLabel)
}

// BuilderLabel marks the Server of a namespace that builds images.
const BuilderLabel = "kamal.operator.dev/builder"

// Arch is an architecture spelled one way: Docker's /info says "x86_64" and "aarch64" where
// image platforms say "amd64" and "arm64".
func Arch(a string) string {
	switch a = strings.ToLower(strings.TrimSpace(a)); a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64", "armv8", "arm64/v8":
		return "arm64"
	}
	return a
}

// CheckArch refuses a builder whose architecture differs from one of the Servers' (by name;
// "" for a Server whose architecture is not known yet, which is left out): the engine's
// classic builder builds for its own architecture only. It returns the Servers left out.
func CheckArch(builder, builderArch string, servers map[string]string) (unknown []string, err error) {
	var differ []string
	names := make([]string, 0, len(servers))
	for n := range servers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		switch a := servers[n]; {
		case a == "":
			unknown = append(unknown, n)
		case Arch(a) != Arch(builderArch):
			differ = append(differ, fmt.Sprintf("%s (%s)", n, Arch(a)))
		}
	}
	if len(differ) > 0 {
		return unknown, fmt.Errorf("builder %s is %s but the Deployment runs on %s: the engine's builder cannot build for another architecture; choose a builder of that architecture with --builder",
			builder, Arch(builderArch), strings.Join(differ, ", "))
	}
	return unknown, nil
}
