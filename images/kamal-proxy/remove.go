package kamalproxy

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

// RemoveDirCommand is the subcommand the controller runs, in a short-lived container of this
// image, to remove an accessory's folder or files on a host. The image is one the controller
// trusts (the accessory's own image may lack rm, or ship one that does something else), and
// the container binds only the folder's parent, at --root.
const RemoveDirCommand = "kamal-remove-dir"

func init() {
	fs := flag.NewFlagSet(RemoveDirCommand, flag.ContinueOnError)
	fs.String("root", "", "the only folder paths may lie in (required)")
	fs.Bool("prune", false, "also remove the parents of each path that are left empty, up to the root")
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  RemoveDirCommand,
		Usage: "--root <dir> [--prune] <path>...",
		Short: "Removes folder trees under a root without following symbolic links",
		Long: `
Removes each path (a file or a whole folder tree) that lies under --root; the root itself and
anything outside it are refused. Symbolic links inside a tree are removed, never followed, and a
path whose parents lead outside the root through a link is refused, so what a container left in
its data folder cannot make this remove anything else. A path that does not exist is no error.
Exits non-zero, saying which path and why, when anything could not be removed.`,
		Flags: fs,
		Func: func(fl caddycmd.Flags) (int, error) {
			if err := RemoveTrees(fl.String("root"), fl.Args(), fl.Bool("prune")); err != nil {
				return 1, err
			}
			return 0, nil
		},
	})
}

// RemoveTrees removes every path, each under root, through an os.Root opened at root: the
// kernel resolves each name beneath that directory, so neither a link in a parent nor one in
// the tree reaches outside it. With prune, each path's parents left empty go too.
func RemoveTrees(root string, paths []string, prune bool) error {
	if root == "" || !filepath.IsAbs(root) {
		return fmt.Errorf("--root must be an absolute path, got %q", root)
	}
	if len(paths) == 0 {
		return errors.New("no path to remove")
	}
	rels := make([]string, 0, len(paths))
	for _, p := range paths {
		rel, err := underRoot(root, p)
		if err != nil {
			return err
		}
		rels = append(rels, rel)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	var errs []error
	for i, rel := range rels {
		if err := r.RemoveAll(rel); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", paths[i], err))
			continue
		}
		if prune {
			pruneParents(r, rel)
		}
	}
	return errors.Join(errs...)
}

// underRoot returns p relative to root; p must name something strictly inside root.
func underRoot(root, p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	rel, err := filepath.Rel(filepath.Clean(root), filepath.Clean(p))
	if err != nil || rel == "." || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("refusing %q: not inside the root %s", p, root)
	}
	return rel, nil
}

// pruneParents removes the parents of rel that are empty, innermost first; the first one that
// is not empty (or not there) ends it.
func pruneParents(r *os.Root, rel string) {
	for dir := filepath.Dir(rel); dir != "." && !strings.HasPrefix(dir, ".."); dir = filepath.Dir(dir) {
		if fi, err := r.Lstat(dir); err != nil || !fi.IsDir() {
			return
		}
		if err := r.Remove(dir); err != nil {
			return
		}
	}
}
