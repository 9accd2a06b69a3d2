package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Database mode: the /db endpoints use PostgreSQL at $DATABASE_URL
// (postgres://user:password@host:5432/db), through a small connection pool made on first use.

const dbTimeout = 5 * time.Second

const createRows = `CREATE TABLE IF NOT EXISTS kamal_rows (
	id      serial PRIMARY KEY,
	value   text,
	created timestamptz NOT NULL DEFAULT now()
)`

var errNoDatabaseURL = errors.New("DATABASE_URL is not set")

type database struct {
	mu      sync.Mutex
	url     string // of pool
	pool    *pgxpool.Pool
	hasRows bool // kamal_rows exists (made by this pool)
}

// get returns the pool for the current $DATABASE_URL (a new one when it changed).
func (d *database) get() (*pgxpool.Pool, string, error) {
	u := os.Getenv("DATABASE_URL")
	if u == "" {
		return nil, "", errNoDatabaseURL
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pool != nil && d.url == u {
		return d.pool, u, nil
	}
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		return nil, u, err
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.ConnectTimeout = dbTimeout
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, u, err
	}
	if d.pool != nil {
		d.pool.Close()
	}
	d.pool, d.url, d.hasRows = pool, u, false
	return pool, u, nil
}

// rows returns the pool once kamal_rows exists.
func (d *database) rows(ctx context.Context) (*pgxpool.Pool, string, error) {
	pool, u, err := d.get()
	if err != nil {
		return nil, u, err
	}
	d.mu.Lock()
	ok := d.hasRows && d.pool == pool
	d.mu.Unlock()
	if !ok {
		if _, err := pool.Exec(ctx, createRows); err != nil {
			return nil, u, err
		}
		d.mu.Lock()
		if d.pool == pool {
			d.hasRows = true
		}
		d.mu.Unlock()
	}
	return pool, u, nil
}

var passwordParam = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|\S+)`)

// redact removes the password of databaseURL (and any password=… setting) from msg.
func redact(msg, databaseURL string) string {
	if u, err := url.Parse(databaseURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
			msg = strings.ReplaceAll(msg, url.QueryEscape(pw), "xxxxx")
			msg = strings.ReplaceAll(msg, url.PathEscape(pw), "xxxxx")
		}
	}
	if i := strings.Index(databaseURL, "://"); i >= 0 {
		// the user-info part even when the URL does not parse
		rest := databaseURL[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
			}
		}
	}
	return passwordParam.ReplaceAllString(msg, "${1}xxxxx")
}

func dbError(w http.ResponseWriter, err error, databaseURL string) {
	http.Error(w, redact(err.Error(), databaseURL), http.StatusServiceUnavailable)
}

func (d *database) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /db", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), dbTimeout)
		defer cancel()
		pool, u, err := d.get()
		if err == nil {
			var one int
			err = pool.QueryRow(ctx, "SELECT 1").Scan(&one)
		}
		if err != nil {
			dbError(w, err, u)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /db/rows", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), dbTimeout)
		defer cancel()
		if os.Getenv("DATABASE_URL") == "" {
			dbError(w, errNoDatabaseURL, "")
			return
		}
		q := r.URL.Query()
		if !q.Has("value") {
			http.Error(w, "value is required", http.StatusBadRequest)
			return
		}
		pool, u, err := d.rows(ctx)
		var id int64
		if err == nil {
			err = pool.QueryRow(ctx, "INSERT INTO kamal_rows (value) VALUES ($1) RETURNING id", q.Get("value")).Scan(&id)
		}
		if err != nil {
			dbError(w, err, u)
			return
		}
		fmt.Fprintln(w, id)
	})
	mux.HandleFunc("GET /db/rows", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), dbTimeout)
		defer cancel()
		pool, u, err := d.rows(ctx)
		if err != nil {
			dbError(w, err, u)
			return
		}
		rows, err := pool.Query(ctx, "SELECT coalesce(value, '') FROM kamal_rows ORDER BY id")
		if err != nil {
			dbError(w, err, u)
			return
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				dbError(w, err, u)
				return
			}
			b.WriteString(v)
			b.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			dbError(w, err, u)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, b.String())
	})
}
