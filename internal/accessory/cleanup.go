package accessory

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// FilesLabel lists, on an accessory's container, the targets of the files written for it (a
// JSON array of container paths, never their contents), so files dropped from the spec can be
// found on the host and removed.
const FilesLabel = kamalv1.LabelPrefix + "files"

// filesLabel is the value of FilesLabel for the spec's files, sorted.
func (s *Spec) filesLabel() string {
	targets := make([]string, 0, len(s.Files))
	for _, f := range s.Files {
		targets = append(targets, f.Target)
	}
	slices.Sort(targets)
	b, _ := json.Marshal(targets)
	return string(b)
}

// ParseFilesLabel reads FilesLabel from a container's labels; known is false for a container
// without it (made before the label existed) or with a value that does not parse.
func ParseFilesLabel(labels map[string]string) (targets []string, known bool) {
	v, ok := labels[FilesLabel]
	if !ok {
		return nil, false
	}
	if err := json.Unmarshal([]byte(v), &targets); err != nil {
		return nil, false
	}
	return targets, true
}

// StaleFiles are the files that containers of the accessory on a host list and the spec no
// longer writes, as paths relative to the accessory's folder (files/<target>), sorted. They are
// removed before the containers that list them: until then, those containers keep track of them.
func (s *Spec) StaleFiles(observed []Observed) []string {
	want := map[string]bool{}
	for _, f := range s.Files {
		want[path.Clean("/"+f.Target)] = true
	}
	var stale []string
	for _, o := range observed {
		for _, t := range o.Files {
			t = path.Clean("/" + t)
			rel := strings.TrimPrefix(s.FileHostPath(t), s.Folder()+"/")
			if !want[t] && !slices.Contains(stale, rel) && validFileRel(rel) {
				stale = append(stale, rel)
			}
		}
	}
	slices.Sort(stale)
	return stale
}

// validFileRel guards what a label (written by the controller, but read from a host) may name:
// a path under the folder's files/, nothing else.
func validFileRel(rel string) bool {
	return strings.HasPrefix(rel, "files/") && path.Clean(rel) == rel && !strings.Contains(rel, "..")
}

// CheckDirectories refuses directories whose host folders nest (data and data/logs): the
// outer one is mounted into the container, which could replace the inner folder with a
// symbolic link that Docker follows on the host when it next binds the inner one. The same
// folder listed twice does not nest.
func (s *Spec) CheckDirectories() error {
	mounts := make([]Mount, 0, len(s.Directories))
	for _, d := range s.Directories {
		m, err := s.ParseDirectory(d)
		if err != nil {
			return err
		}
		m.HostPath = path.Clean(m.HostPath)
		mounts = append(mounts, m)
	}
	for i, outer := range mounts {
		for j, inner := range mounts {
			if i != j && strings.HasPrefix(inner.HostPath, strings.TrimSuffix(outer.HostPath, "/")+"/") {
				return fmt.Errorf("directories %q and %q nest (%s is inside %s): the container could replace the inner folder with a symbolic link that Docker follows on the host; use folders side by side, e.g. data and logs",
					s.Directories[i], s.Directories[j], inner.HostPath, outer.HostPath)
			}
		}
	}
	return nil
}

// HostCleanup is what removing an accessory from a host deletes there besides its containers:
// Paths, relative to Dir, the only host folder the remover sees.
type HostCleanup struct {
	Dir   string
	Paths []string
	// Prune removes the parents of Paths left empty, up to Dir.
	Prune bool
}

// PlanRemoval says what goes from a host with the accessory, besides its containers. With
// deleteData, the accessory's whole folder, where it ran or is placed (Dir is the folder's
// parent, so the remover never sees another namespace's folders). Otherwise only its files/,
// which hold ConfigMap and Secret contents: where a container lists files, or does not say
// (made before FilesLabel). Data directories stay (deletionPolicy Retain). ok is false when
// nothing on the host needs removing.
func PlanRemoval(namespace, name string, observed []Observed, deleteData, placed bool) (HostCleanup, bool) {
	if deleteData && (placed || len(observed) > 0) {
		return HostCleanup{Dir: path.Join(Root, namespace), Paths: []string{name}}, true
	}
	for _, o := range observed {
		if !o.Setup && (!o.FilesKnown || len(o.Files) > 0) {
			return HostCleanup{Dir: Folder(namespace, name), Paths: []string{"files"}}, true
		}
	}
	return HostCleanup{}, false
}
