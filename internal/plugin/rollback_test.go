package plugin

import (
	"strings"
	"testing"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func hist(images ...string) []kamalv1.DeployedImage {
	var h []kamalv1.DeployedImage
	for _, i := range images {
		h = append(h, kamalv1.DeployedImage{Image: i, Version: i[strings.LastIndex(i, ":")+1:]})
	}
	return h
}

func TestRollbackImage(t *testing.T) {
	const v1, v2, v3 = "registry.example.com/app:v1", "registry.example.com/app:v2", "registry.example.com/app:v3"
	for _, c := range []struct {
		name             string
		history          []kamalv1.DeployedImage
		current, arg     string
		want, wantErrHas string
	}{
		{name: "previous of the current", history: hist(v2, v1), current: v2, want: v1},
		{name: "previous of an older current", history: hist(v3, v2, v1), current: v2, want: v1},
		{name: "a rollout that never completed goes back to the last completed", history: hist(v2, v1), current: v3, want: v2},
		{name: "back and forth: the deploy before the current one", history: hist(v1, v2, v1), current: v1, want: v2},
		{name: "repeated entries of the current are skipped", history: hist(v2, v2, v1), current: v2, want: v1},
		{name: "only the current", history: hist(v1), current: v1, wantErrHas: "no earlier version in status.history to roll back to (known: v1 (registry.example.com/app:v1, current))"},
		{name: "no history", current: v1, wantErrHas: "no rollout has completed yet"},
		{name: "by version", history: hist(v3, v2, v1), current: v3, arg: "v1", want: v1},
		{name: "by full image", history: hist(v3, v2, v1), current: v3, arg: v2, want: v2},
		{name: "the current by version", history: hist(v2, v1), current: v2, arg: "v2", want: v2},
		{name: "unknown version lists the known ones", history: hist(v2, v1), current: v2, arg: "v9",
			wantErrHas: `no version or image "v9" in status.history (known: v2 (registry.example.com/app:v2, current), v1 (registry.example.com/app:v1))`},
		{name: "an image not in history", history: hist(v2, v1), current: v2, arg: "registry.example.com/app:v0", wantErrHas: "no version or image"},
		{name: "a version of two repositories", history: []kamalv1.DeployedImage{{Image: "a/app:v1", Version: "v1"}, {Image: "b/app:v1", Version: "v1"}}, current: "c/app:v2", arg: "v1",
			wantErrHas: "several images in status.history: a/app:v1, b/app:v1"},
		{name: "one of them by image", history: []kamalv1.DeployedImage{{Image: "a/app:v1", Version: "v1"}, {Image: "b/app:v1", Version: "v1"}}, current: "c/app:v2", arg: "b/app:v1", want: "b/app:v1"},
	} {
		got, err := rollbackImage(c.history, c.current, c.arg)
		switch {
		case c.wantErrHas != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErrHas) {
				t.Errorf("%s: %q, %v; want an error with %q", c.name, got, err, c.wantErrHas)
			}
		case err != nil || got != c.want:
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}
