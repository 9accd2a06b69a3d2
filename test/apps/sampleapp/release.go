package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// release is the "release" mode, a migration-like command for spec.rollout.release: it
// inserts the row "release <version>" into kamal_rows at $DATABASE_URL and prints what it does.
// $RELEASE_ECHO names an env var whose value it prints (to see that the controller redacts
// Secret values in what it reports), $RELEASE_SLEEP a duration to sleep after the insert, and
// it fails (exit 1) in broken mode or when $RELEASE_FAIL is set.
func release(out io.Writer) int {
	v := appVersion()
	fmt.Fprintf(out, "release %s: starting\n", v)
	if name := os.Getenv("RELEASE_ECHO"); name != "" {
		fmt.Fprintf(out, "release %s: %s is %s\n", v, name, os.Getenv(name))
	}
	if isBroken() || os.Getenv("RELEASE_FAIL") != "" {
		fmt.Fprintf(out, "release %s: failed: this build cannot migrate the database\n", v)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var d database
	pool, u, err := d.rows(ctx)
	var id int64
	if err == nil {
		err = pool.QueryRow(ctx, "INSERT INTO kamal_rows (value) VALUES ($1) RETURNING id", "release "+v).Scan(&id)
	}
	if err != nil {
		fmt.Fprintf(out, "release %s: failed: %s\n", v, redact(err.Error(), u))
		return 1
	}
	fmt.Fprintf(out, "release %s: inserted row %d\n", v, id)
	if s := envDuration("RELEASE_SLEEP", 0); s > 0 {
		fmt.Fprintf(out, "release %s: sleeping %s\n", v, s)
		time.Sleep(s)
	}
	fmt.Fprintf(out, "release %s: done\n", v)
	return 0
}
