package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// ui prints the demo's progress: steps, their results and how long they took.
type ui struct {
	mu sync.Mutex
	t0 time.Time
}

func newUI() *ui { return &ui{t0: time.Now()} }

func (u *ui) printf(format string, a ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(os.Stdout, format, a...)
}

// step announces a step.
func (u *ui) step(format string, a ...any) time.Time {
	u.printf("\n==> %s\n", fmt.Sprintf(format, a...))
	return time.Now()
}

// done reports a finished part of a step with the time since start.
func (u *ui) done(start time.Time, format string, a ...any) {
	u.printf("    ok %7s  %s\n", dur(time.Since(start)), fmt.Sprintf(format, a...))
}

// info prints an indented line.
func (u *ui) info(format string, a ...any) {
	u.printf("    %s\n", fmt.Sprintf(format, a...))
}

// block prints text indented.
func (u *ui) block(text string) {
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return
	}
	for _, l := range strings.Split(text, "\n") {
		if l == "" {
			u.printf("\n")
		} else {
			u.printf("    %s\n", l)
		}
	}
}

// clip shortens s to n runes.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func dur(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}
