package placement

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func server(name string, lbls map[string]string, deleting bool) kamalv1.Server {
	s := kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	if deleting {
		now := metav1.Now()
		s.DeletionTimestamp = &now
	}
	return s
}

func TestSelect(t *testing.T) {
	servers := []kamalv1.Server{
		server("web-2", map[string]string{"tier": "web"}, false),
		server("web-1", map[string]string{"tier": "web"}, false),
		server("db-1", map[string]string{"tier": "db"}, false),
		server("web-3", map[string]string{"tier": "web"}, true),
	}
	cases := []struct {
		name            string
		sel             kamalv1.ServerSelector
		picked, missing []string
		wantErr         bool
	}{
		{name: "names keep only existing", sel: kamalv1.ServerSelector{Names: []string{"web-1", "nope", "db-1"}}, picked: []string{"db-1", "web-1"}, missing: []string{"nope"}},
		{name: "selector sorted, skips deleting", sel: kamalv1.ServerSelector{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}}, picked: []string{"web-1", "web-2"}},
		{name: "deleting named server not picked nor missing", sel: kamalv1.ServerSelector{Names: []string{"web-3"}}},
		{name: "expression", sel: kamalv1.ServerSelector{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"web"}}}}}, picked: []string{"db-1"}},
		{name: "bad operator", sel: kamalv1.ServerSelector{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Near"}}}}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			picked, missing, err := Select(tc.sel, servers)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(picked, tc.picked) || !reflect.DeepEqual(missing, tc.missing) {
				t.Errorf("picked %v missing %v, want %v %v", picked, missing, tc.picked, tc.missing)
			}
		})
	}
}
