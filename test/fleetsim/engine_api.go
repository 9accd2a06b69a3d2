package fleetsim

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/api/types/volume"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// Engine identity, as Debian bookworm's docker.io reports it.
const (
	engineVersion = "20.10.24+dfsg1"
	kernelVersion = "6.1.0-fleetsim"
)

// versionPrefix is the /v1.41 of a versioned request.
var versionPrefix = regexp.MustCompile(`^/v[0-9]+\.[0-9]+/`)

// removerLabel marks the proxy's one-shot folder remover (internal/proxy remove.go).
const removerLabel = kamalv1.LabelPrefix + "remover"

// engineHandler serves the Engine API subset the controller calls; anything else is a 501
// and an unknown call.
func (f *Fleet) engineHandler() http.Handler {
	mux := engineMux()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Versioned requests are served as unversioned ones: one engine answers every version
		// from 1.12 to APIVersion, as a real one does.
		r.URL.Path, r.URL.RawPath = unversioned(r.URL.Path), ""
		mux.ServeHTTP(w, r)
	})
}

func unversioned(path string) string {
	if loc := versionPrefix.FindStringIndex(path); loc != nil {
		return path[loc[1]-1:]
	}
	return path
}

// engineTemplate is the template a call is recorded under: the pattern it matched, with the
// image name's catch-all written as in the Engine API's documentation.
func engineTemplate(pattern string, r *http.Request) string {
	switch {
	case strings.HasPrefix(pattern, "GET /images/{name...}"):
		return "GET /images/{name}/json"
	case strings.HasPrefix(pattern, "DELETE /images/{name...}"):
		return "DELETE /images/{name}"
	case pattern == "GET /_ping":
		return r.Method + " /_ping" // the client pings with HEAD, then GET
	}
	return pattern
}

// EngineTemplate is the template the simulator records an Engine API call under (versioned
// or not), "" for a call it does not simulate. A test recording a real engine's calls uses it
// to compare them with the simulator's.
func EngineTemplate(method, path string) string {
	r, err := http.NewRequest(method, "http://docker"+unversioned(path), nil)
	if err != nil {
		return ""
	}
	_, pattern := engineMux().Handler(r)
	if pattern == "/" || pattern == "" {
		return ""
	}
	return engineTemplate(pattern, r)
}

// engineMux routes the Engine API subset.
func engineMux() *http.ServeMux {
	mux := http.NewServeMux()
	route := func(pattern string, fn func(e *engine, w http.ResponseWriter, r *http.Request)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			h := hostOf(r)
			h.record(engineTemplate(pattern, r))
			if d := h.Faults().Slow; d > 0 {
				time.Sleep(d)
			}
			fn(h.engine, w, r)
		})
	}
	route("GET /_ping", func(e *engine, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("API-Version", e.host.fleet.opts.APIVersion)
		w.Header().Set("OSType", "linux")
		w.Header().Set("Docker-Experimental", "false")
		w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
		_, _ = io.WriteString(w, "OK")
	})
	route("GET /version", func(e *engine, w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, system.VersionResponse{Version: engineVersion, APIVersion: e.host.fleet.opts.APIVersion, MinAPIVersion: "1.12",
			Os: "linux", Arch: "amd64", KernelVersion: kernelVersion, GoVersion: "go1.19.8"})
	})
	route("GET /info", func(e *engine, w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, e.info()) })
	route("GET /events", (*engine).events)

	route("GET /containers/json", (*engine).listContainers)
	route("POST /containers/create", (*engine).create)
	route("POST /containers/prune", (*engine).prune)
	route("GET /containers/{id}/json", (*engine).inspect)
	route("POST /containers/{id}/start", (*engine).start)
	route("POST /containers/{id}/stop", func(e *engine, w http.ResponseWriter, r *http.Request) { e.stop(w, r, false) })
	route("POST /containers/{id}/kill", func(e *engine, w http.ResponseWriter, r *http.Request) { e.stop(w, r, true) })
	route("DELETE /containers/{id}", (*engine).remove)
	route("POST /containers/{id}/rename", (*engine).rename)
	route("POST /containers/{id}/update", (*engine).update)
	route("POST /containers/{id}/wait", (*engine).wait)
	route("GET /containers/{id}/logs", (*engine).logs)
	route("PUT /containers/{id}/archive", (*engine).archive)

	route("GET /images/json", (*engine).listImages)
	route("POST /images/create", func(e *engine, w http.ResponseWriter, r *http.Request) { e.pull(w, r, e.host.fleet.Delays().Pull) })
	route("GET /images/{name...}", (*engine).inspectImage)
	route("DELETE /images/{name...}", (*engine).removeImage)

	route("GET /networks", (*engine).listNetworks)
	route("POST /networks/create", (*engine).createNetwork)
	route("GET /networks/{id}", (*engine).inspectNetwork)
	route("POST /networks/{id}/connect", func(e *engine, w http.ResponseWriter, r *http.Request) { e.connect(w, r, true) })
	route("POST /networks/{id}/disconnect", func(e *engine, w http.ResponseWriter, r *http.Request) { e.connect(w, r, false) })
	route("DELETE /networks/{id}", (*engine).removeNetwork)

	route("GET /volumes", (*engine).listVolumes)
	route("POST /volumes/create", (*engine).createVolume)
	route("GET /volumes/{name}", (*engine).inspectVolume)
	route("DELETE /volumes/{name}", (*engine).removeVolume)

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		notImplemented(w, r, "engine")
	})
	return mux
}

// notImplemented answers 501 and records the call as unknown.
func notImplemented(w http.ResponseWriter, r *http.Request, api string) {
	h := hostOf(r)
	what := fmt.Sprintf("%s %s %s", api, r.Method, r.URL.Path)
	h.record(what)
	h.fleet.unknownCall(h, what)
	writeJSON(w, http.StatusNotImplemented, map[string]string{"message": "fleetsim does not simulate " + what + " (add it to test/fleetsim)"})
}

// unsupported answers 501 for a known path asked something the simulator does not simulate.
func unsupported(w http.ResponseWriter, r *http.Request, why string) {
	h := hostOf(r)
	what := fmt.Sprintf("engine %s %s: %s", r.Method, r.URL.Path, why)
	h.fleet.unknownCall(h, what)
	writeJSON(w, http.StatusNotImplemented, map[string]string{"message": "fleetsim does not simulate " + what})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError answers as the engine does: {"message": …} with the status the client maps to
// errdefs (404 not found, 409 conflict …).
func apiError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"message": fmt.Sprintf(format, args...)})
}

func decode(r *http.Request, v any) error {
	return json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(v)
}

func (e *engine) info() system.Info {
	e.mu.Lock()
	defer e.mu.Unlock()
	running := 0
	for _, c := range e.containers {
		if c.running() {
			running++
		}
	}
	return system.Info{
		ID: e.host.Name, Containers: len(e.containers), ContainersRunning: running, ContainersStopped: len(e.containers) - running,
		Images: len(e.images), Driver: "overlay2", LoggingDriver: "json-file", CgroupDriver: "systemd", CgroupVersion: "2",
		KernelVersion: kernelVersion, OperatingSystem: "Debian GNU/Linux 12 (bookworm)", OSVersion: "12", OSType: "linux",
		Architecture: "x86_64", NCPU: 2, MemTotal: 2 << 30, DockerRootDir: "/var/lib/docker", Name: e.host.Name,
		ServerVersion: engineVersion, IndexServerAddress: "https://index.docker.io/v1/",
	}
}

// events streams the host's container events that pass the request's filters until the
// client goes.
func (e *engine) events(w http.ResponseWriter, r *http.Request) {
	flt, err := parseFilters(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if bad := flt.unsupported("type", "label", "container", "event"); bad != "" {
		unsupported(w, r, "event filter "+bad)
		return
	}
	if r.URL.Query().Get("since") != "" || r.URL.Query().Get("until") != "" {
		unsupported(w, r, "events since/until")
		return
	}
	s := &subscriber{ch: make(chan events.Message, 256), filter: flt}
	e.mu.Lock()
	e.subs[s] = struct{}{}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.subs, s)
		e.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		select {
		case m := <-s.ch:
			if err := enc.Encode(m); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		case <-r.Context().Done():
			return
		case <-e.host.ctx.Done():
			return
		}
	}
}

func (e *engine) summary(c *ctr, health time.Duration) container.Summary {
	s := container.Summary{
		ID: c.id, Names: []string{"/" + c.name}, Image: c.config.Image, ImageID: imageID(normalizeRef(c.config.Image)),
		Command: strings.Join(append(append([]string{}, c.config.Entrypoint...), c.config.Cmd...), " "),
		Created: c.created.Unix(), Labels: c.config.Labels, State: c.state, Status: c.status(health),
		NetworkSettings: &container.NetworkSettingsSummary{Networks: c.networks},
		Mounts:          []container.MountPoint{},
		Ports:           []container.PortSummary{},
	}
	s.HostConfig.NetworkMode = string(c.host.NetworkMode)
	return s
}

func (e *engine) listContainers(w http.ResponseWriter, r *http.Request) {
	flt, err := parseFilters(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if bad := flt.unsupported("label", "name", "id", "status"); bad != "" {
		unsupported(w, r, "container filter "+bad)
		return
	}
	all := r.URL.Query().Get("all") == "1" || r.URL.Query().Get("all") == "true"
	health := e.host.fleet.Delays().Health
	e.mu.Lock()
	out := []container.Summary{}
	for _, c := range e.containers {
		if !all && !c.running() {
			continue
		}
		if !flt.matchLabels(c.config.Labels) || !flt.matchRegexp("name", "/"+c.name) || !flt.matchPrefix("id", c.id) || !flt.matchExact("status", string(c.state)) {
			continue
		}
		out = append(out, e.summary(c, health))
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		return out[i].Created > out[j].Created || (out[i].Created == out[j].Created && out[i].ID < out[j].ID)
	})
	writeJSON(w, http.StatusOK, out)
}

func (e *engine) create(w http.ResponseWriter, r *http.Request) {
	var req container.CreateRequest
	if err := decode(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "decoding request: %v", err)
		return
	}
	if req.Config == nil {
		req.Config = &container.Config{}
	}
	if req.HostConfig == nil {
		req.HostConfig = &container.HostConfig{}
	}
	name := strings.TrimPrefix(r.URL.Query().Get("name"), "/")
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lookupImage(req.Config.Image) == nil {
		apiError(w, http.StatusNotFound, "No such image: %s", req.Config.Image)
		return
	}
	id := randomID()
	if name == "" {
		name = "sim_" + id[:8]
	}
	for _, c := range e.containers {
		if c.name == name {
			apiError(w, http.StatusConflict, "Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, c.id)
			return
		}
	}
	c := &ctr{id: id, name: name, created: time.Now(), config: *req.Config, host: *req.HostConfig, state: container.StateCreated,
		networks: map[string]*network.EndpointSettings{}}
	c.healthy = c.config.Healthcheck != nil && len(c.config.Healthcheck.Test) > 0 && c.config.Healthcheck.Test[0] != "NONE"
	mode := string(c.host.NetworkMode)
	if mode == "" || mode == "default" {
		mode = "bridge"
	}
	var eps map[string]*network.EndpointSettings
	if req.NetworkingConfig != nil {
		eps = req.NetworkingConfig.EndpointsConfig
	}
	n := e.lookupNetwork(mode)
	if n == nil {
		apiError(w, http.StatusNotFound, "network %s not found", mode)
		return
	}
	for _, m := range c.host.Mounts {
		if m.Type == "volume" && m.Source != "" && e.volumes[m.Source] == nil {
			e.volumes[m.Source] = newVolume(m.Source, nil)
		}
	}
	e.containers[id] = c
	e.attach(c, n, eps[mode])
	e.emit(c, events.ActionCreate, nil)
	writeJSON(w, http.StatusCreated, container.CreateResponse{ID: id, Warnings: []string{}})
}

func (e *engine) inspect(w http.ResponseWriter, r *http.Request) {
	health := e.host.fleet.Delays().Health
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.find(w, r)
	if c == nil {
		return
	}
	st := &container.State{Status: c.state, Running: c.running(), ExitCode: c.exitCode,
		StartedAt: timeString(c.started), FinishedAt: timeString(c.finished)}
	if c.running() {
		st.Pid = 1000 + int(c.created.UnixNano()%30000)
		if c.healthy {
			st.Health = &container.Health{Status: container.Starting}
			if time.Since(c.started) >= health {
				st.Health.Status = container.Healthy
			}
		}
	}
	cfg, hc := c.config, c.host
	path, args := "", []string{}
	if cmd := append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...); len(cmd) > 0 {
		path, args = cmd[0], cmd[1:]
	}
	writeJSON(w, http.StatusOK, container.InspectResponse{
		ID: c.id, Created: c.created.UTC().Format(time.RFC3339Nano), Path: path, Args: args, State: st,
		Image: imageID(normalizeRef(cfg.Image)), Name: "/" + c.name, RestartCount: c.restarts, Driver: "overlay2", Platform: "linux",
		HostConfig: &hc, Config: &cfg, Mounts: []container.MountPoint{},
		NetworkSettings: &container.NetworkSettings{Networks: c.networks},
	})
}

// find looks the request's container up, answering 404 when there is none; e.mu held.
func (e *engine) find(w http.ResponseWriter, r *http.Request) *ctr {
	c := e.lookup(r.PathValue("id"))
	if c == nil {
		apiError(w, http.StatusNotFound, "No such container: %s", r.PathValue("id"))
	}
	return c
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// exitsAtOnce says whether a container runs a task that ends rather than a service: the
// proxy's folder remover and one-off containers (releases) exit 0 right after their start.
func exitsAtOnce(c *ctr) bool {
	_, oneOff := c.config.Labels[kamalv1.LabelOneOff]
	return c.config.Labels[removerLabel] == "true" || oneOff
}

func (e *engine) start(w http.ResponseWriter, r *http.Request) {
	if d := e.host.fleet.Delays().Start; d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.find(w, r)
	if c == nil {
		return
	}
	if c.running() {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	c.state, c.started, c.exitCode = container.StateRunning, time.Now(), 0
	e.emit(c, events.ActionStart, nil)
	if exitsAtOnce(c) {
		e.stopLocked(c, 0, "")
	}
	w.WriteHeader(http.StatusNoContent)
}

func (e *engine) stop(w http.ResponseWriter, r *http.Request, kill bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.find(w, r)
	if c == nil {
		return
	}
	if !c.running() {
		if kill {
			apiError(w, http.StatusConflict, "Cannot kill container: %s: Container %s is not running", r.PathValue("id"), c.id)
			return
		}
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if kill {
		sig := r.URL.Query().Get("signal")
		if sig == "" {
			sig = "KILL"
		}
		e.stopLocked(c, 137, sig)
	} else {
		e.stopLocked(c, 143, "SIGTERM")
		e.emit(c, events.ActionStop, nil)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (e *engine) remove(w http.ResponseWriter, r *http.Request) {
	force := r.URL.Query().Get("force") == "1" || r.URL.Query().Get("force") == "true"
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.find(w, r)
	if c == nil {
		return
	}
	if c.running() {
		if !force {
			apiError(w, http.StatusConflict, "You cannot remove a running container %s. Stop the container before attempting removal or force remove", c.id)
			return
		}
		e.stopLocked(c, 137, "SIGKILL")
	}
	e.detachAll(c)
	delete(e.containers, c.id)
	e.emit(c, events.ActionDestroy, nil)
	w.WriteHeader(http.StatusNoContent)
}

func (e *engine) rename(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Query().Get("name"), "/")
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.find(w, r)
	if c == nil {
		return
	}
	for _, o := range e.containers {
		if o.name == name && o != c {
			apiError(w, http.StatusConflict, "Conflict. The container name \"/%s\" is already in use by container \"%s\".", name, o.id)
			return
		}
	}
	old := c.name
	c.name = name
	for _, ep := range c.networks {
		ep.DNSNames = append([]string{c.name, c.id[:12]}, ep.Aliases...)
	}
	e.emit(c, events.ActionRename, map[string]string{"oldName": "/" + old})
	w.WriteHeader(http.StatusNoContent)
}

func (e *engine) update(w http.ResponseWriter, r *http.Request) {
	var req container.UpdateConfig
	if err := decode(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "decoding request: %v", err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.find(w, r)
	if c == nil {
		return
	}
	if req.RestartPolicy.Name != "" {
		c.host.RestartPolicy = req.RestartPolicy
	}
	e.emit(c, events.ActionUpdate, nil)
	writeJSON(w, http.StatusOK, container.UpdateResponse{Warnings: []string{}})
}

func (e *engine) wait(w http.ResponseWriter, r *http.Request) {
	cond := r.URL.Query().Get("condition")
	e.mu.Lock()
	c := e.lookup(r.PathValue("id"))
	if c == nil {
		e.mu.Unlock()
		apiError(w, http.StatusNotFound, "No such container: %s", r.PathValue("id"))
		return
	}
	id := c.id
	wasRunning := c.running()
	e.mu.Unlock()
	// The engine answers the headers at once (the client then knows the wait is registered)
	// and the body when the condition is met.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	seenRunning := wasRunning
	for {
		e.mu.Lock()
		c := e.containers[id]
		changed := e.changed
		var done bool
		code := 0
		switch {
		case c == nil:
			done = cond == "removed" || cond == "" || cond == "not-running" || cond == "next-exit"
		case cond == "removed":
			done = false
		case cond == "next-exit":
			if c.running() {
				seenRunning = true
			}
			done = seenRunning && !c.running()
			code = c.exitCode
		default: // not-running
			done = !c.running()
			code = c.exitCode
		}
		e.mu.Unlock()
		if done {
			_ = json.NewEncoder(w).Encode(container.WaitResponse{StatusCode: int64(code)})
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		case <-e.host.ctx.Done():
			return
		}
	}
}

func (e *engine) logs(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	c := e.lookup(r.PathValue("id"))
	var tty bool
	var line string
	if c != nil {
		tty = c.config.Tty
		line = fmt.Sprintf("fleetsim: %s (%s) %s\n", c.name, c.config.Image, c.status(0))
	}
	e.mu.Unlock()
	if c == nil {
		apiError(w, http.StatusNotFound, "No such container: %s", r.PathValue("id"))
		return
	}
	if r.URL.Query().Get("follow") == "1" || r.URL.Query().Get("follow") == "true" {
		unsupported(w, r, "following logs")
		return
	}
	if tty {
		w.Header().Set("Content-Type", "application/vnd.docker.raw-stream")
		_, _ = io.WriteString(w, line)
		return
	}
	// stdcopy framing: stream 1 (stdout), three zero bytes, the length.
	w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
	hdr := make([]byte, 8)
	hdr[0] = 1
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(line)))
	_, _ = w.Write(append(hdr, line...))
}

func (e *engine) archive(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	c := e.lookup(r.PathValue("id"))
	e.mu.Unlock()
	if c == nil {
		apiError(w, http.StatusNotFound, "No such container: %s", r.PathValue("id"))
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
	w.WriteHeader(http.StatusOK)
}

func (e *engine) prune(w http.ResponseWriter, r *http.Request) {
	flt, err := parseFilters(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if bad := flt.unsupported("label", "until"); bad != "" {
		unsupported(w, r, "prune filter "+bad)
		return
	}
	var until time.Time
	for v := range flt["until"] {
		d, err := time.ParseDuration(v)
		if err != nil {
			unsupported(w, r, "prune until "+v)
			return
		}
		until = time.Now().Add(-d)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rep := container.PruneReport{ContainersDeleted: []string{}}
	for id, c := range e.containers {
		if c.running() || !flt.matchLabels(c.config.Labels) || (!until.IsZero() && c.created.After(until)) {
			continue
		}
		e.detachAll(c)
		delete(e.containers, id)
		e.emit(c, events.ActionDestroy, nil)
		rep.ContainersDeleted = append(rep.ContainersDeleted, id)
	}
	writeJSON(w, http.StatusOK, rep)
}

func (e *engine) pull(w http.ResponseWriter, r *http.Request, delay time.Duration) {
	q := r.URL.Query()
	ref := q.Get("fromImage")
	if tag := q.Get("tag"); tag != "" {
		if strings.HasPrefix(tag, "sha256:") {
			ref += "@" + tag
		} else {
			ref += ":" + tag
		}
	}
	if q.Get("fromSrc") != "" || ref == "" {
		unsupported(w, r, "image import")
		return
	}
	ref = normalizeRef(ref)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	fl, _ := w.(http.Flusher)
	name, tag, _ := strings.Cut(ref, ":")
	_ = enc.Encode(map[string]string{"status": "Pulling from " + name, "id": tag})
	if fl != nil {
		fl.Flush()
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	e.mu.Lock()
	existed := e.images[ref] != nil
	if !existed {
		e.images[ref] = &img{id: imageID(ref), ref: ref, created: time.Now()}
	}
	e.mu.Unlock()
	_ = enc.Encode(map[string]string{"status": "Digest: " + imageID(ref)})
	if existed {
		_ = enc.Encode(map[string]string{"status": "Status: Image is up to date for " + ref})
	} else {
		_ = enc.Encode(map[string]string{"status": "Status: Downloaded newer image for " + ref})
	}
}

func (e *engine) inspectImage(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(r.PathValue("name"), "/json")
	if !ok {
		notImplemented(w, r, "engine")
		return
	}
	e.mu.Lock()
	i := e.lookupImage(name)
	e.mu.Unlock()
	if i == nil {
		apiError(w, http.StatusNotFound, "No such image: %s", name)
		return
	}
	writeJSON(w, http.StatusOK, image.InspectResponse{ID: i.id, RepoTags: []string{i.ref}, RepoDigests: []string{},
		Created: i.created.UTC().Format(time.RFC3339Nano), Architecture: "amd64", Os: "linux", Size: 10 << 20,
		RootFS: image.RootFS{Type: "layers", Layers: []string{i.id}}})
}

func (e *engine) listImages(w http.ResponseWriter, r *http.Request) {
	flt, err := parseFilters(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if bad := flt.unsupported("reference", "label"); bad != "" {
		unsupported(w, r, "image filter "+bad)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []image.Summary{}
	for _, i := range e.images {
		if len(flt["reference"]) > 0 && !flt["reference"][i.ref] {
			continue
		}
		out = append(out, image.Summary{ID: i.id, RepoTags: []string{i.ref}, RepoDigests: []string{}, Created: i.created.Unix(),
			Size: 10 << 20, Labels: map[string]string{}, Containers: -1, SharedSize: -1})
	}
	writeJSON(w, http.StatusOK, out)
}

func (e *engine) removeImage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.lookupImage(name)
	if i == nil {
		apiError(w, http.StatusNotFound, "No such image: %s", name)
		return
	}
	force := r.URL.Query().Get("force") == "1" || r.URL.Query().Get("force") == "true"
	for _, c := range e.containers {
		if normalizeRef(c.config.Image) == i.ref && !force {
			apiError(w, http.StatusConflict, "conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", name, c.id[:12], i.id[7:19])
			return
		}
	}
	delete(e.images, i.ref)
	writeJSON(w, http.StatusOK, []image.DeleteResponse{{Untagged: i.ref}, {Deleted: i.id}})
}

func (e *engine) listNetworks(w http.ResponseWriter, r *http.Request) {
	flt, err := parseFilters(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if bad := flt.unsupported("label", "name", "id", "driver"); bad != "" {
		unsupported(w, r, "network filter "+bad)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []network.Summary{}
	for _, n := range e.networks {
		if !flt.matchLabels(n.Labels) || !flt.matchRegexp("name", n.Name) || !flt.matchPrefix("id", n.ID) || !flt.matchExact("driver", n.Driver) {
			continue
		}
		out = append(out, network.Summary{Network: n.Network})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func (e *engine) createNetwork(w http.ResponseWriter, r *http.Request) {
	var req network.CreateRequest
	if err := decode(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "decoding request: %v", err)
		return
	}
	if req.Driver == "" {
		req.Driver = "bridge"
	}
	if req.Driver != "bridge" || req.IPAM != nil && len(req.IPAM.Config) > 0 {
		unsupported(w, r, "network driver "+req.Driver+" or explicit IPAM")
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lookupNetwork(req.Name) != nil {
		apiError(w, http.StatusConflict, "network with name %s already exists", req.Name)
		return
	}
	n := e.addNetwork(req.Name, req.Driver, req.Labels)
	n.Internal, n.Attachable = req.Internal, req.Attachable
	if req.Options != nil {
		n.Options = req.Options
	}
	writeJSON(w, http.StatusCreated, network.CreateResponse{ID: n.ID})
}

func (e *engine) inspectNetwork(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.lookupNetwork(r.PathValue("id"))
	if n == nil {
		apiError(w, http.StatusNotFound, "network %s not found", r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, n.Inspect)
}

func (e *engine) connect(w http.ResponseWriter, r *http.Request, connect bool) {
	var req struct {
		Container      string
		EndpointConfig *network.EndpointSettings
		Force          bool
	}
	if err := decode(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "decoding request: %v", err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.lookupNetwork(r.PathValue("id"))
	if n == nil {
		apiError(w, http.StatusNotFound, "network %s not found", r.PathValue("id"))
		return
	}
	c := e.lookup(req.Container)
	if c == nil {
		apiError(w, http.StatusNotFound, "No such container: %s", req.Container)
		return
	}
	_, on := c.networks[n.Name]
	switch {
	case connect && on:
		apiError(w, http.StatusForbidden, "endpoint with name %s already exists in network %s", c.name, n.Name)
		return
	case connect:
		e.attach(c, n, req.EndpointConfig)
	case !on:
		apiError(w, http.StatusForbidden, "container %s is not connected to network %s", c.id, n.Name)
		return
	default:
		delete(c.networks, n.Name)
		delete(n.Containers, c.id)
	}
	w.WriteHeader(http.StatusOK)
}

func (e *engine) removeNetwork(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.lookupNetwork(r.PathValue("id"))
	if n == nil {
		apiError(w, http.StatusNotFound, "network %s not found", r.PathValue("id"))
		return
	}
	if n.Name == "bridge" || n.Name == "host" || n.Name == "none" {
		apiError(w, http.StatusForbidden, "%s is a pre-defined network and cannot be removed", n.Name)
		return
	}
	if len(n.Containers) > 0 {
		apiError(w, http.StatusForbidden, "error while removing network: network %s id %s has active endpoints", n.Name, n.ID)
		return
	}
	delete(e.networks, n.ID)
	w.WriteHeader(http.StatusNoContent)
}

func newVolume(name string, labels map[string]string) *volume.Volume {
	if labels == nil {
		labels = map[string]string{}
	}
	return &volume.Volume{Name: name, Driver: "local", Scope: "local", Labels: labels, Options: map[string]string{},
		Mountpoint: "/var/lib/docker/volumes/" + name + "/_data", CreatedAt: time.Now().UTC().Format(time.RFC3339)}
}

func (e *engine) listVolumes(w http.ResponseWriter, r *http.Request) {
	flt, err := parseFilters(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if bad := flt.unsupported("label", "name"); bad != "" {
		unsupported(w, r, "volume filter "+bad)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := volume.ListResponse{Volumes: []volume.Volume{}, Warnings: []string{}}
	for _, v := range e.volumes {
		if flt.matchLabels(v.Labels) && flt.matchRegexp("name", v.Name) {
			out.Volumes = append(out.Volumes, *v)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (e *engine) createVolume(w http.ResponseWriter, r *http.Request) {
	var req volume.CreateRequest
	if err := decode(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "decoding request: %v", err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if req.Name == "" {
		req.Name = randomID()
	}
	v := e.volumes[req.Name]
	if v == nil {
		v = newVolume(req.Name, req.Labels)
		e.volumes[req.Name] = v
	}
	writeJSON(w, http.StatusCreated, v)
}

func (e *engine) inspectVolume(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.volumes[r.PathValue("name")]
	if v == nil {
		apiError(w, http.StatusNotFound, "get %s: no such volume", r.PathValue("name"))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (e *engine) removeVolume(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.volumes[name] == nil {
		apiError(w, http.StatusNotFound, "get %s: no such volume", name)
		return
	}
	for _, c := range e.containers {
		for _, m := range c.host.Mounts {
			if m.Type == "volume" && m.Source == name {
				apiError(w, http.StatusConflict, "remove %s: volume is in use - [%s]", name, c.id)
				return
			}
		}
	}
	delete(e.volumes, name)
	w.WriteHeader(http.StatusNoContent)
}

// filters are an Engine API request's filters: key → set of values.
type filters map[string]map[string]bool

func parseFilters(r *http.Request) (filters, error) {
	raw := r.URL.Query().Get("filters")
	out := filters{}
	if raw == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(raw), &out); err == nil {
		return out, nil
	}
	// The older form: key → list.
	var legacy map[string][]string
	if err := json.Unmarshal([]byte(raw), &legacy); err != nil {
		return nil, fmt.Errorf("invalid filter: %v", err)
	}
	for k, vs := range legacy {
		out[k] = map[string]bool{}
		for _, v := range vs {
			out[k][v] = true
		}
	}
	return out, nil
}

// unsupported returns a filter key other than the allowed ones, "" when there is none.
func (f filters) unsupported(allowed ...string) string {
	for k := range f {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return k
		}
	}
	return ""
}

// matchLabels: every "label" filter ("key" or "key=value") holds.
func (f filters) matchLabels(labels map[string]string) bool {
	for l := range f["label"] {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return true
}

// matchRegexp: some value of key matches s (the engine's name filters are regexps).
func (f filters) matchRegexp(key, s string) bool {
	if len(f[key]) == 0 {
		return true
	}
	for p := range f[key] {
		if re, err := regexp.Compile(p); err == nil && re.MatchString(s) {
			return true
		}
	}
	return false
}

func (f filters) matchPrefix(key, s string) bool {
	if len(f[key]) == 0 {
		return true
	}
	for p := range f[key] {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func (f filters) matchExact(key, s string) bool {
	return len(f[key]) == 0 || f[key][s]
}

func (f filters) matchEvent(m events.Message) bool {
	if !f.matchExact("type", string(m.Type)) || !f.matchExact("event", string(m.Action)) {
		return false
	}
	if c := f["container"]; len(c) > 0 && !c[m.Actor.ID] && !c[m.Actor.Attributes["name"]] {
		return false
	}
	return f.matchLabels(m.Actor.Attributes)
}
