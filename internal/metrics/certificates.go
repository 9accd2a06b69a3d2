package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// certCollector exposes the served certificates' expiry, computed at scrape time so the
// seconds left never go stale between reconciles.
type certCollector struct {
	mu       sync.Mutex
	now      func() time.Time
	notAfter map[[2]string]time.Time
	expiry   *prometheus.Desc
	deadline *prometheus.Desc
}

var certificates = &certCollector{
	now:      time.Now,
	notAfter: map[[2]string]time.Time{},
	expiry: prometheus.NewDesc(Prefix+"certificate_expiry_seconds",
		"Seconds until the notAfter of the certificate a Deployment serves (negative once expired).",
		[]string{"namespace", "deployment"}, nil),
	deadline: prometheus.NewDesc(Prefix+"certificate_not_after_timestamp_seconds",
		"The notAfter of the certificate a Deployment serves, in seconds since the epoch.",
		[]string{"namespace", "deployment"}, nil),
}

// SetCertificate records the notAfter of the certificate a Deployment serves.
func SetCertificate(namespace, name string, notAfter time.Time) {
	certificates.mu.Lock()
	defer certificates.mu.Unlock()
	certificates.notAfter[[2]string{namespace, name}] = notAfter
}

// ForgetCertificate drops a Deployment's certificate (its ssl was turned off).
func ForgetCertificate(namespace, name string) { certificates.forget(namespace, name) }

func (c *certCollector) forget(namespace, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.notAfter, [2]string{namespace, name})
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.expiry
	ch <- c.deadline
}

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for k, t := range c.notAfter {
		ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, t.Sub(now).Seconds(), k[0], k[1])
		ch <- prometheus.MustNewConstMetric(c.deadline, prometheus.GaugeValue, float64(t.Unix()), k[0], k[1])
	}
}
