package metrics

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// EngineClientOptions are the Engine API client options that count every request by operation
// and time it up to its response headers. A request that gets no response (the stream to the
// engine could not be opened) is not counted here: the SSH metrics show that.
func EngineClientOptions() []client.Opt {
	return []client.Opt{
		client.WithHTTPRequestHook(func(r *http.Request) error {
			// The client hands hooks a copy of the request and sends that copy on, context
			// included: the start time travels with it to the response.
			*r = *r.WithContext(context.WithValue(r.Context(), engineStartKey{}, time.Now()))
			return nil
		}),
		client.WithHTTPResponseHook(func(resp *http.Response) {
			if resp.Request == nil {
				return
			}
			op := Operation(resp.Request.Method, resp.Request.URL.Path)
			engineRequests.WithLabelValues(op, statusClass(resp.StatusCode)).Inc()
			if start, ok := resp.Request.Context().Value(engineStartKey{}).(time.Time); ok {
				engineDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
			}
		}),
	}
}

type engineStartKey struct{}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}

var apiVersion = regexp.MustCompile(`^/v[0-9]+(\.[0-9]+)?/`)

// Engine API resources whose second path segment is an object's id or name, and the names
// that stand there for the collection instead.
var (
	objectResources = []string{"containers", "networks", "volumes", "exec", "plugins", "services", "nodes", "tasks", "secrets", "configs"}
	collectionOps   = []string{"json", "create", "prune", "load", "get", "search", "pull", "privileges", "init", "join", "leave", "unlock", "unlockkey", "update"}
	// objectActions are the last segments of an object's operations (/containers/{id}/start).
	objectActions = []string{"json", "start", "stop", "restart", "kill", "wait", "logs", "attach", "exec", "archive", "rename",
		"pause", "unpause", "top", "changes", "export", "stats", "update", "resize", "connect", "disconnect", "push", "tag",
		"history", "get", "enable", "disable", "upgrade", "set", "remove"}
	// topLevel are resources without object ids (/info, /build/prune, /system/df).
	topLevel = []string{"_ping", "events", "info", "version", "build", "auth", "commit", "session", "system", "swarm"}
)

// Operation is the bounded name of an Engine API request: its method and its path with the API
// version dropped and ids and names replaced by {id} or {name}, e.g. "POST /containers/{id}/start".
// Image and distribution names may hold slashes; what precedes a known action is the name.
func Operation(method, path string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch:
	default:
		method = "OTHER"
	}
	return method + " " + pathTemplate(path)
}

func pathTemplate(path string) string {
	path = apiVersion.ReplaceAllString(path, "/")
	seg := strings.Split(strings.Trim(path, "/"), "/")
	res := seg[0]
	switch {
	case res == "":
		return "/"
	case slices.Contains(topLevel, res):
		if len(seg) == 2 && slices.Contains(collectionOps, seg[1]) || len(seg) == 2 && slices.Contains([]string{"df", "cancel", "dial-stdio", "events"}, seg[1]) {
			return "/" + res + "/" + seg[1]
		}
		return "/" + res
	case res == "images" || res == "distribution":
		if len(seg) == 1 {
			return "/" + res
		}
		if len(seg) == 2 && slices.Contains(collectionOps, seg[1]) {
			return "/" + res + "/" + seg[1]
		}
		if last := seg[len(seg)-1]; len(seg) >= 3 && slices.Contains(objectActions, last) {
			return "/" + res + "/{name}/" + last
		}
		return "/" + res + "/{name}"
	case slices.Contains(objectResources, res):
		switch {
		case len(seg) == 1:
			return "/" + res
		case len(seg) == 2 && slices.Contains(collectionOps, seg[1]):
			return "/" + res + "/" + seg[1]
		case len(seg) == 2:
			return "/" + res + "/{id}"
		case len(seg) == 3 && slices.Contains(objectActions, seg[2]):
			return "/" + res + "/{id}/" + seg[2]
		}
		return "/" + res + "/{id}/other"
	}
	return "/other"
}
