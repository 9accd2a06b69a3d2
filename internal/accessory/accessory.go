// Package accessory turns an Accessory, resolved (env values and file contents read), into the
// container and host folders it needs on a server, and decides the next step on a host from
// what runs there. It is pure: no I/O, so every decision is tested without hosts.
package accessory

import (
	"archive/tar"
	"bytes"
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

// Network the accessory joins, where apps reach it by its container name.
const Network = "kamal"

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
	Namespace     string
	Name          string
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

// Filters select an accessory's containers on a host.
func Filters(namespace, name string) client.Filters {
	return client.Filters{}.
		Add("label", kamalv1.LabelNamespace+"="+namespace).
		Add("label", kamalv1.LabelAccessory+"="+name)
}

// CreateOptions is the Engine API request for the accessory's container: on the kamal
// network, restarted unless stopped, with its port, files, directories and volumes.
func (s *Spec) CreateOptions(hash string) (client.ContainerCreateOptions, error) {
	cfg := &container.Config{Image: s.Image, Cmd: s.Cmd, Env: s.Env, Labels: s.labels(hash)}
	hc := &container.HostConfig{
		NetworkMode:   container.NetworkMode(Network),
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
		Name: s.ContainerName, Config: cfg, HostConfig: hc,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{Network: {}}},
	}, nil
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

// SetupOptions is a container that is never started: the controller copies the accessory's
// files and folders into its bind of the accessory's folder through the Engine API, so no
// command runs on the host.
func (s *Spec) SetupOptions() client.ContainerCreateOptions {
	return client.ContainerCreateOptions{
		Name: s.ContainerName + "-setup",
		Config: &container.Config{
			Image:      s.Image,
			Entrypoint: []string{"/nonexistent"},
			Labels: map[string]string{
				kamalv1.LabelManagedBy: kamalv1.ManagerName, kamalv1.LabelNamespace: s.Namespace,
				kamalv1.LabelAccessory: s.Name, kamalv1.LabelPrefix + "setup": "true",
			},
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
