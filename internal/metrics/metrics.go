// Package metrics defines the controller's Prometheus metrics and registers them in
// controller-runtime's registry, so the manager's metrics endpoint serves them next to its own.
//
// Labels stay bounded: namespaces, Deployment names, target states, condition reasons and
// Engine API operations (method and path template). No container id, image tag, host address
// or request path is ever a label value.
package metrics

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Prefix starts the name of every metric of the controller.
const Prefix = "kamal_operator_"

// Kind says how a metric is exposed: a histogram's series end in _bucket, _sum and _count.
type Kind string

const (
	Counter   Kind = "counter"
	Gauge     Kind = "gauge"
	Histogram Kind = "histogram"
)

var (
	registered = map[string]Kind{}
	collectors []prometheus.Collector
)

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: Prefix + name, Help: help}, labels)
	add(Prefix+name, Counter, v)
	return v
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: Prefix + name, Help: help}, labels)
	add(Prefix+name, Gauge, v)
	return v
}

func histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: Prefix + name, Help: help, Buckets: buckets}, labels)
	add(Prefix+name, Histogram, v)
	return v
}

func add(name string, k Kind, c prometheus.Collector) {
	registered[name] = k
	collectors = append(collectors, c)
}

// The metrics. Their meaning and labels are listed in docs/metrics.md.
var (
	rolloutsStarted = counterVec("rollouts_started_total",
		"Rollouts of a new revision whose first batch this controller started.", "namespace", "deployment")
	rolloutsCompleted = counterVec("rollouts_completed_total",
		"Rollouts that reached Ready on every target.", "namespace", "deployment")
	rolloutsHalted = counterVec("rollouts_halted_total",
		"Rollouts halted: a new container failed its health check (reason health_check) or the release command failed (reason release).",
		"namespace", "deployment", "reason")
	rolloutDuration = histogramVec("rollout_duration_seconds",
		"Time from a rollout's first batch start to the Deployment being Ready on every target.",
		[]float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600}, "namespace", "deployment")
	targets = gaugeVec("deployment_targets",
		"Targets (a role on a server) of a Deployment by state.", "namespace", "deployment", "state")
	driftRepairs = counterVec("drift_repairs_total",
		"Deploys started to bring back a container of a revision already rolled out (it died, was stopped or removed).",
		"namespace", "deployment")
	healthCheckFailures = counterVec("health_check_failures_total",
		"New containers that never became healthy within deployTimeout, or that the proxy could not reach.", "namespace", "deployment")
	routeSwitches = counterVec("route_switches_total",
		"Proxy route switches to a new container.", "namespace", "deployment")
	servers = gaugeVec("servers",
		"Servers by their Ready condition's status and reason.", "namespace", "status", "reason")
	sshDials = counterVec("ssh_dials_total",
		"SSH connections dialled, by result: ok, timeout, auth_failed, host_key_rejected or error.", "result")
	sshDialDuration = histogramVec("ssh_dial_duration_seconds",
		"Time to dial and authenticate an SSH connection, failures included.",
		[]float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30})
	engineRequests = counterVec("engine_api_requests_total",
		"Docker Engine API requests answered, by operation (method and path template) and status class.", "operation", "code")
	engineDuration = histogramVec("engine_api_request_duration_seconds",
		"Time from sending an Engine API request to its response headers, by operation.",
		[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "operation")
)

func init() {
	collectors = append(collectors, certificates)
	registered[Prefix+"certificate_expiry_seconds"] = Gauge
	registered[Prefix+"certificate_not_after_timestamp_seconds"] = Gauge
	crmetrics.Registry.MustRegister(collectors...)
}

// Names lists every metric the package registers, with its kind, sorted by name.
func Names() []string {
	out := make([]string, 0, len(registered))
	for n := range registered {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// KindOf is the kind of a registered metric ("" for a name the package does not register).
func KindOf(name string) Kind { return registered[name] }

// ForgetDeployment drops every series of a Deployment that is gone.
func ForgetDeployment(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "deployment": name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		rolloutsStarted, rolloutsCompleted, rolloutsHalted, targets, driftRepairs, healthCheckFailures, routeSwitches,
	} {
		v.DeletePartialMatch(l)
	}
	rolloutDuration.DeletePartialMatch(l)
	rollouts.forget(namespace, name)
	certificates.forget(namespace, name)
}
