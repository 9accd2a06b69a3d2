package controllers

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/placement"
)

// placeAll resolves each named selector against the Servers of its namespace (the object's own,
// or the one the selector names) and returns each selection's serverRefs. A selector that picks
// nothing is a problem that only a new or relabelled Server fixes, so it stalls; so does a picked
// Server of another namespace that does not allow the object's, and a picked Server that
// duplicates another (see admission).
func placeAll(ctx context.Context, c client.Reader, namespace string, selectors map[string]kamalv1.ServerSelector) (map[string][]string, *refProblem, error) {
	byNamespace := map[string][]kamalv1.Server{}
	adm := &admission{c: c, namespace: namespace}
	out := make(map[string][]string, len(selectors))
	for _, n := range sortedKeys(selectors) {
		sel := selectors[n]
		ns := selectorNamespace(namespace, sel)
		servers, listed := byNamespace[ns]
		if !listed {
			var l kamalv1.ServerList
			if err := c.List(ctx, &l, client.InNamespace(ns)); err != nil {
				return nil, nil, err
			}
			servers, byNamespace[ns] = l.Items, l.Items
		}
		picked, missing, err := placement.Select(sel, servers)
		if err != nil {
			return nil, &refProblem{Reason: kamalv1.ReasonInvalidSpec, Message: fmt.Sprintf("%s: %v", n, err)}, nil
		}
		if len(missing) > 0 {
			name := missing[0]
			if ns != namespace {
				name = ns + "/" + name
			}
			return nil, &refProblem{Reason: kamalv1.ReasonServerNotFound, Message: fmt.Sprintf("%s: Server %q not found", n, name)}, nil
		}
		if len(picked) == 0 {
			// Servers being deleted still need their containers removed, which a stall would
			// hold up; leavingServers reports them instead.
			if leaving, _ := placement.Leaving(sel, servers); len(leaving) > 0 {
				out[n] = nil
				continue
			}
			where := ""
			if ns != namespace {
				where = " in namespace " + ns
			}
			return nil, &refProblem{Reason: kamalv1.ReasonNoServers, Message: fmt.Sprintf("%s: no Server%s matches", n, where)}, nil
		}
		for _, name := range picked {
			srv := serverNamed(servers, name)
			problem, err := adm.refuse(ctx, srv)
			if err != nil {
				return nil, nil, err
			}
			if problem != nil {
				problem.Message = n + ": " + problem.Message
				return nil, problem, nil
			}
			out[n] = append(out[n], serverRef(namespace, srv))
		}
	}
	return out, nil, nil
}

func serverNamed(servers []kamalv1.Server, name string) *kamalv1.Server {
	for i := range servers {
		if servers[i].Name == name {
			return &servers[i]
		}
	}
	return nil
}

// leavingServers resolves each named selector to the Servers it picks but for their being
// deleted: what runs there is removed, and the object says so.
func leavingServers(ctx context.Context, c client.Reader, namespace string, selectors map[string]kamalv1.ServerSelector) (map[string][]string, error) {
	out := map[string][]string{}
	for n, sel := range selectors {
		ns := selectorNamespace(namespace, sel)
		var servers kamalv1.ServerList
		if err := c.List(ctx, &servers, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		leaving, _ := placement.Leaving(sel, servers.Items)
		for _, name := range leaving {
			out[n] = append(out[n], serverRef(namespace, serverNamed(servers.Items, name)))
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
	return "Servers " + joinFirst(names, ", ") + " are being deleted: what ran there is removed"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
