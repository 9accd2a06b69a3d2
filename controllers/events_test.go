package controllers

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCutNote(t *testing.T) {
	if got := cutNote("short"); got != "short" {
		t.Errorf("cutNote(short) = %q", got)
	}
	exact := strings.Repeat("a", maxEventNote)
	if got := cutNote(exact); got != exact {
		t.Errorf("a note of exactly the limit was cut to %d bytes", len(got))
	}
	long := strings.Repeat("é", maxEventNote) // 2 bytes each
	got := cutNote(long)
	if len(got) > maxEventNote || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Errorf("cutNote(long) = %d bytes, valid %v, suffix %q", len(got), utf8.ValidString(got), got[len(got)-3:])
	}
}
