package kamalproxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// probeBody asks the proxy to GET path on upstream from where it proxies from, so the
// controller can check that the proxy reaches a new container by the name a route will use
// (Docker's DNS on the proxy's network) before it switches the route there.
type probeBody struct {
	Upstream string `json:"upstream"`
	Path     string `json:"path"`
	// Timeout of the request, e.g. "5s" (default 5s, at most 30s).
	Timeout string `json:"timeout,omitempty"`
}

// ProbeResult is the answer of POST /kamal/probe: the upstream's status code, or why there was
// none.
type ProbeResult struct {
	Status int    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	// A redirect is an answer to report, not to follow.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func serveProbe(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return apiError(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	}
	var b probeBody
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&b); err != nil {
		return apiError(http.StatusBadRequest, "decoding body: %v", err)
	}
	if err := ValidUpstream(b.Upstream); err != nil {
		return apiError(http.StatusBadRequest, "%v", err)
	}
	if !strings.HasPrefix(b.Path, "/") {
		return apiError(http.StatusBadRequest, "path %q must start with /", b.Path)
	}
	timeout := 5 * time.Second
	if b.Timeout != "" {
		d, err := time.ParseDuration(b.Timeout)
		if err != nil || d <= 0 {
			return apiError(http.StatusBadRequest, "timeout %q is not a positive duration", b.Timeout)
		}
		timeout = min(d, 30*time.Second)
	}
	return writeJSON(w, Probe(r.Context(), b.Upstream, b.Path, timeout))
}

// Probe sends GET path to upstream and reports the status code or the error.
func Probe(ctx context.Context, upstream, path string, timeout time.Duration) ProbeResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+upstream+path, nil)
	if err != nil {
		return ProbeResult{Error: err.Error()}
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return ProbeResult{Error: err.Error()}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return ProbeResult{Status: resp.StatusCode}
}
