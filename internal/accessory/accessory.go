// Package accessory turns an Accessory, resolved (env values and file contents read), into the
// container and host folders it needs on a server, and decides the next step on a host from
// what runs there. It is pure: no I/O, so every decision is tested without hosts.
package accessory

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
)

// Root holds every accessory's own folder on a host: Root/<namespace>/<name>.
const Root = "/var/lib/kamal-operator/accessories"

// setupMount is where a setup container sees the accessory's folder.
const setupMount = "/kamal-accessory"

// Folder is the accessory's own folder on every host. Namespace and name are DNS labels or
// subdomains, so the path has no "..", no separators of its own and nothing a shell would read.
func Folder(namespace, name string) string { return path.Join(Root, namespace, name) }

// File is a file made from a ConfigMap or Secret key.
type File struct {
	// Target is the path in the container.
	Target string `json:"target"`
	Mode   int64  `json:"mode"`
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	// Content is never logged; the hash covers it.
	Content []byte `json:"content"`
}

// Spec is everything that shapes an accessory's container, resolved. Its spec hash covers the
// fields that define the container, through hashInputV1 (hash.go): a field added here is not
// in the hash until it is added there, under the rule written there.
type Spec struct {
	Namespace string
	Name      string
	// UID of the Accessory: it tells its container name apart from another namespace's on a
	// shared host (HostNames). Not hashed (the hash is keyed with it).
	UID string
	// ContainerName is the name apps reach the accessory by: spec.containerName, else the
	// Accessory's name. Its container is named so unless another namespace's holds the name on
	// a host (HostNames); it is always a network alias.
	ContainerName string
	Image         string
	Cmd           []string
	// Env in order, "NAME=value"; secret values included. Never logged.
	Env         []string
	Port        string
	Files       []File
	Directories []string
	Volumes     []string
	Labels      map[string]string
	Options     *kamalv1.ContainerOptions
	Logging     *kamalv1.Logging
}

// Folder is this accessory's own folder on a host.
func (s *Spec) Folder() string { return Folder(s.Namespace, s.Name) }

// FileHostPath is where file target lives on the host: under the folder's files/, at the
// target's own path, so two targets never share a host file.
func (s *Spec) FileHostPath(target string) string {
	return path.Join(s.Folder(), "files", path.Clean("/"+target))
}

// Mount is one bind of a directory.
type Mount struct {
	HostPath string
	Target   string
	ReadOnly bool
	// Own is true for a folder under the accessory's folder, which the controller creates.
	Own bool
}

// ParseDirectory reads "hostDir:containerPath[:ro|:rw]"; a relative hostDir lives under the
// accessory's folder.
func (s *Spec) ParseDirectory(d string) (Mount, error) {
	parts := strings.Split(d, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || !strings.HasPrefix(parts[1], "/") {
		return Mount{}, fmt.Errorf("directory %q: want hostDir:/containerPath[:ro]", d)
	}
	m := Mount{HostPath: parts[0], Target: path.Clean(parts[1])}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			m.ReadOnly = true
		case "rw":
		default:
			return Mount{}, fmt.Errorf("directory %q: unknown option %q", d, parts[2])
		}
	}
	if !path.IsAbs(m.HostPath) {
		clean := path.Clean(m.HostPath)
		if clean == ".." || strings.HasPrefix(clean, "../") {
			return Mount{}, fmt.Errorf("directory %q climbs out of the accessory's folder", d)
		}
		if clean == "." || clean == "files" || strings.HasPrefix(clean, "files/") {
			return Mount{}, fmt.Errorf("directory %q: the accessory's folder itself and its files/ hold the accessory's files", d)
		}
		m.HostPath = path.Join(s.Folder(), clean)
		m.Own = true
	}
	return m, nil
}

// Labels identifies the accessory's container on a host.
func (s *Spec) labels(hash string) map[string]string {
	l := map[string]string{}
	for k, v := range s.Labels {
		l[k] = v
	}
	l[kamalv1.LabelManagedBy] = kamalv1.ManagerName
	l[kamalv1.LabelNamespace] = s.Namespace
	l[kamalv1.LabelAccessory] = s.Name
	l[kamalv1.LabelSpecHash] = hash
	l[FilesLabel] = s.filesLabel()
	return l
}

// Filters select an accessory's containers on a host: made by the controller, of that
// namespace and object. Only containers so found are ever stopped or removed for it.
func Filters(namespace, name string) client.Filters {
	return client.Filters{}.
		Add("label", kamalv1.LabelManagedBy+"="+kamalv1.ManagerName).
		Add("label", kamalv1.LabelNamespace+"="+namespace).
		Add("label", kamalv1.LabelAccessory+"="+name)
}

// OwnLabels are the labels every container of the accessory carries, its own setup
// containers included.
func (s *Spec) OwnLabels() map[string]string {
	return map[string]string{
		kamalv1.LabelManagedBy: kamalv1.ManagerName, kamalv1.LabelNamespace: s.Namespace, kamalv1.LabelAccessory: s.Name,
	}
}

// Network is the one the accessory joins: its namespace's, where the namespace's apps reach it
// by ContainerName and other namespaces' apps do not.
func (s *Spec) Network() string { return docker.NamespaceNetwork(s.Namespace) }

// CreateOptions is the Engine API request for the accessory's container named name (one of
// HostNames): on its namespace's network with ContainerName as an alias, restarted unless
// stopped, with its port, files, directories and volumes. The network is not part of the
// spec hash: a container moved from the old shared network keeps its hash.
func (s *Spec) CreateOptions(name, hash string) (client.ContainerCreateOptions, error) {
	cfg := &container.Config{Image: s.Image, Cmd: s.Cmd, Env: s.Env, Labels: s.labels(hash)}
	hc := &container.HostConfig{
		NetworkMode:   container.NetworkMode(s.Network()),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
	}
	for _, d := range s.Directories {
		m, err := s.ParseDirectory(d)
		if err != nil {
			return client.ContainerCreateOptions{}, err
		}
		bind := m.HostPath + ":" + m.Target
		if m.ReadOnly {
			bind += ":ro"
		}
		hc.Binds = append(hc.Binds, bind)
	}
	for _, f := range s.Files {
		hc.Binds = append(hc.Binds, s.FileHostPath(f.Target)+":"+f.Target+":ro")
	}
	hc.Binds = append(hc.Binds, s.Volumes...)
	if s.Port != "" {
		exposed, bindings, err := PortBindings(s.Port)
		if err != nil {
			return client.ContainerCreateOptions{}, err
		}
		cfg.ExposedPorts = exposed
		hc.PortBindings = bindings
	}
	if err := docker.ApplyOptions(s.Options, cfg, hc); err != nil {
		return client.ContainerCreateOptions{}, err
	}
	docker.ApplyLogging(s.Logging, hc)
	return client.ContainerCreateOptions{
		Name: name, Config: cfg, HostConfig: hc,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			s.Network(): {Aliases: []string{s.ContainerName}},
		}},
	}, nil
}

// idDigits is how many hex digits of a hash end a suffixed name.
const idDigits = 8

// HostNames are the names the accessory's container may have on a host: ContainerName, and
// ContainerName (cut to fit 63 characters) plus '-' and 8 hex digits of a hash of namespace
// and UID, for a host where another namespace's container holds the plain name.
func (s *Spec) HostNames() (plain, suffixed string) {
	sum := sha256.Sum256([]byte("kamal-accessory-name-v1\x00" + s.Namespace + "\x00" + s.UID))
	return s.ContainerName, cutName(s.ContainerName, 63-1-idDigits) + "-" + hex.EncodeToString(sum[:])[:idDigits]
}

// cutName is name cut to n characters, without a '-' at its end.
func cutName(name string, n int) string {
	return strings.TrimRight(name[:min(len(name), n)], "-")
}

// Holder is the container that holds the accessory's plain name on a host, as its labels say;
// nil labels with Exists false when none does.
type Holder struct {
	Exists bool
	Name   string
	Labels map[string]string
}

// NameOnHost picks the name of a new container of the accessory on a host where holder holds
// its plain name: the plain name when it is free or held by the accessory itself; the suffixed
// one when another namespace's container, or one the controller did not make, holds it.
// Refused (an error that says why): a holder of the same namespace (its apps would resolve two
// containers by the name), and another namespace's app container (the proxy, which is on every
// namespace's network, would resolve the alias instead of that app).
func (s *Spec) NameOnHost(h Holder) (string, error) {
	plain, suffixed := s.HostNames()
	if !h.Exists || docker.Owned(h.Labels, s.OwnLabels()) {
		return plain, nil
	}
	owner := docker.OwnerOf(h.Labels)
	switch {
	case h.Labels[kamalv1.LabelManagedBy] == kamalv1.ManagerName && h.Labels[kamalv1.LabelNamespace] == s.Namespace:
		return "", fmt.Errorf("container name %s is taken on this host by %s of %s in the same namespace: give one of them another containerName", plain, h.Name, owner)
	case h.Labels[kamalv1.LabelManagedBy] == kamalv1.ManagerName && h.Labels[kamalv1.LabelDeployment] != "":
		return "", fmt.Errorf("container name %s is the name of an app container of another namespace on this host (the proxy reaches apps by name): choose another containerName", plain)
	}
	return suffixed, nil
}

// PortBindings reads "[ip:][hostPort:]containerPort[/proto]" (a bare number publishes the same
// port on every host address).
func PortBindings(spec string) (network.PortSet, network.PortMap, error) {
	proto := "tcp"
	if i := strings.LastIndex(spec, "/"); i >= 0 {
		proto, spec = spec[i+1:], spec[:i]
	}
	ip := ""
	if strings.HasPrefix(spec, "[") {
		end := strings.Index(spec, "]:")
		if end < 0 {
			return nil, nil, fmt.Errorf("port %q: unclosed IPv6 address", spec)
		}
		ip, spec = spec[1:end], spec[end+2:]
	} else if strings.Count(spec, ":") == 2 {
		i := strings.Index(spec, ":")
		ip, spec = spec[:i], spec[i+1:]
	}
	hostPort, containerPort := "", spec
	if i := strings.Index(spec, ":"); i >= 0 {
		hostPort, containerPort = spec[:i], spec[i+1:]
	}
	if n, err := strconv.Atoi(containerPort); err != nil || n < 1 || n > 65535 {
		return nil, nil, fmt.Errorf("port %q: container port must be 1-65535", containerPort)
	}
	if hostPort == "" {
		hostPort = containerPort
	}
	p, err := network.ParsePort(containerPort + "/" + proto)
	if err != nil {
		return nil, nil, fmt.Errorf("port: %w", err)
	}
	b := network.PortBinding{HostPort: hostPort}
	if ip != "" {
		if b.HostIP, err = netip.ParseAddr(ip); err != nil {
			return nil, nil, fmt.Errorf("port: %w", err)
		}
	}
	return network.PortSet{p: {}}, network.PortMap{p: {b}}, nil
}

// ServicePort is the container's TCP port of spec.port, where the accessory serves; false
// when it publishes none (or only UDP/SCTP).
func (s *Spec) ServicePort() (string, bool) {
	if s.Port == "" {
		return "", false
	}
	exposed, _, err := PortBindings(s.Port)
	if err != nil {
		return "", false
	}
	for p := range exposed {
		if string(p.Proto()) == "tcp" {
			return strconv.Itoa(int(p.Num())), true
		}
	}
	return "", false
}

// SetupName is the name of the accessory's setup container: reserved (kamal-setup-…, which no
// Accessory may take), readable, and apart from other accessories' by a hash of namespace and
// name.
func (s *Spec) SetupName() string {
	sum := sha256.Sum256([]byte("kamal-setup-v1\x00" + s.Namespace + "\x00" + s.Name))
	return docker.ReservedSetupPrefix + cutName(s.ContainerName, 63-len(docker.ReservedSetupPrefix)-1-idDigits) + "-" + hex.EncodeToString(sum[:])[:idDigits]
}

// SetupLabels mark a setup container of the accessory.
func (s *Spec) SetupLabels() map[string]string {
	l := s.OwnLabels()
	l[LabelSetup] = "true"
	return l
}

// LabelSetup marks the accessory's short-lived setup containers (file writer, folder remover).
const LabelSetup = kamalv1.LabelPrefix + "setup"

// SetupOptions is a container that is never started: the controller copies the accessory's
// files and folders into its bind of the accessory's folder through the Engine API, so no
// command runs on the host.
func (s *Spec) SetupOptions() client.ContainerCreateOptions {
	return client.ContainerCreateOptions{
		Name: s.SetupName(),
		Config: &container.Config{
			Image:      s.Image,
			Entrypoint: []string{"/nonexistent"},
			Labels:     s.SetupLabels(),
		},
		HostConfig: &container.HostConfig{Binds: []string{s.Folder() + ":" + setupMount}, NetworkMode: "none"},
	}
}

// SetupArchive is the tar to copy to "/" of the setup container: the accessory's own
// directories (0755, root) and its files with their mode and owner. Secret files are never
// readable by others (the API refuses such modes).
func (s *Spec) SetupArchive() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Unix(0, 0)
	dirs := map[string]bool{}
	addDir := func(p string) error {
		// Every parent, outermost first, so each gets its mode rather than a default.
		rel := strings.TrimPrefix(p, s.Folder())
		var parts []string
		for _, seg := range strings.Split(strings.Trim(rel, "/"), "/") {
			if seg == "" {
				continue
			}
			parts = append(parts, seg)
			name := path.Join(setupMount[1:], path.Join(parts...)) + "/"
			if dirs[name] {
				continue
			}
			dirs[name] = true
			if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, d := range s.Directories {
		m, err := s.ParseDirectory(d)
		if err != nil {
			return nil, err
		}
		if m.Own {
			if err := addDir(m.HostPath); err != nil {
				return nil, err
			}
		}
	}
	files := append([]File(nil), s.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Target < files[j].Target })
	for _, f := range files {
		hp := s.FileHostPath(f.Target)
		if err := addDir(path.Dir(hp)); err != nil {
			return nil, err
		}
		name := path.Join(setupMount[1:], strings.TrimPrefix(hp, s.Folder()))
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: f.Mode, Uid: f.UID, Gid: f.GID, Size: int64(len(f.Content)), ModTime: now}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ParseOwner reads "uid[:gid]"; empty is root. The gid defaults to the uid.
func ParseOwner(owner string) (uid, gid int, err error) {
	if owner == "" {
		return 0, 0, nil
	}
	u, g, hasGID := strings.Cut(owner, ":")
	if uid, err = strconv.Atoi(u); err != nil {
		return 0, 0, fmt.Errorf("owner %q: %w", owner, err)
	}
	gid = uid
	if hasGID {
		if gid, err = strconv.Atoi(g); err != nil {
			return 0, 0, fmt.Errorf("owner %q: %w", owner, err)
		}
	}
	return uid, gid, nil
}
