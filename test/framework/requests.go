package framework

import (
	"net/http"
	"strings"
	"sync"
)

// Request is one request the controllers made to the API server about Secrets or ConfigMaps.
type Request struct {
	Method string
	Path   string // /api/v1/namespaces/ns/secrets/name, /api/v1/secrets …
	Query  string // watch=true&…
	Accept string // "application/json;as=PartialObjectMetadata;…" for metadata only
}

// Metadata says whether the request asked for metadata only.
func (r Request) Metadata() bool { return strings.Contains(r.Accept, "as=PartialObjectMetadata") }

// requestLog records the controllers' requests about Secrets and ConfigMaps (at most
// maxLogged), so a test can say which ones the controllers read, and how.
type requestLog struct {
	mu   sync.Mutex
	reqs []Request
}

const maxLogged = 100000

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if p := req.URL.Path; strings.Contains(p, "/secrets") || strings.Contains(p, "/configmaps") {
			l.mu.Lock()
			if len(l.reqs) < maxLogged {
				l.reqs = append(l.reqs, Request{Method: req.Method, Path: p, Query: req.URL.RawQuery, Accept: req.Header.Get("Accept")})
			}
			l.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

func (l *requestLog) list() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Request(nil), l.reqs...)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
