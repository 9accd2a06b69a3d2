package metrics

import (
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// dashboardFile is the Grafana dashboard built from these metrics.
const dashboardFile = "../../config/grafana/kamal-operator.json"

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's
	GridPos *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

var (
	// A metric name in PromQL: an identifier followed by a selector's brace or a range.
	selectorName = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{[]`)
	// Any name of this controller, wherever it stands (max(kamal_operator_x) has neither).
	ownName = regexp.MustCompile(`\bkamal_operator_[a-z0-9_]+\b`)
)

// metricOf is the registered metric a series name belongs to: itself, or for a histogram's
// _bucket, _sum and _count series, the histogram.
func metricOf(series string) (string, bool) {
	if KindOf(series) != "" {
		return series, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok && KindOf(base) == Histogram {
			return base, true
		}
	}
	return "", false
}

func TestMetricOf(t *testing.T) {
	for series, want := range map[string]string{
		"kamal_operator_rollouts_started_total":                    "kamal_operator_rollouts_started_total",
		"kamal_operator_rollout_duration_seconds_bucket":           "kamal_operator_rollout_duration_seconds",
		"kamal_operator_engine_api_request_duration_seconds_count": "kamal_operator_engine_api_request_duration_seconds",
		"kamal_operator_rollouts_started_total_count":              "", // not a histogram
		"kamal_operator_servers_bucket":                            "",
		"kamal_operator_no_such_metric":                            "",
	} {
		if got, _ := metricOf(series); got != want {
			t.Errorf("metricOf(%s) = %q, want %q", series, got, want)
		}
	}
}

// The dashboard is well-formed, every expression names only metrics this package registers,
// and every metric it registers is on the dashboard.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard without title or uid")
	}
	vars := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		for _, m := range selectorName.FindAllStringSubmatch(v.Definition, -1) {
			if _, ok := metricOf(m[1]); !ok && m[1] != "label_values" {
				t.Errorf("variable %s: unknown metric %s", v.Name, m[1])
			}
		}
	}
	used := map[string]bool{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q: no usable gridPos", p.Title)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Title == "" {
				t.Errorf("panel %d has no title", p.ID)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no targets", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
					t.Errorf("panel %q: a target without expr or refId", p.Title)
					continue
				}
				if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") || strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, "}") {
					t.Errorf("panel %q: unbalanced expression %s", p.Title, tg.Expr)
				}
				for _, m := range regexp.MustCompile(`\$\{?([a-zA-Z_]+)`).FindAllStringSubmatch(tg.Expr, -1) {
					if !vars[m[1]] {
						t.Errorf("panel %q: unknown variable $%s", p.Title, m[1])
					}
				}
				names := ownName.FindAllString(tg.Expr, -1)
				for _, m := range selectorName.FindAllStringSubmatch(tg.Expr, -1) {
					names = append(names, m[1])
				}
				if len(names) == 0 {
					t.Errorf("panel %q: expression names no metric: %s", p.Title, tg.Expr)
				}
				for _, n := range names {
					base, ok := metricOf(n)
					if !ok {
						t.Errorf("panel %q: %s is not a registered metric", p.Title, n)
						continue
					}
					used[base] = true
				}
			}
		}
	}
	walk(d.Panels)
	for _, n := range Names() {
		if !used[n] {
			t.Errorf("metric %s is on no panel", n)
		}
	}
	if len(used) == 0 {
		t.Fatal("no metric found in the dashboard")
	}
}

// Every metric is named with the prefix and registered in controller-runtime's registry.
func TestRegistered(t *testing.T) {
	if len(Names()) < 15 {
		t.Fatalf("only %d metrics: %v", len(Names()), Names())
	}
	for _, n := range Names() {
		if !strings.HasPrefix(n, Prefix) {
			t.Errorf("%s lacks the prefix %s", n, Prefix)
		}
	}
	for _, c := range collectors {
		if err := crmetrics.Registry.Register(c); !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			t.Errorf("a collector is not in controller-runtime's registry: %v", err)
		}
	}
}
