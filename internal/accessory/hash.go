package accessory

import "github.com/kamal-operator/kamal-operator/internal/spechash"

// hashInputV1 is an accessory as its spec hash sees it: exactly the settings that define its
// container. It encodes as json.Marshal(Spec) did before the projection existed (the same
// names, order, and null for unset lists and maps), so a controller upgrade keeps the hash of
// every running accessory and restarts none; the goldens in the tests hold it to that.
//
// A new field must be omitempty and absent from today's specs: append it with an explicit
// JSON name and omitempty, of a kind omitempty drops (a pointer, not a struct value), meaning
// "as before" when unset. See package spechash; TestHashProjectionFollowsTheRule enforces it.
type hashInputV1 struct {
	Namespace     string            `json:"Namespace"`
	Name          string            `json:"Name"`
	ContainerName string            `json:"ContainerName"`
	Image         string            `json:"Image"`
	Cmd           []string          `json:"Cmd"`
	Env           []string          `json:"Env"`
	Port          string            `json:"Port"`
	Files         []fileV1          `json:"Files"`
	Directories   []string          `json:"Directories"`
	Volumes       []string          `json:"Volumes"`
	Labels        map[string]string `json:"Labels"`
	Options       *spechash.Options `json:"Options"`
	Logging       *spechash.Logging `json:"Logging"`
	// New fields go here.
}

// fileV1 is a File as the hash sees it, version 1.
type fileV1 struct {
	Target  string `json:"target"`
	Mode    int64  `json:"mode"`
	UID     int    `json:"uid"`
	GID     int    `json:"gid"`
	Content []byte `json:"content"`
	// New fields go here.
}

// hashInput projects the spec. Lists and maps are shared, not copied: nil and empty encode
// differently, as they did.
func (s *Spec) hashInput() hashInputV1 {
	in := hashInputV1{
		Namespace: s.Namespace, Name: s.Name, ContainerName: s.ContainerName, Image: s.Image,
		Cmd: s.Cmd, Env: s.Env, Port: s.Port, Directories: s.Directories, Volumes: s.Volumes,
		Labels: s.Labels, Options: spechash.FromOptions(s.Options), Logging: spechash.FromLogging(s.Logging),
	}
	if s.Files != nil {
		in.Files = make([]fileV1, len(s.Files))
		for i, f := range s.Files {
			in.Files[i] = fileV1{Target: f.Target, Mode: f.Mode, UID: f.UID, GID: f.GID, Content: f.Content}
		}
	}
	return in
}

// Hash identifies everything that shapes the container, keyed with key (the Accessory's UID),
// so a host user reading the label cannot test guesses of secret values against it.
func (s *Spec) Hash(key string) string { return spechash.Must(key, s.hashInput()) }
