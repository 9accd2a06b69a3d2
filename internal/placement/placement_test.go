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

func TestLeaving(t *testing.T) {
	servers := []kamalv1.Server{
		server("web-1", map[string]string{"tier": "web"}, false),
		server("web-2", map[string]string{"tier": "web"}, true),
		server("web-3", map[string]string{"tier": "web"}, true),
		server("db-1", map[string]string{"tier": "db"}, true),
	}
	web := &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}
	for _, tc := range []struct {
		sel  kamalv1.ServerSelector
		want []string
	}{
		{kamalv1.ServerSelector{Selector: web}, []string{"web-2", "web-3"}},
		{kamalv1.ServerSelector{Names: []string{"web-3", "web-1", "nope"}}, []string{"web-3"}},
		{kamalv1.ServerSelector{Names: []string{"web-1"}}, nil},
	} {
		got, err := Leaving(tc.sel, servers)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%+v: %v %v, want %v", tc.sel, got, err, tc.want)
		}
	}
	if servers[1].DeletionTimestamp == nil {
		t.Error("Leaving changed the Servers it was given")
	}
}
