package hosts_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kamal-operator/kamal-operator/test/hosts"
	"github.com/kamal-operator/kamal-operator/test/images"
)

// pgHTTP waits longer than the app's own database timeout (5s).
var pgHTTP = &http.Client{Timeout: 15 * time.Second}

func pgPost(u string) (int, string, error) {
	resp, err := pgHTTP.Post(u, "text/plain", nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// TestPostgresImage runs the postgres:15 fixture image as an accessory would: on the network
// kamal, its data in a host folder, with sampleapp using it through DATABASE_URL; a row written
// before the database container is replaced is read from the new one.
func TestPostgresImage(t *testing.T) {
	needE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	env := start(t, ctx, hosts.Options{N: 1})
	h := env.Hosts[0]
	pgImage := env.Image(images.PostgresRepo + ":" + images.PostgresTag)

	sh := func(script string) (string, error) {
		out, err := h.Exec(ctx, "sh", "-c", script)
		return strings.TrimSpace(string(out)), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := h.Exec(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	logs := func(name string) string {
		out, _ := sh("docker logs " + name + " 2>&1")
		return out
	}

	const (
		password = "Pg-s3cret-9xq"
		dataDir  = "/root/pg-data" // a folder of the host (its /root is the host's own)
	)
	must("mkdir", "-p", dataDir)
	if got := must("stat", "-c", "%u %a", dataDir); got != "0 755" {
		t.Fatalf("fresh data folder: %q", got)
	}
	must("docker", "network", "create", "kamal")

	runDB := func() {
		t.Helper()
		t0 := time.Now()
		must("docker", "run", "-d", "--name", "db", "--network", "kamal",
			"-e", "POSTGRES_USER=app", "-e", "POSTGRES_PASSWORD="+password, "-e", "POSTGRES_DB=appdb",
			"-v", dataDir+":/var/lib/postgresql/data", pgImage)
		eventually(t, 2*time.Minute, "postgres accepts connections", func() error {
			if st := must("docker", "inspect", "-f", "{{.State.Status}}", "db"); st != "running" {
				t.Fatalf("postgres container is %s:\n%s", st, logs("db"))
			}
			// the final server (the initialisation's one listens on no TCP address)
			_, err := h.Exec(ctx, "docker", "exec", "db", "pg_isready", "-q", "-h", "127.0.0.1", "-U", "app", "-d", "appdb")
			return err
		})
		t.Logf("postgres ready %s after docker run", time.Since(t0).Round(time.Millisecond))
	}
	runDB()

	// The cluster is in the host folder, owned by postgres (uid 999), mode 0700.
	if got := must("stat", "-c", "%u:%g %a", dataDir); got != fmt.Sprintf("%d:%d 700", images.PostgresUID, images.PostgresUID) {
		t.Fatalf("data folder after init: %q", got)
	}
	if got := must("cat", dataDir+"/PG_VERSION"); got != "15" {
		t.Fatalf("PG_VERSION %q", got)
	}
	if hba := must("cat", dataDir+"/pg_hba.conf"); !strings.Contains(hba, "\nhost all all all scram-sha-256") {
		t.Fatalf("pg_hba.conf:\n%s", hba)
	}
	l := logs("db")
	if !strings.Contains(l, "PostgreSQL init process complete") || !strings.Contains(l, "created database appdb") {
		t.Fatalf("first start did not initialise:\n%s", l)
	}

	appURL := "postgres://app:" + url.QueryEscape(password) + "@db:5432/appdb"
	must("docker", "run", "-d", "--name", "app", "--network", "kamal", "-p", "8080:80",
		"-e", "DATABASE_URL="+appURL, env.Image("sampleapp:v1"))
	base := "http://" + h.Address() + ":8080"
	eventually(t, 30*time.Second, "sampleapp /db", wantBody(base+"/db", "ok"))

	value := "row-" + time.Now().Format("150405.000")
	code, body, err := pgPost(base + "/db/rows?value=" + url.QueryEscape(value))
	if err != nil || code != 200 || body != "1" {
		t.Fatalf("POST /db/rows: %d %q %v", code, body, err)
	}
	if code, body, err := getWith(pgHTTP, base+"/db/rows"); err != nil || code != 200 || body != value {
		t.Fatalf("GET /db/rows: %d %q %v", code, body, err)
	}

	// A wrong password is refused (scram-sha-256 over TCP), and the app does not print it.
	const wrong = "not-the-Password-7"
	must("docker", "run", "-d", "--name", "app-wrong", "--network", "kamal", "-p", "8081:80",
		"-e", "DATABASE_URL=postgres://app:"+wrong+"@db:5432/appdb", env.Image("sampleapp:v1"))
	eventually(t, 30*time.Second, "sampleapp with a wrong password", func() error {
		code, body, err := get("http://" + h.Address() + ":8081/db")
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "password authentication failed") {
			return fmt.Errorf("GET /db: %d %q", code, body)
		}
		if strings.Contains(body, wrong) {
			t.Fatalf("the app answered the password: %q", body)
		}
		return nil
	})

	// docker stop (the image's SIGINT: fast shutdown) ends at once although the app holds
	// connections, and exits 0.
	t0 := time.Now()
	must("docker", "stop", "db")
	stopped := time.Since(t0)
	if st := must("docker", "inspect", "-f", "{{.State.ExitCode}}", "db"); st != "0" {
		t.Fatalf("postgres exit code after docker stop: %s\n%s", st, logs("db"))
	}
	if stopped > 8*time.Second || !strings.Contains(logs("db"), "fast shutdown request") {
		t.Fatalf("docker stop took %s:\n%s", stopped, logs("db"))
	}
	t.Logf("docker stop of postgres took %s", stopped.Round(time.Millisecond))
	if l := logs("db"); strings.Contains(l, password) {
		t.Fatalf("the postgres logs hold the password:\n%s", l)
	}
	if code, _, err := getWith(pgHTTP, base+"/db"); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("GET /db with the database stopped: %d %v", code, err)
	}

	// A new container on the same folder keeps the data.
	must("docker", "rm", "db")
	runDB()
	if l := logs("db"); !strings.Contains(l, "skipping initialization") || strings.Contains(l, "init process complete") {
		t.Fatalf("restart initialised again:\n%s", l)
	}
	eventually(t, 30*time.Second, "the row after the restart", wantBody(base+"/db/rows", value))
	if code, body, err := pgPost(base + "/db/rows?value=second"); err != nil || code != 200 || body != "2" {
		t.Fatalf("POST /db/rows after the restart: %d %q %v", code, body, err)
	}
	if code, body, err := getWith(pgHTTP, base+"/db/rows"); err != nil || code != 200 || body != value+"\nsecond" {
		t.Fatalf("GET /db/rows after the restart: %d %q %v", code, body, err)
	}

	// Without POSTGRES_PASSWORD an empty folder is not initialised, with a clear message.
	must("mkdir", "-p", "/root/pg-empty")
	out, err := h.Exec(ctx, "docker", "run", "--rm", "-v", "/root/pg-empty:/var/lib/postgresql/data", pgImage)
	if err == nil || !strings.Contains(err.Error(), "POSTGRES_PASSWORD") {
		t.Fatalf("postgres without a password: %v\n%s", err, out)
	}
	if got := must("sh", "-c", "ls -A /root/pg-empty | wc -l"); got != "0" {
		t.Fatalf("the folder was initialised without a password: %s entries", got)
	}
}
