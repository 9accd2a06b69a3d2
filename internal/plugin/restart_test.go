package plugin

import (
	"testing"
	"time"
)

func TestRestartTimeAlwaysChanges(t *testing.T) {
	at := restartTime(nil, now.Add(700*time.Millisecond))
	if !at.Equal(now) || at.Location() != time.UTC {
		t.Errorf("first restart at %s, want %s in UTC", at, now)
	}
	older := now.Add(-time.Hour)
	if got := restartTime(&older, now); !got.Equal(now) {
		t.Errorf("after an hour: %s", got)
	}
	same := now
	if got := restartTime(&same, now.Add(300*time.Millisecond)); !got.Equal(now.Add(time.Second)) {
		t.Errorf("twice in a second: %s, want a second later", got)
	}
	ahead := now.Add(time.Minute) // a clock behind the last writer's
	if got := restartTime(&ahead, now); !got.Equal(ahead.Add(time.Second)) {
		t.Errorf("after a later restartedAt: %s", got)
	}
}
