package logmerge

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLabelAndPad(t *testing.T) {
	got := Pad([]string{Label("web-1", "web"), Label("web-10", "jobs"), Label("db", "")})
	want := []string{"web-1 web  ", "web-10 jobs", "db         "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Pad = %q, want %q", got, want)
	}
}

func TestSourceLines(t *testing.T) {
	var buf bytes.Buffer
	o := NewOutput(&buf, Options{})
	s := o.Source("web-1 web", 0)
	// A line cut over several writes, a CRLF line, an empty line and a last line without a
	// newline.
	for _, p := range []string{"2024-05-01T10:00:00.000000001Z hel", "lo\n2024-05-01T10:00:01Z tty line\r\n", "2024-05-01T10:00:02Z\n", "2024-05-01T10:00:03.5Z last"} {
		if n, err := s.Write([]byte(p)); err != nil || n != len(p) {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if got, want := buf.String(), "web-1 web | hello\nweb-1 web | tty line\nweb-1 web | \n"; got != want {
		t.Errorf("before Flush:\n%q\nwant\n%q", got, want)
	}
	s.Flush()
	if got, want := buf.String(), "web-1 web | hello\nweb-1 web | tty line\nweb-1 web | \nweb-1 web | last\n"; got != want {
		t.Errorf("after Flush:\n%q\nwant\n%q", got, want)
	}
	if want := time.Date(2024, 5, 1, 10, 0, 3, 500_000_000, time.UTC); !s.Last().Equal(want) {
		t.Errorf("Last = %s, want %s", s.Last(), want)
	}
}

func TestSourceWithoutTimestamps(t *testing.T) {
	var buf bytes.Buffer
	s := NewOutput(&buf, Options{Timestamps: true}).Source("db", 0)
	_, _ = s.Write([]byte("plain line\n"))
	if got := buf.String(); got != "db | plain line\n" {
		t.Errorf("got %q", got)
	}
	if !s.Last().IsZero() {
		t.Errorf("Last = %s for a line without a timestamp", s.Last())
	}
}

func TestGrepAndTimestamps(t *testing.T) {
	var buf bytes.Buffer
	o := NewOutput(&buf, Options{Grep: regexp.MustCompile(`^GET /a`), Timestamps: true})
	s := o.Source("web-2 web", 1)
	// The expression sees the message, not the timestamp: ^ anchors at the message.
	_, _ = s.Write([]byte("2024-05-01T10:00:00Z GET /a\n2024-05-01T10:00:01Z GET /b\n2024-05-01T10:00:02Z POST /a\n"))
	if got, want := buf.String(), "web-2 web | 2024-05-01T10:00:00Z GET /a\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Lines filtered out still count for Last.
	if want := time.Date(2024, 5, 1, 10, 0, 2, 0, time.UTC); !s.Last().Equal(want) {
		t.Errorf("Last = %s, want %s", s.Last(), want)
	}
}

func TestColor(t *testing.T) {
	var buf bytes.Buffer
	o := NewOutput(&buf, Options{Color: true})
	_, _ = o.Source("a", 0).Write([]byte("x\n"))
	_, _ = o.Source("b", 1).Write([]byte("y\n"))
	if got, want := buf.String(), "\x1b[36ma\x1b[0m | x\n\x1b[33mb\x1b[0m | y\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Lines written concurrently by many sources come out whole.
func TestConcurrentSourcesKeepLinesWhole(t *testing.T) {
	var buf bytes.Buffer
	o := NewOutput(&buf, Options{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := o.Source("s", i)
			for range 200 {
				// Each line in two writes.
				_, _ = s.Write([]byte("2024-05-01T10:00:00Z " + strings.Repeat("x", 50)))
				_, _ = s.Write([]byte(strings.Repeat("y", 50) + "\n"))
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 8*200 {
		t.Fatalf("%d lines, want %d", len(lines), 8*200)
	}
	want := "s | " + strings.Repeat("x", 50) + strings.Repeat("y", 50)
	for _, l := range lines {
		if l != want {
			t.Fatalf("torn line %q", l)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestOutputError(t *testing.T) {
	o := NewOutput(failingWriter{}, Options{})
	s := o.Source("a", 0)
	if _, err := s.Write([]byte("x\n")); err == nil {
		t.Fatal("Write succeeded on a failing output")
	}
	if o.Err() == nil {
		t.Fatal("Err is nil")
	}
}

func TestSince(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "10m", want: now.Add(-10 * time.Minute)},
		{in: "1h30m", want: now.Add(-90 * time.Minute)},
		{in: "2024-05-01T11:00:00Z", want: time.Date(2024, 5, 1, 11, 0, 0, 0, time.UTC)},
		{in: "2024-05-01T13:00:00+02:00", want: time.Date(2024, 5, 1, 11, 0, 0, 0, time.UTC)},
		{in: "2024-05-01T11:00:00.25Z", want: time.Date(2024, 5, 1, 11, 0, 0, 250_000_000, time.UTC)},
		{in: "2024-05-01", want: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)},
		{in: "-5m", bad: true},
		{in: "0s", bad: true},
		{in: "yesterday", bad: true},
		{in: "", bad: true},
	} {
		got, err := Since(c.in, now)
		if c.bad {
			if err == nil {
				t.Errorf("Since(%q) = %s, want an error", c.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(c.want) {
			t.Errorf("Since(%q) = %s, %v, want %s", c.in, got, err, c.want)
		}
	}
}

func TestEngineTime(t *testing.T) {
	if got := EngineTime(time.Unix(1714564800, 5)); got != "1714564800.000000005" {
		t.Errorf("EngineTime = %q", got)
	}
}

func TestSplit(t *testing.T) {
	for _, c := range []struct{ in, ts, msg string }{
		{"2024-05-01T10:00:00.123Z hello world", "2024-05-01T10:00:00.123Z", "hello world"},
		{"2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z", ""},
		{"hello world", "", "hello world"},
		{"short x", "", "short x"},
	} {
		ts, msg, ok := Split(c.in)
		if ts != c.ts || msg != c.msg || ok != (c.ts != "") {
			t.Errorf("Split(%q) = %q, %q, %v", c.in, ts, msg, ok)
		}
	}
}
