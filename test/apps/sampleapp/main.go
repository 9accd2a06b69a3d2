// Command sampleapp is the web app that kamal-operator's end-to-end tests deploy. It uses the
// standard library and, for its database endpoints, the pure-Go PostgreSQL driver pgx; it is built
// as a static binary (CGO_ENABLED=0) for a FROM-scratch image.
//
// Modes (first argument):
//
//	(none) or "serve"  HTTP server on $PORT (default 80)
//	"healthcheck"      GET http://127.0.0.1:$PORT$HEALTHCHECK_PATH (default /up); exit 0 on 200,
//	                   1 otherwise, for a Docker HEALTHCHECK in an image without curl
//	"worker"           no HTTP: logs a heartbeat every $WORKER_INTERVAL (default 5s) until SIGTERM
//	"version"          prints the version and exits
//	"get URL"          GETs URL and prints the body; exit 0 on 2xx, 1 otherwise with the error
//	                   (or status) on stderr. Run in a container (docker exec) it shows what that
//	                   container reaches by name, for the network isolation tests
//	"release"          a release command (spec.rollout.release): inserts the row
//	                   "release <version>" into kamal_rows at $DATABASE_URL, prints a few lines
//	                   (and the value of the env var $RELEASE_ECHO names, when set, for the
//	                   redaction tests), sleeps $RELEASE_SLEEP when set, and exits 0; it exits 1
//	                   with a message in broken mode (-X main.broken=true or BROKEN=1), when
//	                   $RELEASE_FAIL is set, or on a database error
//
// Endpoints:
//
//	GET /up          200 "ok" when healthy; 503 in broken mode (BROKEN=1 or -X main.broken=true)
//	GET /version     the version: $APP_VERSION, else the -X main.version build value
//	GET /slow?ms=N   sleeps N ms (at most 10 minutes) then answers "slept N ms"
//	GET /env?name=X  the value of env var X (404 if unset)
//	GET /inflight    the number of other requests in flight (to see a slow request has arrived)
//	GET /log?line=X  prints X as a line of its own on stdout (on stderr with &stream=stderr), for
//	                 the logs tests; the log package's lines (start, stop) go to stderr
//	GET /            "sampleapp <version> on <hostname>"
//
// Database endpoints, on PostgreSQL at $DATABASE_URL (postgres://user:password@host:5432/db); the
// table kamal_rows(id serial, value text, created timestamptz default now()) is created when
// missing. Without DATABASE_URL they answer 503 "DATABASE_URL is not set"; a database error is a
// 503 with the error's text (never the password).
//
//	GET  /db             200 "ok" when a connection answers SELECT 1, else 503 and the error
//	POST /db/rows?value=X  inserts a row with value X and answers its id (400 without value)
//	GET  /db/rows        the values of all rows, one per line, in id order
//
// On SIGTERM or SIGINT it stops accepting connections and waits for in-flight requests to finish
// (at most $SHUTDOWN_TIMEOUT, default 30s) before exiting 0.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Set with -ldflags "-X main.version=v1 -X main.broken=true".
var (
	version = "dev"
	broken  = "false"
)

const maxSlow = 10 * time.Minute

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("sampleapp ")
	mode := "serve"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "serve":
		os.Exit(serve())
	case "healthcheck":
		os.Exit(healthcheck())
	case "worker":
		os.Exit(worker())
	case "version":
		fmt.Println(appVersion())
	case "release":
		os.Exit(release(os.Stdout))
	case "get":
		if len(os.Args) != 3 {
			fmt.Fprintf(os.Stderr, "usage: sampleapp get URL\n")
			os.Exit(2)
		}
		os.Exit(get(os.Stdout, os.Stderr, os.Args[2]))
	default:
		fmt.Fprintf(os.Stderr, "usage: sampleapp [serve|healthcheck|worker|version|release|get URL]\n")
		os.Exit(2)
	}
}

// get GETs url (5 seconds at most) and writes the body to out: 0 on a 2xx answer, 1 with the
// error or the status on errOut otherwise.
func get(out, errOut io.Writer, url string) int {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(errOut, err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(out, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintln(errOut, resp.Status)
		return 1
	}
	return 0
}

func appVersion() string {
	if v := os.Getenv("APP_VERSION"); v != "" {
		return v
	}
	return version
}

func isBroken() bool {
	if v, ok := os.LookupEnv("BROKEN"); ok {
		return v == "1" || strings.EqualFold(v, "true")
	}
	return broken == "true"
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "80"
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		log.Printf("ignoring bad %s=%q", name, v)
	}
	return def
}

func handler(inFlight *atomic.Int64) http.Handler {
	mux := http.NewServeMux()
	host, _ := os.Hostname()
	new(database).register(mux)
	mux.HandleFunc("GET /up", func(w http.ResponseWriter, r *http.Request) {
		if isBroken() {
			http.Error(w, "broken", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, appVersion())
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 {
			http.Error(w, "ms must be a non-negative integer", http.StatusBadRequest)
			return
		}
		d := min(time.Duration(ms)*time.Millisecond, maxSlow)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			fmt.Fprintf(w, "slept %d ms (%s)\n", d.Milliseconds(), appVersion())
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, r *http.Request) {
		v, ok := os.LookupEnv(r.URL.Query().Get("name"))
		if !ok {
			http.Error(w, "unset", http.StatusNotFound)
			return
		}
		fmt.Fprintln(w, v)
	})
	mux.HandleFunc("GET /inflight", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, inFlight.Load()-1) // not counting this one
	})
	mux.HandleFunc("GET /log", func(w http.ResponseWriter, r *http.Request) {
		line := strings.ReplaceAll(r.URL.Query().Get("line"), "\n", " ")
		out := os.Stdout
		if r.URL.Query().Get("stream") == "stderr" {
			out = os.Stderr
		}
		fmt.Fprintln(out, line)
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "sampleapp %s on %s\n", appVersion(), host)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		mux.ServeHTTP(w, r)
	})
}

func serve() int {
	var inFlight atomic.Int64
	ln, err := net.Listen("tcp", ":"+port())
	if err != nil {
		log.Print(err)
		return 1
	}
	srv := &http.Server{Handler: handler(&inFlight), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("version %s listening on %s (broken=%v)", appVersion(), ln.Addr(), isBroken())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		log.Print(err)
		return 1
	case <-ctx.Done():
	}
	timeout := envDuration("SHUTDOWN_TIMEOUT", 30*time.Second)
	log.Printf("shutting down, %d requests in flight, waiting up to %s", inFlight.Load(), timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Printf("shutdown: %v", err)
		return 1
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Print(err)
	}
	log.Print("stopped")
	return 0
}

func healthcheck() int {
	path := os.Getenv("HEALTHCHECK_PATH")
	if path == "" {
		path = "/up"
	}
	c := &http.Client{Timeout: envDuration("HEALTHCHECK_TIMEOUT", 3*time.Second)}
	resp, err := c.Get("http://127.0.0.1:" + port() + path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}

func worker() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	t := time.NewTicker(envDuration("WORKER_INTERVAL", 5*time.Second))
	defer t.Stop()
	log.Printf("worker %s started", appVersion())
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			log.Print("worker stopped")
			return 0
		case <-t.C:
			log.Printf("worker %s heartbeat %d", appVersion(), n)
		}
	}
}
