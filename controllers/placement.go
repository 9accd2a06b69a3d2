package controllers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/placement"
)

// placeAll resolves each named selector against the Servers of the namespace. A selector that
// picks nothing is a problem that only a new or relabelled Server fixes, so it stalls.
func placeAll(ctx context.Context, c client.Reader, namespace string, selectors map[string]kamalv1.ServerSelector) (map[string][]string, *refProblem, error) {
	var servers kamalv1.ServerList
	if err := c.List(ctx, &servers, client.InNamespace(namespace)); err != nil {
		return nil, nil, err
	}
	names := make([]string, 0, len(selectors))
	for n := range selectors {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make(map[string][]string, len(selectors))
	for _, n := range names {
		picked, missing, err := placement.Select(selectors[n], servers.Items)
		if err != nil {
			return nil, &refProblem{Reason: kamalv1.ReasonInvalidSpec, Message: fmt.Sprintf("%s: %v", n, err)}, nil
		}
		if len(missing) > 0 {
			return nil, &refProblem{Reason: kamalv1.ReasonServerNotFound, Message: fmt.Sprintf("%s: Server %q not found", n, missing[0])}, nil
		}
		if len(picked) == 0 {
			// Servers being deleted still need their containers removed, which a stall would
			// hold up; leavingServers reports them instead.
			if leaving, _ := placement.Leaving(selectors[n], servers.Items); len(leaving) > 0 {
				out[n] = nil
				continue
			}
			return nil, &refProblem{Reason: kamalv1.ReasonNoServers, Message: fmt.Sprintf("%s: no Server matches", n)}, nil
		}
		out[n] = picked
	}
	return out, nil, nil
}

// leavingServers resolves each named selector to the Servers it picks but for their being
// deleted: what runs there is removed, and the object says so.
func leavingServers(ctx context.Context, c client.Reader, namespace string, selectors map[string]kamalv1.ServerSelector) (map[string][]string, error) {
	var servers kamalv1.ServerList
	if err := c.List(ctx, &servers, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for n, sel := range selectors {
		if leaving, _ := placement.Leaving(sel, servers.Items); len(leaving) > 0 {
			out[n] = leaving
		}
	}
	return out, nil
}

// leavingMessage says which Servers are being deleted, or "" for none.
func leavingMessage(leaving map[string][]string) string {
	var names []string
	for _, n := range sortedKeys(leaving) {
		for _, s := range leaving[n] {
			if !slices.Contains(names, s) {
				names = append(names, s)
			}
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	if len(names) == 1 {
		return "Server " + names[0] + " is being deleted: what ran there is removed"
	}
	return "Servers " + strings.Join(names, ", ") + " are being deleted: what ran there is removed"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
