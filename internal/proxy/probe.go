package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrNoProbe is a proxy whose module predates /kamal/probe.
var ErrNoProbe = errors.New("the proxy has no probe endpoint (an older kamal-proxy image)")

// Probe asks the proxy to GET path on upstream ("name:port") itself, resolving the name the
// way its routes do. It returns the status code the upstream answered, or why none came.
func (a *Admin) Probe(ctx context.Context, upstream, path string, timeout time.Duration) (int, error) {
	var out struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	}
	body := map[string]string{"upstream": upstream, "path": path, "timeout": timeout.String()}
	if err := a.do(ctx, http.MethodPost, "/kamal/probe", body, &out); err != nil {
		if errors.Is(err, ErrNotFound) {
			return 0, ErrNoProbe
		}
		return 0, err
	}
	if out.Error != "" {
		return 0, fmt.Errorf("%s", out.Error)
	}
	return out.Status, nil
}
