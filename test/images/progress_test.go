package images

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) logf(f string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l = append(l.l, fmt.Sprintf(f, a...))
}

func (l *lines) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.l...)
}

func TestProgress(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = 40 * time.Millisecond

	t.Run("a quick build says nothing", func(t *testing.T) {
		var l lines
		StartProgress(l.logf, "building x", time.Second).Stop()
		if got := l.get(); len(got) != 0 {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("a long build says what, then how long", func(t *testing.T) {
		var l lines
		p := StartProgress(l.logf, "building x", 10*time.Millisecond)
		time.Sleep(100 * time.Millisecond)
		p.Phase("compiling")
		time.Sleep(60 * time.Millisecond)
		p.Stop()
		n := len(l.get())
		time.Sleep(100 * time.Millisecond)
		got := l.get()
		if len(got) != n {
			t.Fatalf("lines after Stop: %q", got[n:])
		}
		if len(got) < 3 || got[0] != "building x" || !strings.HasPrefix(got[1], "building x … ") {
			t.Fatalf("got %q", got)
		}
		if last := got[len(got)-1]; !strings.HasPrefix(last, "building x: compiling … ") || !strings.Contains(last, "(total ") {
			t.Fatalf("last line %q", last)
		}
	})

	t.Run("first 0 says what at once, first below 0 never", func(t *testing.T) {
		var l lines
		StartProgress(l.logf, "building x", 0).Stop()
		StartProgress(l.logf, "building y", -1).Stop()
		if got := l.get(); len(got) != 1 || got[0] != "building x" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("nil logf", func(t *testing.T) {
		p := StartProgress(nil, "building x", 0)
		p.Phase("y")
		p.Stop()
		p.Stop()
	})
}
