package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

// scraper reads the manager's metrics the way Prometheus does: over HTTP from
// controller-runtime's metrics server, which serves its registry (the suite's manager runs in
// this process with the endpoint off; this one serves the same registry on a loopback port).
type scraper struct{ url string }

func startMetricsServer(t *testing.T) *scraper {
	t.Helper()
	srv, err := metricsserver.NewServer(metricsserver.Options{BindAddress: "127.0.0.1:0"}, cp.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	var addr string
	framework.Eventually(t, 10*time.Second, func() error {
		if addr = srv.(interface{ GetBindAddr() string }).GetBindAddr(); addr == "" {
			return fmt.Errorf("metrics server not listening yet")
		}
		return nil
	})
	return &scraper{url: "http://" + addr + "/metrics"}
}

// samples is one scrape: series (name and labels) to value; a histogram's series are its
// _count and _sum.
type samples map[string]map[string]float64

func (s *scraper) scrape(t *testing.T) samples {
	t.Helper()
	resp, err := http.Get(s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", s.url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := samples{}
	for name, f := range families {
		for _, m := range f.Metric {
			key := labelKey(m.Label)
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out.put(name, key, m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				out.put(name, key, m.GetGauge().GetValue())
			case dto.MetricType_HISTOGRAM:
				out.put(name+"_count", key, float64(m.GetHistogram().GetSampleCount()))
				out.put(name+"_sum", key, m.GetHistogram().GetSampleSum())
			}
		}
	}
	return out
}

func (s samples) put(name, key string, v float64) {
	if s[name] == nil {
		s[name] = map[string]float64{}
	}
	s[name][key] = v
}

func labelKey(ls []*dto.LabelPair) string {
	key := ""
	for _, l := range ls { // the exposition sorts labels by name
		key += l.GetName() + "=" + l.GetValue() + ","
	}
	return key
}

// get is the value of the series of name with exactly these labels ("k=v" pairs, in label name
// order), 0 when absent.
func (s samples) get(name string, labels ...string) float64 {
	key := ""
	for _, l := range labels {
		key += l + ","
	}
	return s[name][key]
}

// sum adds the values of every series of name.
func (s samples) sum(name string) float64 {
	total := 0.0
	for _, v := range s[name] {
		total += v
	}
	return total
}

// The manager's metrics move as a rollout, a drift repair and a halted rollout happen: counted
// once per rollout, timed, with the Engine API calls and SSH dials they took.
func TestMetricsOfRollouts(t *testing.T) {
	m := startMetricsServer(t)
	before := m.scrape(t)

	ns := fleetNS(t)
	d := appDeployment(ns, "metrics", "v1")
	d.Spec.Rollout.MaxParallel = ptr.To(intstr.FromString("100%"))
	createDeployment(t, d)
	waitDeployed(t, d)
	dl := []string{"deployment=metrics", "namespace=" + ns}

	t.Run("first rollout", func(t *testing.T) {
		s := m.scrape(t)
		if got := s.get("kamal_operator_rollouts_started_total", dl...); got != 1 {
			t.Errorf("rollouts started = %v, want 1", got)
		}
		if got := s.get("kamal_operator_rollouts_completed_total", dl...); got != 1 {
			t.Errorf("rollouts completed = %v, want 1", got)
		}
		if n, sum := s.get("kamal_operator_rollout_duration_seconds_count", dl...), s.get("kamal_operator_rollout_duration_seconds_sum", dl...); n != 1 || sum <= 0 {
			t.Errorf("rollout duration: count %v sum %v, want 1 and > 0", n, sum)
		}
		if got := s.get("kamal_operator_deployment_targets", "deployment=metrics", "namespace="+ns, "state=Running"); got != 3 {
			t.Errorf("Running targets = %v, want 3", got)
		}
		if got := s.get("kamal_operator_deployment_targets", "deployment=metrics", "namespace="+ns, "state=Pending"); got != 0 {
			t.Errorf("Pending targets = %v, want 0", got)
		}
		if got := s.get("kamal_operator_route_switches_total", dl...); got != 3 {
			t.Errorf("route switches = %v, want 3", got)
		}
		if got := s.get("kamal_operator_servers", "namespace="+ns, "reason="+kamalv1.ReasonReconciled, "status=True"); got != 3 {
			t.Errorf("Ready servers of the namespace = %v, want 3", got)
		}
		// Three new Servers: three new connections.
		if got := s.get("kamal_operator_ssh_dials_total", "result=ok") - before.get("kamal_operator_ssh_dials_total", "result=ok"); got < 3 {
			t.Errorf("ssh dials ok grew by %v, want at least 3", got)
		}
		if got := s.sum("kamal_operator_ssh_dial_duration_seconds_count") - before.sum("kamal_operator_ssh_dial_duration_seconds_count"); got < 3 {
			t.Errorf("ssh dial durations grew by %v, want at least 3", got)
		}
		for _, op := range []string{"POST /containers/create", "POST /containers/{id}/start"} {
			if got := s.get("kamal_operator_engine_api_requests_total", "code=2xx", "operation="+op) - before.get("kamal_operator_engine_api_requests_total", "code=2xx", "operation="+op); got < 3 {
				t.Errorf("%s requests grew by %v, want at least 3", op, got)
			}
			if got := s.get("kamal_operator_engine_api_request_duration_seconds_count", "operation="+op) - before.get("kamal_operator_engine_api_request_duration_seconds_count", "operation="+op); got < 3 {
				t.Errorf("%s latency observations grew by %v, want at least 3", op, got)
			}
		}
		// Operations are templates: no container id or name in any label.
		for key := range s["kamal_operator_engine_api_requests_total"] {
			for _, c := range d.Status.Targets {
				if c.Container != "" && strings.Contains(key, c.Container) {
					t.Errorf("a container name in labels: %s", key)
				}
			}
		}
	})

	t.Run("drift repair is no rollout", func(t *testing.T) {
		h := env.Host(hostOther)
		hostExec(t, h, "docker", "rm", "-f", "metrics-web-v1")
		framework.Eventually(t, reactWithin, func() error {
			if got := m.scrape(t).get("kamal_operator_drift_repairs_total", dl...); got < 1 {
				return fmt.Errorf("drift repairs = %v", got)
			}
			return nil
		})
		framework.Eventually(t, reactWithin, allServe("metrics.test", "v1"))
		waitDeployed(t, d)
		s := m.scrape(t)
		if got := s.get("kamal_operator_rollouts_started_total", dl...); got != 1 {
			t.Errorf("rollouts started = %v after a repair, want 1", got)
		}
		if got := s.get("kamal_operator_rollout_duration_seconds_count", dl...); got != 1 {
			t.Errorf("rollout durations = %v after a repair, want 1", got)
		}
	})

	t.Run("second rollout", func(t *testing.T) {
		update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = env.Image("sampleapp:v2") })
		framework.Eventually(t, readyWithin, func() error {
			if got := m.scrape(t).get("kamal_operator_rollouts_completed_total", dl...); got != 2 {
				return fmt.Errorf("rollouts completed = %v", got)
			}
			return nil
		})
		s := m.scrape(t)
		if got := s.get("kamal_operator_rollouts_started_total", dl...); got != 2 {
			t.Errorf("rollouts started = %v, want 2", got)
		}
		if got := s.get("kamal_operator_rollout_duration_seconds_count", dl...); got != 2 {
			t.Errorf("rollout durations = %v, want 2", got)
		}
		if got := s.get("kamal_operator_route_switches_total", dl...); got < 6 {
			t.Errorf("route switches = %v, want at least 6", got)
		}
	})

	t.Run("halted rollout", func(t *testing.T) {
		update(t, d, func(d *kamalv1.Deployment) {
			d.Spec.Image = env.Image("sampleapp:broken")
			d.Spec.Rollout.DeployTimeout = &metav1.Duration{Duration: 3 * time.Second}
		})
		waitDeployment(t, d, kamalv1.ConditionStalled, metav1.ConditionTrue, kamalv1.ReasonHealthCheckFailed, readyWithin)
		s := m.scrape(t)
		if got := s.get("kamal_operator_rollouts_halted_total", "deployment=metrics", "namespace="+ns, "reason=health_check"); got != 1 {
			t.Errorf("rollouts halted = %v, want 1", got)
		}
		if got := s.get("kamal_operator_health_check_failures_total", dl...); got < 1 {
			t.Errorf("health check failures = %v, want at least 1", got)
		}
		if got := s.get("kamal_operator_rollouts_completed_total", dl...); got != 2 {
			t.Errorf("rollouts completed = %v, want still 2", got)
		}
	})

	t.Run("deletion drops the series", func(t *testing.T) {
		if err := k8s.Delete(context.Background(), d); client.IgnoreNotFound(err) != nil {
			t.Fatal(err)
		}
		framework.Eventually(t, reactWithin, func() error {
			s := m.scrape(t)
			for _, name := range []string{"kamal_operator_rollouts_started_total", "kamal_operator_deployment_targets"} {
				for key := range s[name] {
					if strings.Contains(key, "namespace="+ns+",") {
						return fmt.Errorf("%s still has %s", name, key)
					}
				}
			}
			return nil
		})
	})
}
