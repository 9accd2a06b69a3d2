package kamalproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	// The modules of the proxy binary (cmd/kamal-proxy).
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// testProxy is Caddy in this process running the fixed config the controller writes
// (testdata/fixed-config.json, kept equal to internal/proxy.FixedConfig by a test there), with
// its listeners on free local ports and its admin API on a socket of the test.
type testProxy struct {
	http, https string // host:port
	admin       *http.Client
	dataDir     string // Caddy's data directory (<XDG_DATA_HOME>/caddy)
	configDir   string // Caddy's config directory (<XDG_CONFIG_HOME>/caddy)
	config      []byte // what Caddy runs
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProxy starts the proxy; prepare, when set, first gets Caddy's data and config
// directories, as a proxy container finds its volumes.
func startProxy(t *testing.T, prepare func(dataDir, configDir string)) *testProxy {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	p := &testProxy{http: freeAddr(t), https: freeAddr(t), dataDir: caddy.AppDataDir(), configDir: caddy.AppConfigDir()}
	for _, d := range []string{p.dataDir, p.configDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if prepare != nil {
		prepare(p.dataDir, p.configDir)
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "fixed-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "admin.sock")
	raw = bytes.Replace(raw, []byte(`"unix//run/kamal-proxy/admin.sock"`), []byte(`"unix/`+sock+`"`), 1)
	raw = bytes.Replace(raw, []byte(`[":80"]`), []byte(`["`+p.http+`"]`), 1)
	raw = bytes.Replace(raw, []byte(`[":443"]`), []byte(`["`+p.https+`"]`), 1)
	// Caddy's default storage is fixed when the process starts; the proxy's is its data volume.
	raw = bytes.Replace(raw, []byte(`{"admin":`), []byte(`{"storage":{"module":"file_system","root":"`+p.dataDir+`"},"admin":`), 1)
	p.config = raw
	if err := caddy.Load(raw, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	p.admin = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}, Timeout: 10 * time.Second}
	return p
}

// restart stops Caddy and starts it again on the same directories, with the module's state read
// from them anew, as a restarted proxy container.
func (p *testProxy) restart(t *testing.T) {
	t.Helper()
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	instancesMu.Lock()
	delete(instances, p.dataDir)
	instancesMu.Unlock()
	if err := caddy.Load(p.config, true); err != nil {
		t.Fatal(err)
	}
}

// adminAnswer is an admin API answer.
type adminAnswer struct {
	code    int
	body    string
	version string // the Kamal-Routes-Version header
}

func (p *testProxy) do(t testing.TB, method, path string, body any, header ...string) adminAnswer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.(string)
		if !ok {
			bb, _ := json.Marshal(body)
			b = string(bb)
		}
		rd = strings.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://localhost"+path, rd)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := p.admin.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return adminAnswer{resp.StatusCode, string(out), resp.Header.Get(VersionHeader)}
}

// put writes a route and fails the test unless the proxy takes it.
func (p *testProxy) put(t testing.TB, id string, r Route) {
	t.Helper()
	if a := p.do(t, http.MethodPut, "/kamal/routes/"+id, r); a.code != http.StatusOK {
		t.Fatalf("PUT %s: %d %s", id, a.code, a.body)
	}
}

// backend is an app: it answers "<name> <path>", and on /slow waits for release, on /sleep for
// a second; POST reads the body.
func backend(t *testing.T, name string, release <-chan struct{}) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			<-release
		case "/sleep":
			time.Sleep(time.Second)
		case "/headers":
			fmt.Fprintf(w, "%s %s", name, r.Header.Get("X-Forwarded-For"))
			return
		}
		if r.Method == http.MethodPost {
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// get sends GET path with a Host header; err covers transport errors and non-200 answers.
func get(c *http.Client, addr, host, path string) (string, error) {
	code, body, err := send(c, http.MethodGet, addr, host, path, nil, nil)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("status %d: %s", code, body)
	}
	return body, err
}

func send(c *http.Client, method, addr, host, path string, body io.Reader, header http.Header) (int, string, error) {
	req, err := http.NewRequest(method, "http://"+addr+path, body)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
