package controllers

import (
	"strings"
	"testing"
	"unicode/utf8"

	"k8s.io/client-go/tools/events"
)

// The recorder the controllers use cuts each note to the API server's limit on a rune
// boundary, and leaves a note within it alone.
func TestEventNotesAreCutToTheLimit(t *testing.T) {
	fake := events.NewFakeRecorder(3)
	rec := boundedNotes{fake}
	note := func(format string, args ...any) string {
		rec.Eventf(nil, nil, "Warning", "Reason", "Action", format, args...)
		return strings.TrimPrefix(<-fake.Events, "Warning Reason ")
	}
	if got := note("short %d", 1); got != "short 1" {
		t.Errorf("short note = %q", got)
	}
	exact := strings.Repeat("a", maxEventNote)
	if got := note("%s", exact); got != exact {
		t.Errorf("a note of exactly the limit was cut to %d bytes", len(got))
	}
	got := note("%s", strings.Repeat("é", maxEventNote)) // 2 bytes each
	if len(got) > maxEventNote || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Errorf("long note = %d bytes, valid %v, suffix %q", len(got), utf8.ValidString(got), got[len(got)-3:])
	}
}
