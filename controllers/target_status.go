package controllers

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// Status stays bounded however many Servers a Deployment selects: an object is limited to
// 1.5 MiB, and every status write sends it whole to each watcher. Small fleets keep the full
// list; large ones get counts plus the targets that need attention.
const (
	// listAllTargets is the most targets status.targets lists in full.
	listAllTargets = 100
	// listNotRunning is the most targets listed beyond listAllTargets (those not Running).
	listNotRunning = 100
	// targetMessageMax bounds one target's message, and boundedMessageMax it in a bounded list.
	targetMessageMax  = 1024
	boundedMessageMax = 256
	// listInMessage is how many servers a condition message names before "and N more".
	listInMessage = 10
	// entryMessageMax bounds what a condition message says of one server.
	entryMessageMax = 200
)

// boundTargets turns every target (in role order, then as placed) into what status holds: all
// of them while there are at most listAllTargets, else only those not Running (at most
// listNotRunning); it returns the listed targets, how many were left out, and the counts by
// role, version and state over all of them.
func boundTargets(all []kamalv1.TargetStatus, roleOrder []string) ([]kamalv1.TargetStatus, int32, []kamalv1.TargetCount) {
	listed, notListed := boundList(all, func(t *kamalv1.TargetStatus) (kamalv1.TargetState, *string) { return t.State, &t.Message })
	return listed, notListed, summarize(all, roleOrder)
}

// boundAccessoryServers is boundTargets for an Accessory's servers.
func boundAccessoryServers(all []kamalv1.AccessoryServerStatus) ([]kamalv1.AccessoryServerStatus, int32) {
	return boundList(all, func(s *kamalv1.AccessoryServerStatus) (kamalv1.TargetState, *string) { return s.State, &s.Message })
}

// boundList keeps every entry while there are at most listAllTargets, else only those not
// Running (at most listNotRunning, messages cut shorter); it returns them and how many it
// left out. entry gives an entry's state and its message to cut.
func boundList[T any](all []T, entry func(*T) (kamalv1.TargetState, *string)) ([]T, int32) {
	if len(all) <= listAllTargets {
		listed := slices.Clone(all)
		for i := range listed {
			_, msg := entry(&listed[i])
			*msg = truncate(*msg, targetMessageMax)
		}
		return listed, 0
	}
	var listed []T
	for _, t := range all {
		state, msg := entry(&t)
		if state == kamalv1.TargetRunning {
			continue
		}
		if len(listed) == listNotRunning {
			break
		}
		*msg = truncate(*msg, boundedMessageMax)
		listed = append(listed, t)
	}
	return listed, int32(len(all) - len(listed))
}

// summarize counts targets by role (in roleOrder, others after by name), version and state.
func summarize(all []kamalv1.TargetStatus, roleOrder []string) []kamalv1.TargetCount {
	type key struct {
		role, version string
		state         kamalv1.TargetState
	}
	counts := map[key]int32{}
	for _, t := range all {
		counts[key{t.Role, t.Version, t.State}]++
	}
	out := make([]kamalv1.TargetCount, 0, len(counts))
	for k, n := range counts {
		out = append(out, kamalv1.TargetCount{Role: k.role, Version: k.version, State: k.state, Count: n})
	}
	rank := func(role string) int {
		if i := slices.Index(roleOrder, role); i >= 0 {
			return i
		}
		return len(roleOrder)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ra, rb := rank(a.Role), rank(b.Role); ra != rb {
			return ra < rb
		}
		if a.Role != b.Role {
			return a.Role < b.Role
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.State < b.State
	})
	return out
}

// guestNamespacesOf are the namespaces of the other namespaces' Servers placed now, and those
// of prev where a Server was unreachable (what ran there may not have been removed yet).
func guestNamespacesOf(placed map[string][]string, prev []string, unreachable map[string]string) []string {
	seen := map[string]bool{}
	for _, refs := range placed {
		for _, ref := range refs {
			if ns, _, ok := strings.Cut(ref, "/"); ok {
				seen[ns] = true
			}
		}
	}
	for ref := range unreachable {
		if ns, _, ok := strings.Cut(ref, "/"); ok && slices.Contains(prev, ns) {
			seen[ns] = true
		}
	}
	return sortedKeys(seen)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// joinSorted names the servers of m with what it says of each, sorted, for a condition
// message: at most listInMessage of them, each said briefly, then how many more.
func joinSorted(m map[string]string) string {
	keys := sortedKeys(m)
	var parts []string
	for i, k := range keys {
		if i == listInMessage {
			parts = append(parts, fmt.Sprintf("and %d more", len(keys)-i))
			break
		}
		parts = append(parts, k+" ("+truncate(m[k], entryMessageMax)+")")
	}
	return strings.Join(parts, ", ")
}

// joinFirst joins the first listInMessage items, then says how many more there are.
func joinFirst(items []string, sep string) string {
	if len(items) > listInMessage {
		items = append(items[:listInMessage:listInMessage], fmt.Sprintf("and %d more", len(items)-listInMessage))
	}
	return strings.Join(items, sep)
}
