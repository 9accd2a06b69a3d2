// Package placement decides which Servers a role or accessory runs on. It is pure: callers pass
// the Servers of the namespace.
package placement

import (
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// Select returns the names of the Servers the selector picks, sorted, and the names it lists
// that do not exist. Servers being deleted are not picked.
func Select(sel kamalv1.ServerSelector, servers []kamalv1.Server) (picked, missing []string, err error) {
	exists := make(map[string]*kamalv1.Server, len(servers))
	for i := range servers {
		exists[servers[i].Name] = &servers[i]
	}
	switch {
	case len(sel.Names) > 0:
		for _, n := range sel.Names {
			s, ok := exists[n]
			switch {
			case !ok:
				missing = append(missing, n)
			case s.DeletionTimestamp == nil:
				picked = append(picked, n)
			}
		}
	case sel.Selector != nil:
		ls, err := metav1.LabelSelectorAsSelector(sel.Selector)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid server selector: %w", err)
		}
		for _, s := range servers {
			if s.DeletionTimestamp == nil && ls.Matches(labels.Set(s.Labels)) {
				picked = append(picked, s.Name)
			}
		}
	}
	sort.Strings(picked)
	sort.Strings(missing)
	return picked, missing, nil
}

// Leaving returns the names of the Servers the selector picks but for their being deleted,
// sorted. They get nothing new; what runs there is removed before they go.
func Leaving(sel kamalv1.ServerSelector, servers []kamalv1.Server) ([]string, error) {
	var deleting []kamalv1.Server
	for _, s := range servers {
		if s.DeletionTimestamp != nil {
			s.DeletionTimestamp = nil // a copy: Select picks it as if it stayed
			deleting = append(deleting, s)
		}
	}
	picked, _, err := Select(sel, deleting)
	return picked, err
}
