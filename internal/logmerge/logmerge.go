// Package logmerge merges the log streams of containers on several hosts into one output: each
// line prefixed with where it comes from (coloured on a terminal), filtered by a regular
// expression, and written whole, so lines of different sources never interleave mid-line.
//
// The streams are expected to carry Docker's timestamps (the Engine API's timestamps=1): each
// line starts with an RFC 3339 time and a space. The time is kept to resume a stream without
// repeating lines, and shown only when asked.
package logmerge

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Options say how lines are written.
type Options struct {
	// Color prefixes each source's label with its own ANSI colour.
	Color bool
	// Grep keeps only the lines whose message (the text after Docker's timestamp) matches.
	Grep *regexp.Regexp
	// Timestamps shows Docker's timestamp of each line after the label.
	Timestamps bool
}

// Output is where every source writes; it is safe for concurrent use.
type Output struct {
	mu   sync.Mutex
	w    io.Writer
	opts Options
	err  error
}

// NewOutput writes lines to w.
func NewOutput(w io.Writer, opts Options) *Output { return &Output{w: w, opts: opts} }

// Err is the first error writing to the output (a closed pipe): the command should stop.
func (o *Output) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// palette are the colours of sources, in order (ANSI foreground codes; no black or white, which
// vanish on one background or the other).
var palette = []int{36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91}

// Label is how a line names its source: "server role", or "server" alone for a source without
// roles (an Accessory).
func Label(server, role string) string {
	if role == "" {
		return server
	}
	return server + " " + role
}

// Pad pads labels with spaces to the longest one, so the lines' text starts in one column.
func Pad(labels []string) []string {
	width := 0
	for _, l := range labels {
		width = max(width, len(l))
	}
	out := make([]string, len(labels))
	for i, l := range labels {
		out[i] = l + strings.Repeat(" ", width-len(l))
	}
	return out
}

// Source is an io.Writer for one stream of one container: it cuts what it is given into lines
// and writes each whole line, prefixed, to the Output. Use one Source per stream (stdout and
// stderr apart), so a partial line of one is not joined to the other's.
type Source struct {
	out    *Output
	prefix string
	buf    []byte
	last   time.Time
}

// Source returns a writer for one stream labelled label, coloured by the index of the source.
func (o *Output) Source(label string, index int) *Source {
	prefix := label + " | "
	if o.opts.Color {
		prefix = fmt.Sprintf("\x1b[%dm%s\x1b[0m | ", palette[index%len(palette)], label)
	}
	return &Source{out: o, prefix: prefix}
}

// Write writes the complete lines of p and keeps the rest for the next Write or Flush. It
// fails only when the Output does.
func (s *Source) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			break
		}
		s.line(s.buf[:i])
		s.buf = s.buf[i+1:]
	}
	// Keep the rest in a buffer of its own, so the array under an old large buffer is freed.
	s.buf = append([]byte(nil), s.buf...)
	if err := s.out.Err(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what is left of a last line without a newline.
func (s *Source) Flush() {
	if len(s.buf) > 0 {
		s.line(s.buf)
		s.buf = nil
	}
}

// Last is the timestamp of the last line seen (zero before any): a stream of the same
// container resumed after it is seen again from just after it.
func (s *Source) Last() time.Time { return s.last }

func (s *Source) line(raw []byte) {
	text := strings.TrimSuffix(string(raw), "\r")
	ts, msg, ok := Split(text)
	if ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil && t.After(s.last) {
			s.last = t
		}
	} else {
		msg = text
	}
	if s.out.opts.Grep != nil && !s.out.opts.Grep.MatchString(msg) {
		return
	}
	var b strings.Builder
	b.WriteString(s.prefix)
	if s.out.opts.Timestamps && ok {
		b.WriteString(ts)
		b.WriteByte(' ')
	}
	b.WriteString(msg)
	b.WriteByte('\n')
	s.out.write(b.String())
}

func (o *Output) write(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return
	}
	if _, err := io.WriteString(o.w, line); err != nil {
		o.err = err
	}
}

// Split cuts a line of a log stream with timestamps into Docker's timestamp and the message;
// ok is false when the line does not start with a timestamp.
func Split(line string) (ts, msg string, ok bool) {
	ts, msg, ok = strings.Cut(line, " ")
	if !ok {
		// A line that was empty has the timestamp alone.
		ts, msg = line, ""
	}
	if len(ts) < len("2006-01-02T15:04:05Z") || ts[4] != '-' || ts[10] != 'T' {
		return "", line, false
	}
	return ts, msg, true
}

// Since reads a --since value: a duration before now ("10m", "1h30m") or a time in RFC 3339
// ("2006-01-02T15:04:05Z07:00"), or a date ("2006-01-02", midnight UTC).
func Since(value string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(value); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--since %s: give a positive duration", value)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, value); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: give a duration (10m, 2h) or a time (2006-01-02T15:04:05Z)", value)
}

// EngineTime is t as the Engine API's since and until parameters take it: Unix seconds with
// nanoseconds.
func EngineTime(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}
