package controllers

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/release"
)

// fleetScope is a Deployment of roles web and jobs on n Servers each: every target runs the
// new version but for failing ones (a long message), unreachable ones, a few deploying and a
// few still on the old version.
func fleetScope(n int, failing, unreachable, deploying, old int) *deploymentScope {
	d := &kamalv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "shop", UID: "u1"},
		Spec: kamalv1.DeploymentSpec{Image: "registry.example.com/app:v2", PrimaryRole: "web", Roles: map[string]kamalv1.Role{
			"web":  {Servers: kamalv1.ServerSelector{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}}},
			"jobs": {Servers: kamalv1.ServerSelector{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}}},
		}},
	}
	s := &deploymentScope{d: d, placed: map[string][]string{}, roles: map[string]*release.Role{}, steps: map[string]opStep{},
		failures: map[string]string{}, unreachable: map[string]string{}, observed: map[string]map[string][]release.Observed{}}
	long := strings.Repeat("health check of /up failed: connection refused; ", 100)
	for _, role := range []string{"web", "jobs"} {
		rr := &release.Role{Namespace: "shop", UID: "u1", Deployment: "app", Name: role, Image: d.Spec.Image}
		s.roles[role] = rr
		hash := rr.Hash("u1")
		for i := range n {
			server := fmt.Sprintf("web-%04d", i)
			s.placed[role] = append(s.placed[role], server)
			if s.observed[server] == nil {
				s.observed[server] = map[string][]release.Observed{}
			}
			obs := release.Observed{Name: "app-" + role + "-v2", Hash: hash, Version: "v2", Running: true}
			switch {
			case i < failing:
				s.failures[targetKey(role, server)] = long
				obs = release.Observed{Name: "app-" + role + "-v1", Hash: "old", Version: "v1", Running: true}
			case i < failing+unreachable:
				s.unreachable[server] = "dial tcp 10.0.0.1:22: i/o timeout"
				continue
			case i < failing+unreachable+deploying:
				s.steps[targetKey(role, server)] = stepChecking
			case i < failing+unreachable+deploying+old:
				obs = release.Observed{Name: "app-" + role + "-v1", Hash: "old", Version: "v1", Running: true}
			}
			s.observed[server][role] = append(s.observed[server][role], obs)
		}
	}
	return s
}

func TestFillTargetsListsASmallFleetInFull(t *testing.T) {
	s := fleetScope(3, 1, 1, 0, 0)
	ready, total := fillTargets(s)
	st := s.d.Status
	if ready != 2 || total != 6 || st.ServersReady != "2/6" || len(st.Targets) != 6 || st.TargetsNotListed != 0 {
		t.Fatalf("ready %d total %d: %s, %d listed, %d not listed", ready, total, st.ServersReady, len(st.Targets), st.TargetsNotListed)
	}
	if st.Targets[0].Role != "web" || st.Targets[0].State != kamalv1.TargetFailed || len(st.Targets[0].Message) > targetMessageMax {
		t.Errorf("first target %+v (message of %d bytes)", st.Targets[0], len(st.Targets[0].Message))
	}
	want := []kamalv1.TargetCount{
		{Role: "web", State: kamalv1.TargetUnreachable, Count: 1},
		{Role: "web", Version: "v1", State: kamalv1.TargetFailed, Count: 1},
		{Role: "web", Version: "v2", State: kamalv1.TargetRunning, Count: 1},
		{Role: "jobs", State: kamalv1.TargetUnreachable, Count: 1},
		{Role: "jobs", Version: "v1", State: kamalv1.TargetFailed, Count: 1},
		{Role: "jobs", Version: "v2", State: kamalv1.TargetRunning, Count: 1},
	}
	if fmt.Sprint(st.Summary) != fmt.Sprint(want) {
		t.Errorf("summary\n%+v, want\n%+v", st.Summary, want)
	}
}

// A Deployment on 5,000 hosts (10,000 targets) keeps its status far below the object size
// limit, with exact counts, and lists what needs attention first.
func TestFillTargetsBoundsTheStatusOfALargeFleet(t *testing.T) {
	s := fleetScope(5000, 70, 20, 5, 300)
	ready, total := fillTargets(s)
	st := s.d.Status
	if total != 10000 || st.TotalTargets != 10000 {
		t.Fatalf("total %d", total)
	}
	if want := int32(2 * (5000 - 70 - 20 - 5 - 300)); ready != want || st.ReadyTargets != want || st.ServersReady != fmt.Sprintf("%d/10000", want) {
		t.Errorf("ready %d (%s), want %d", ready, st.ServersReady, want)
	}
	if len(st.Targets) != listNotRunning || int(st.TargetsNotListed)+len(st.Targets) != 10000 {
		t.Errorf("%d listed, %d not listed", len(st.Targets), st.TargetsNotListed)
	}
	for _, tg := range st.Targets {
		if tg.State == kamalv1.TargetRunning || len(tg.Message) > boundedMessageMax {
			t.Fatalf("listed %+v (message of %d bytes)", tg, len(tg.Message))
		}
	}
	var counted int32
	byState := map[kamalv1.TargetState]int32{}
	for _, c := range st.Summary {
		counted += c.Count
		byState[c.State] += c.Count
	}
	if counted != 10000 || byState[kamalv1.TargetFailed] != 140 || byState[kamalv1.TargetUnreachable] != 40 ||
		byState[kamalv1.TargetHealthChecking] != 10 || byState[kamalv1.TargetPending] != 600 || byState[kamalv1.TargetRunning] != ready {
		t.Errorf("summary counts %d: %v", counted, byState)
	}
	b, err := json.Marshal(s.d)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 64<<10 {
		t.Errorf("the Deployment is %d bytes as JSON, want < 64 KiB", len(b))
	}
	t.Logf("a Deployment of 10,000 targets: %d bytes, %d summary rows", len(b), len(st.Summary))
}

func TestConditionMessagesNameAFewServers(t *testing.T) {
	m := map[string]string{}
	for i := range 5000 {
		m[fmt.Sprintf("web-%04d", i)] = strings.Repeat("x", 1000)
	}
	got := joinSorted(m)
	if !strings.HasPrefix(got, "web-0000 (xxx") || !strings.HasSuffix(got, ", and 4990 more") || len(got) > 3000 {
		t.Errorf("%d bytes: %.80s … %s", len(got), got, got[len(got)-30:])
	}
	if got := joinSorted(map[string]string{"b": "2", "a": "1"}); got != "a (1), b (2)" {
		t.Errorf("got %q", got)
	}
}

func TestGuestNamespacesKeepWhereSomethingMayBeLeft(t *testing.T) {
	placed := map[string][]string{"web": {"web-1", "platform/web-1"}}
	got := guestNamespacesOf(placed, []string{"old", "gone"}, map[string]string{"old/web-9": "refused", "other/web-1": "refused"})
	if fmt.Sprint(got) != "[old platform]" {
		t.Errorf("got %v", got)
	}
}

func TestTruncateKeepsRunesWhole(t *testing.T) {
	if got := truncate("ééééé", 6); got != "é…" {
		t.Errorf("got %q", got)
	}
	if got := truncate("short", 6); got != "short" {
		t.Errorf("got %q", got)
	}
}

func TestJoinFirst(t *testing.T) {
	var items []string
	for i := range 12 {
		items = append(items, fmt.Sprint(i))
	}
	if got := joinFirst(items, ", "); got != "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, and 2 more" || len(items) != 12 || items[10] != "10" {
		t.Errorf("got %q (items %v)", got, items)
	}
	if got := joinFirst([]string{"a", "b"}, "; "); got != "a; b" {
		t.Errorf("got %q", got)
	}
}

// An Accessory on a large fleet lists only where it is not Running, as a Deployment does.
func TestAccessoryServersAreBoundedOnALargeFleet(t *testing.T) {
	long := strings.Repeat("x", 4000)
	small := []kamalv1.AccessoryServerStatus{{Server: "a", State: kamalv1.TargetRunning}, {Server: "b", State: kamalv1.TargetFailed, Message: long}}
	listed, notListed := boundAccessoryServers(small)
	if len(listed) != 2 || notListed != 0 || len(listed[1].Message) > targetMessageMax || len(small[1].Message) != 4000 {
		t.Errorf("small fleet: %d listed, %d not listed, message %d bytes (input changed: %v)", len(listed), notListed, len(listed[1].Message), len(small[1].Message) != 4000)
	}
	var all []kamalv1.AccessoryServerStatus
	for i := range 3000 {
		st := kamalv1.AccessoryServerStatus{Server: fmt.Sprintf("s-%04d", i), State: kamalv1.TargetRunning}
		if i%20 == 0 { // 150 not Running: more than the list holds
			st.State, st.Message = kamalv1.TargetUnreachable, long
		}
		all = append(all, st)
	}
	listed, notListed = boundAccessoryServers(all)
	if len(listed) != listNotRunning || int(notListed)+len(listed) != 3000 {
		t.Fatalf("%d listed, %d not listed", len(listed), notListed)
	}
	for _, s := range listed {
		if s.State == kamalv1.TargetRunning || len(s.Message) > boundedMessageMax {
			t.Fatalf("listed %s %s with a message of %d bytes", s.Server, s.State, len(s.Message))
		}
	}
}
