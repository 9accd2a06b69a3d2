// Package images builds the FROM-scratch fixture images of kamal-operator's end-to-end tests and
// pushes them to the test registry through the registry's HTTP API (Docker Registry v2), with no
// Docker daemon and nothing pulled from outside.
//
// An image here is one layer (a tar of the files given) plus an image config, described by a
// Docker schema 2 manifest, the format that every Docker Engine since 1.10 pulls. The layer is
// written deterministically (fixed times, owners and order), so the same binary gives the same
// digest and a push of an image the registry already holds under that tag sends nothing.
package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// Media types of a Docker schema 2 image.
const (
	MediaTypeManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeConfig   = "application/vnd.docker.container.image.v1+json"
	MediaTypeLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// File is one entry of an image's single layer.
type File struct {
	Path string // absolute path in the image, e.g. /usr/bin/caddy
	Mode int64  // permission bits (and 01000 for sticky); 0 means 0644 for files, 0755 for dirs
	Dir  bool
	Data []byte
	Link string // when set, a symbolic link to Link (Data and Mode unused)
}

// Healthcheck is the image's HEALTHCHECK (Docker's format: Test is e.g. ["CMD", "/app", "healthcheck"]).
type Healthcheck struct {
	Test        []string      `json:"Test"`
	Interval    time.Duration `json:"Interval,omitempty"`
	Timeout     time.Duration `json:"Timeout,omitempty"`
	StartPeriod time.Duration `json:"StartPeriod,omitempty"`
	Retries     int           `json:"Retries,omitempty"`
}

// LayerFile is a layer already written to disk as a gzipped tar, such as a whole root filesystem
// (what `docker import` takes). It is streamed to the registry, never read into memory.
type LayerFile struct {
	Path   string // the .tar.gz
	Size   int64  // its size in bytes
	Digest string // sha256 of the .tar.gz (the blob's digest)
	DiffID string // sha256 of the uncompressed tar
}

// Image is a single-layer image built from Files, or from Layer when that is set.
type Image struct {
	Files        []File
	Layer        *LayerFile // a prebuilt layer instead of Files
	Entrypoint   []string
	Cmd          []string
	Env          []string
	WorkingDir   string
	ExposedPorts []string // "80/tcp"
	Volumes      []string
	Labels       map[string]string
	StopSignal   string
	User         string
	Healthcheck  *Healthcheck
}

// Built is an image ready to push: its blobs and manifest, with their digests. The layer is
// Layer, or the file LayerFile (LayerSize bytes) for an image built on a LayerFile.
type Built struct {
	Layer, Config, Manifest           []byte
	LayerFile                         string
	LayerSize                         int64
	LayerDigest, DiffID, ConfigDigest string
	ManifestDigest                    string
}

var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// Build writes the layer, config and manifest of img. The result depends only on img (and, for
// an image on a LayerFile, on that file's digests).
func (img Image) Build() (*Built, error) {
	if l := img.Layer; l != nil {
		if l.Path == "" || l.Digest == "" || l.DiffID == "" || l.Size <= 0 {
			return nil, fmt.Errorf("incomplete layer file %+v", *l)
		}
		return img.finish(&Built{LayerFile: l.Path, LayerSize: l.Size, LayerDigest: l.Digest, DiffID: l.DiffID})
	}
	files := append([]File(nil), img.Files...)
	// Parent folders first, each once.
	seen := map[string]bool{}
	var all []File
	var addDirs func(p string)
	addDirs = func(p string) {
		d := path.Dir(p)
		if d == "/" || d == "." || seen[d] {
			return
		}
		addDirs(d)
		seen[d] = true
		all = append(all, File{Path: d, Dir: true})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		if !strings.HasPrefix(f.Path, "/") {
			return nil, fmt.Errorf("image file path %q is not absolute", f.Path)
		}
		addDirs(f.Path)
		if f.Dir {
			if seen[f.Path] {
				// an explicit entry replaces the implied one
				for i := range all {
					if all[i].Path == f.Path {
						all[i] = f
					}
				}
				continue
			}
			seen[f.Path] = true
		}
		all = append(all, f)
	}

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, f := range all {
		h := &tar.Header{
			Name:    strings.TrimPrefix(f.Path, "/"),
			ModTime: epoch,
			Format:  tar.FormatUSTAR,
		}
		switch {
		case f.Dir:
			h.Typeflag = tar.TypeDir
			h.Name += "/"
			h.Mode = 0o755
		case f.Link != "":
			h.Typeflag = tar.TypeSymlink
			h.Linkname = f.Link
			h.Mode = 0o777
		default:
			h.Typeflag = tar.TypeReg
			h.Mode = 0o644
			h.Size = int64(len(f.Data))
		}
		if f.Mode != 0 && f.Link == "" {
			h.Mode = f.Mode
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}

	return img.finish(&Built{Layer: gz.Bytes(), LayerSize: int64(gz.Len()), DiffID: digestOf(raw.Bytes()),
		LayerDigest: digestOf(gz.Bytes())})
}

// finish adds the config and the manifest to b, whose layer is set.
func (img Image) finish(b *Built) (*Built, error) {
	type containerConfig struct {
		User         string              `json:"User,omitempty"`
		Env          []string            `json:"Env,omitempty"`
		Entrypoint   []string            `json:"Entrypoint,omitempty"`
		Cmd          []string            `json:"Cmd,omitempty"`
		WorkingDir   string              `json:"WorkingDir,omitempty"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
		Volumes      map[string]struct{} `json:"Volumes,omitempty"`
		Labels       map[string]string   `json:"Labels,omitempty"`
		StopSignal   string              `json:"StopSignal,omitempty"`
		Healthcheck  *Healthcheck        `json:"Healthcheck,omitempty"`
	}
	cc := containerConfig{
		User: img.User, Env: img.Env, Entrypoint: img.Entrypoint, Cmd: img.Cmd, WorkingDir: img.WorkingDir,
		Labels: img.Labels, StopSignal: img.StopSignal, Healthcheck: img.Healthcheck,
	}
	if len(img.ExposedPorts) > 0 {
		cc.ExposedPorts = map[string]struct{}{}
		for _, p := range img.ExposedPorts {
			cc.ExposedPorts[p] = struct{}{}
		}
	}
	if len(img.Volumes) > 0 {
		cc.Volumes = map[string]struct{}{}
		for _, v := range img.Volumes {
			cc.Volumes[v] = struct{}{}
		}
	}
	cfg := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config":       cc,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{b.DiffID}},
		"history":      []map[string]string{{"created": epoch.Format(time.RFC3339), "created_by": "kamal-operator test/images"}},
	}
	var err error
	if b.Config, err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	b.ConfigDigest = digestOf(b.Config)

	type descriptor struct {
		MediaType string `json:"mediaType"`
		Size      int64  `json:"size"`
		Digest    string `json:"digest"`
	}
	m := struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
	}{2, MediaTypeManifest,
		descriptor{MediaTypeConfig, int64(len(b.Config)), b.ConfigDigest},
		[]descriptor{{MediaTypeLayer, b.LayerSize, b.LayerDigest}}}
	if b.Manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	b.ManifestDigest = digestOf(b.Manifest)
	return b, nil
}

// Registry is a plain-HTTP Docker registry (v2 API) without authentication, such as the test
// registry at 10.231.0.1:5000.
type Registry struct {
	Addr   string // host:port
	Client *http.Client
}

func (r Registry) client() *http.Client {
	if r.Client != nil {
		return r.Client
	}
	return &http.Client{Timeout: 2 * time.Minute}
}

func (r Registry) url(p string) string { return "http://" + r.Addr + "/v2/" + p }

func (r Registry) do(ctx context.Context, method, u string, body []byte, hdr map[string]string) (*http.Response, []byte, error) {
	if body == nil {
		return r.doStream(ctx, method, u, nil, 0, hdr)
	}
	return r.doStream(ctx, method, u, bytes.NewReader(body), int64(len(body)), hdr)
}

// doStream sends size bytes read from body (nil: no body).
func (r Registry) doStream(ctx context.Context, method, u string, body io.Reader, size int64, hdr map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := r.client().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp, b, err
}

// Ping reports whether the registry answers its /v2/ endpoint.
func (r Registry) Ping(ctx context.Context) error {
	resp, _, err := r.do(ctx, http.MethodGet, r.url(""), nil, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("registry %s: /v2/ answered %s", r.Addr, resp.Status)
	}
	return nil
}

// ManifestDigest returns the digest of repo:tag, or "" if the registry does not have it.
func (r Registry) ManifestDigest(ctx context.Context, repo, tag string) (string, error) {
	resp, _, err := r.do(ctx, http.MethodHead, r.url(repo+"/manifests/"+url.PathEscape(tag)), nil,
		map[string]string{"Accept": MediaTypeManifest})
	if err != nil {
		return "", err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Header.Get("Docker-Content-Digest"), nil
	case http.StatusNotFound:
		return "", nil
	}
	return "", fmt.Errorf("registry %s: HEAD manifest %s:%s: %s", r.Addr, repo, tag, resp.Status)
}

// Tags lists the tags of repo (nil if the repository does not exist).
func (r Registry) Tags(ctx context.Context, repo string) ([]string, error) {
	resp, body, err := r.do(ctx, http.MethodGet, r.url(repo+"/tags/list"), nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("registry %s: tags of %s: %s", r.Addr, repo, resp.Status)
	}
	var v struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	return v.Tags, nil
}

func (r Registry) pushBlob(ctx context.Context, repo, digest string, data []byte) error {
	return r.pushBlobStream(ctx, repo, digest, int64(len(data)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}

// pushBlobStream uploads a blob of size bytes that open reads, unless the repository has it.
func (r Registry) pushBlobStream(ctx context.Context, repo, digest string, size int64, open func() (io.ReadCloser, error)) error {
	resp, _, err := r.do(ctx, http.MethodHead, r.url(repo+"/blobs/"+digest), nil, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	resp, body, err := r.do(ctx, http.MethodPost, r.url(repo+"/blobs/uploads/"), nil, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("registry %s: start upload to %s: %s %s", r.Addr, repo, resp.Status, body)
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("registry %s: upload location: %w", r.Addr, err)
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	rd, err := open()
	if err != nil {
		return err
	}
	defer rd.Close()
	resp, body, err = r.doStream(ctx, http.MethodPut, loc.String(), rd, size,
		map[string]string{"Content-Type": "application/octet-stream"})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("registry %s: upload %s to %s: %s %s", r.Addr, digest, repo, resp.Status, body)
	}
	return nil
}

// Push uploads b as repo:tag. It sends nothing and returns pushed=false when the registry already
// has that tag with the same manifest digest.
func (r Registry) Push(ctx context.Context, repo, tag string, b *Built) (pushed bool, err error) {
	if have, err := r.ManifestDigest(ctx, repo, tag); err != nil {
		return false, err
	} else if have == b.ManifestDigest {
		return false, nil
	}
	if b.LayerFile != "" {
		err = r.pushBlobStream(ctx, repo, b.LayerDigest, b.LayerSize, func() (io.ReadCloser, error) {
			return os.Open(b.LayerFile)
		})
	} else {
		err = r.pushBlob(ctx, repo, b.LayerDigest, b.Layer)
	}
	if err != nil {
		return false, err
	}
	if err := r.pushBlob(ctx, repo, b.ConfigDigest, b.Config); err != nil {
		return false, err
	}
	resp, body, err := r.do(ctx, http.MethodPut, r.url(repo+"/manifests/"+url.PathEscape(tag)), b.Manifest,
		map[string]string{"Content-Type": MediaTypeManifest})
	if err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusCreated {
		return false, fmt.Errorf("registry %s: put manifest %s:%s: %s %s", r.Addr, repo, tag, resp.Status, body)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != b.ManifestDigest {
		return false, errors.New("registry " + r.Addr + ": manifest digest " + got + ", want " + b.ManifestDigest)
	}
	return true, nil
}
