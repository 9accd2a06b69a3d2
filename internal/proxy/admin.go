package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Admin talks to one proxy's Caddy admin API over a dialled stream (the admin socket reached
// through the host's SSH connection).
type Admin struct {
	http *http.Client
	// Requests, when set, counts the requests made.
	Requests *atomic.Int64
}

// NewAdmin returns an admin client whose every request opens a stream with dial.
func NewAdmin(dial func(ctx context.Context) (net.Conn, error)) *Admin {
	return &Admin{http: &http.Client{
		Transport: &http.Transport{
			DialContext:     func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
			MaxIdleConns:    2,
			IdleConnTimeout: 30 * time.Second,
		},
		Timeout: 30 * time.Second,
	}}
}

var (
	// ErrNotFound is an admin path or route id that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNoRouteModule is a proxy image without kamal-proxy's module.
	ErrNoRouteModule = errors.New("the proxy image lacks the route module (images/kamal-proxy); build it from there")
	// ErrLegacyProxy is a proxy of an older kamal-proxy, whose app routes are Caddy routes: the
	// proxy rollout replaces it, and its routes change once it has.
	ErrLegacyProxy = errors.New("the proxy runs an older kamal-proxy (routes in Caddy's config); its routes change once the proxy rollout has replaced it")
	// ErrPrecondition is a change refused because the route table's version is not the one
	// given (If-Match): it changed since it was read.
	ErrPrecondition = errors.New("the proxy's route table changed since it was read")
	// ErrNoCertificateTable is a proxy whose module predates the certificate and ACME challenge
	// tables: the proxy rollout replaces it.
	ErrNoCertificateTable = errors.New("the proxy's module has no certificate table (an older proxy image)")
)

// versionHeader carries the route table's version on every /kamal/routes answer; an answer
// without it comes from an older module.
const versionHeader = "Kamal-Routes-Version"

// Route is one entry of the proxy's route table (images/kamal-proxy Route): which requests
// (hosts, path prefixes) go to which upstream, and how.
type Route struct {
	// Hosts are exact names or wildcards "*.example.com" (one label); none: every host no
	// other route names.
	Hosts []string `json:"hosts,omitempty"`
	// Paths are path prefixes ("/api" matches /api and /api/…); none: every path.
	Paths []string `json:"paths,omitempty"`
	// Upstream is "container:port"; empty answers 502.
	Upstream        string `json:"upstream,omitempty"`
	MaxRequestBody  int64  `json:"maxRequestBody,omitempty"`
	StripPathPrefix bool   `json:"stripPathPrefix,omitempty"`
	ForwardHeaders  bool   `json:"forwardHeaders,omitempty"`
	RequestBuffers  int64  `json:"requestBuffers,omitempty"`
	ResponseBuffers int64  `json:"responseBuffers,omitempty"`
	// ResponseTimeout is a Go duration ("30s"); empty: none.
	ResponseTimeout string `json:"responseTimeout,omitempty"`
	// RedirectHTTPS answers plain-HTTP requests 308 to https (ACME challenges excepted). A proxy
	// module older than the field refuses a route that sets it (400: unknown field).
	RedirectHTTPS bool `json:"redirectHTTPS,omitempty"`
	// Owner is informational ("namespace/deployment").
	Owner string `json:"owner,omitempty"`
}

// Equal says whether two routes are the same (nil and empty lists alike).
func (r Route) Equal(o Route) bool {
	return slices.Equal(r.Hosts, o.Hosts) && slices.Equal(r.Paths, o.Paths) && r.Upstream == o.Upstream &&
		r.MaxRequestBody == o.MaxRequestBody && r.StripPathPrefix == o.StripPathPrefix && r.ForwardHeaders == o.ForwardHeaders &&
		r.RequestBuffers == o.RequestBuffers && r.ResponseBuffers == o.ResponseBuffers && r.ResponseTimeout == o.ResponseTimeout &&
		r.RedirectHTTPS == o.RedirectHTTPS && r.Owner == o.Owner
}

// RouteTable is the proxy's route table at one version.
type RouteTable struct {
	Version int64            `json:"version"`
	Routes  map[string]Route `json:"routes"`
}

// RouteConflict is a route of the proxy that claims what another route asked for.
type RouteConflict struct {
	ID    string `json:"id"`
	Owner string `json:"owner,omitempty"`
	// Hosts and Paths are what both claim: host names ("" for no host) and prefixes ("/" for
	// every path).
	Hosts []string `json:"hosts"`
	Paths []string `json:"paths"`
}

// ConflictError is a route the proxy refused because other routes claim the same host and
// path prefix.
type ConflictError struct {
	ID        string          `json:"id"`
	Conflicts []RouteConflict `json:"conflicts"`
}

func (e *ConflictError) Error() string {
	var parts []string
	for _, c := range e.Conflicts {
		s := "route " + c.ID
		if c.Owner != "" {
			s += " (" + c.Owner + ")"
		}
		hosts := strings.Join(c.Hosts, ",")
		if hosts == "" {
			hosts = "any host"
		}
		parts = append(parts, s+" on "+hosts+" "+strings.Join(c.Paths, ","))
	}
	return fmt.Sprintf("route %s conflicts with %s", e.ID, strings.Join(parts, "; "))
}

// answer is an admin API response, read whole.
type answer struct {
	status int
	header http.Header
	data   []byte
}

func (a *Admin) send(ctx context.Context, method, path string, ifMatch int64, body any) (answer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://kamal-proxy"+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if ifMatch != 0 {
		req.Header.Set("If-Match", strconv.FormatInt(ifMatch, 10))
	}
	if a.Requests != nil {
		a.Requests.Add(1)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("proxy admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return answer{}, fmt.Errorf("proxy admin %s %s: %w", method, path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, data: data}, nil
}

func (a *Admin) do(ctx context.Context, method, path string, body any, out any) error {
	ans, err := a.send(ctx, method, path, 0, body)
	if err != nil {
		return err
	}
	switch {
	case ans.status == http.StatusNotFound:
		return fmt.Errorf("proxy admin %s %s: %w", method, path, ErrNotFound)
	case ans.status >= 300:
		// Caddy reports a missing id as a 404 or as a 500 "unknown object ID".
		if bytes.Contains(ans.data, []byte("unknown object ID")) {
			return fmt.Errorf("proxy admin %s %s: %w", method, path, ErrNotFound)
		}
		return fmt.Errorf("proxy admin %s %s: %d %s: %s", method, path, ans.status, http.StatusText(ans.status), bytes.TrimSpace(ans.data))
	}
	if out != nil && len(ans.data) > 0 {
		return json.Unmarshal(ans.data, out)
	}
	return nil
}

// table sends one request of the route table API and returns the table's version.
func (a *Admin) table(ctx context.Context, method, path string, ifMatch int64, body, out any) (int64, error) {
	ans, err := a.send(ctx, method, path, ifMatch, body)
	if err != nil {
		return 0, err
	}
	fail := func(err error) error { return fmt.Errorf("proxy admin %s %s: %w", method, path, err) }
	hv := ans.header.Get(versionHeader)
	if hv == "" {
		return 0, fail(ErrLegacyProxy)
	}
	version, _ := strconv.ParseInt(hv, 10, 64)
	switch ans.status {
	case http.StatusOK:
		if out != nil {
			if err := json.Unmarshal(ans.data, out); err != nil {
				return version, fail(err)
			}
		}
		return version, nil
	case http.StatusNotFound:
		return version, fail(ErrNotFound)
	case http.StatusConflict:
		ce := &ConflictError{}
		if err := json.Unmarshal(ans.data, ce); err != nil {
			return version, fail(fmt.Errorf("409 %s", bytes.TrimSpace(ans.data)))
		}
		return version, fail(ce)
	case http.StatusPreconditionFailed:
		return version, fail(fmt.Errorf("%w (table version %d, expected %d)", ErrPrecondition, version, ifMatch))
	}
	return version, fail(fmt.Errorf("%d %s: %s", ans.status, http.StatusText(ans.status), bytes.TrimSpace(ans.data)))
}

func routePath(id string) string { return "/kamal/routes/" + id }

// Ready checks that the admin API answers, that the proxy has the route module and runs the
// fixed config (FixedConfig: its server's one handler is kamal_router). A proxy of an older
// kamal-proxy answers ErrLegacyProxy, one without the module ErrNoRouteModule.
func (a *Admin) Ready(ctx context.Context) error {
	ans, err := a.send(ctx, http.MethodGet, "/kamal/routes", 0, nil)
	if err != nil {
		return err
	}
	if ans.header.Get(versionHeader) == "" {
		if ans.status == http.StatusNotFound {
			return ErrNoRouteModule
		}
		return ErrLegacyProxy
	}
	if ans.status != http.StatusOK {
		return fmt.Errorf("proxy admin GET /kamal/routes: %d: %s", ans.status, bytes.TrimSpace(ans.data))
	}
	var routes []struct {
		Handle []struct {
			Handler string `json:"handler"`
		} `json:"handle"`
	}
	if err := a.do(ctx, http.MethodGet, "/config/apps/http/servers/"+ServerName+"/routes", nil, &routes); err != nil {
		return err
	}
	if len(routes) != 1 || len(routes[0].Handle) != 1 || routes[0].Handle[0].Handler != "kamal_router" {
		return fmt.Errorf("%w: its Caddy config is not the fixed one (no single kamal_router route)", ErrLegacyProxy)
	}
	return nil
}

// Routes returns the route table.
func (a *Admin) Routes(ctx context.Context) (RouteTable, error) {
	var t RouteTable
	_, err := a.table(ctx, http.MethodGet, "/kamal/routes", 0, nil, &t)
	if t.Routes == nil {
		t.Routes = map[string]Route{}
	}
	return t, err
}

// Route returns route id; ErrNotFound when there is none.
func (a *Admin) Route(ctx context.Context, id string) (Route, error) {
	var r Route
	_, err := a.table(ctx, http.MethodGet, routePath(id), 0, nil, &r)
	return r, err
}

// PutRoute writes route id and removes the routes of replaces in the same change (so a route
// takes over from an older id at once). With ifMatch other than 0 the proxy refuses the change
// when its table is at another version (ErrPrecondition). A route that shares a host and path
// prefix with another is refused with a *ConflictError naming the others. An identical route
// is no change. It returns the table's version after the change.
func (a *Admin) PutRoute(ctx context.Context, id string, r Route, ifMatch int64, replaces []string) (int64, error) {
	body := struct {
		Route
		Replaces []string `json:"replaces,omitempty"`
	}{r, replaces}
	return a.table(ctx, http.MethodPut, routePath(id), ifMatch, body, nil)
}

// SetUpstream points route id at upstream ("container:port"): the next request goes there, the
// ones in flight finish where they are. ErrNotFound when the route does not exist.
func (a *Admin) SetUpstream(ctx context.Context, id, upstream string) (int64, error) {
	return a.table(ctx, http.MethodPut, routePath(id)+"/upstream", 0, map[string]string{"upstream": upstream}, nil)
}

// DeleteRoute removes route id; a missing one is not an error. On an older proxy it removes
// the Caddy route of that id as well (a config change there, as it always was).
func (a *Admin) DeleteRoute(ctx context.Context, id string, ifMatch int64) (int64, error) {
	v, err := a.table(ctx, http.MethodDelete, routePath(id), ifMatch, nil, nil)
	if errors.Is(err, ErrLegacyProxy) {
		// The older module removed its table entry; the route itself is Caddy's.
		if err := a.do(ctx, http.MethodDelete, "/id/"+id, nil, nil); err != nil && !errors.Is(err, ErrNotFound) {
			return 0, err
		}
		return 0, nil
	}
	return v, err
}

// InFlight returns the requests in flight per upstream address.
func (a *Admin) InFlight(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	if err := a.do(ctx, http.MethodGet, "/kamal/inflight", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Certificate describes a certificate of the proxy's table (never its key).
type Certificate struct {
	// Names are the leaf's DNS names, lowercase, sorted.
	Names []string `json:"names"`
	// Serial is the leaf's serial number in lowercase hex.
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// SHA256 is the leaf's fingerprint, lowercase hex.
	SHA256 string `json:"sha256"`
	// Shadowed are names of this certificate that another id's certificate (valid longer) serves.
	Shadowed []string `json:"shadowed,omitempty"`
}

func certificatePath(id string) string { return "/kamal/certificates/" + id }

// certs sends a request of the certificate or challenge API; the module answers 404 only when
// it has no such API (a GET of a missing certificate aside, which this client does not make).
func (a *Admin) certs(ctx context.Context, method, path string, body, out any) error {
	err := a.do(ctx, method, path, body, out)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("proxy admin %s %s: %w", method, path, ErrNoCertificateTable)
	}
	return err
}

// PutCertificate sets certificate id (the owner's, "namespace/deployment"): a PEM chain, leaf
// first, and the leaf's PEM key. The proxy serves it for the leaf's names from the next
// handshake on, without a config change, and keeps it in its data volume. It refuses a key that
// is not the leaf's, an expired leaf or a leaf without DNS names; its messages never hold the
// key, and neither do this method's.
func (a *Admin) PutCertificate(ctx context.Context, id string, chainPEM, keyPEM []byte) (Certificate, error) {
	var c Certificate
	body := struct {
		Chain string `json:"chain"`
		Key   string `json:"key"`
	}{string(chainPEM), string(keyPEM)}
	err := a.certs(ctx, http.MethodPut, certificatePath(id), body, &c)
	return c, err
}

// DeleteCertificate removes certificate id; a missing one is not an error.
func (a *Admin) DeleteCertificate(ctx context.Context, id string) error {
	return a.certs(ctx, http.MethodDelete, certificatePath(id), nil, nil)
}

// Certificates describes the proxy's certificates by id.
func (a *Admin) Certificates(ctx context.Context) (map[string]Certificate, error) {
	var out struct {
		Certificates map[string]Certificate `json:"certificates"`
	}
	if err := a.certs(ctx, http.MethodGet, "/kamal/certificates", nil, &out); err != nil {
		return nil, err
	}
	if out.Certificates == nil {
		out.Certificates = map[string]Certificate{}
	}
	return out.Certificates, nil
}

// PutChallenge has the proxy answer the ACME HTTP-01 challenge token with keyAuth
// ("<token>.<thumbprint>") for requests to hosts, whatever route owns them. The proxy keeps the
// answer in memory for at most an hour.
func (a *Admin) PutChallenge(ctx context.Context, token, keyAuth string, hosts []string) error {
	body := struct {
		KeyAuthorization string   `json:"keyAuthorization"`
		Hosts            []string `json:"hosts"`
	}{keyAuth, hosts}
	return a.certs(ctx, http.MethodPut, "/kamal/challenges/"+token, body, nil)
}

// DeleteChallenge removes the answer to token; a missing one is not an error.
func (a *Admin) DeleteChallenge(ctx context.Context, token string) error {
	return a.certs(ctx, http.MethodDelete, "/kamal/challenges/"+token, nil, nil)
}
