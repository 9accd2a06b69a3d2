package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/images"
)

// portProbe asks every web host's port 80 for hostName's /version, each time on a new
// connection, every few milliseconds, and records when it got no answer.
type portProbe struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples map[int][]probeSample
}

type probeSample struct {
	start, at time.Time // sent, answered (or failed)
	ok        bool
	why       string // of a failure: "refused", "HTTP 502", …
}

// outage is a time a host's proxy did not answer: from its last answer before to its first
// answer after, as a client saw it (so it overstates by up to one probe interval); failed is
// when the requests that failed were sent and ended.
type outage struct {
	host           int
	from, to       time.Time
	failedFrom     time.Time
	failedTo       time.Time
	failures       int
	slowestSuccess time.Duration
	kinds          map[string]int // failures by why
	lastWhy        string
	lastFailSent   time.Time
}

func (o outage) length() time.Duration { return o.to.Sub(o.from) }

const probeEvery = 5 * time.Millisecond

func startPortProbe(hostName string) *portProbe {
	p := &portProbe{stop: make(chan struct{}), samples: map[int][]probeSample{}}
	for _, i := range webHosts {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			h := env.Host(i)
			for {
				select {
				case <-p.stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, "http://"+h.Address()+"/version", nil)
				req.Host = hostName
				start := time.Now()
				resp, err := c.Do(req)
				ok, why := err == nil, ""
				switch {
				case err != nil && strings.Contains(err.Error(), "connection refused"):
					why = "refused"
				case err != nil && strings.Contains(err.Error(), "reset by peer"):
					why = "reset"
				case err != nil && strings.Contains(err.Error(), "EOF"):
					why = "EOF"
				case err != nil:
					why = err.Error()
				default:
					_, _ = ioDiscard(resp)
					ok = resp.StatusCode == 200
					why = fmt.Sprintf("HTTP %d", resp.StatusCode)
				}
				p.mu.Lock()
				p.samples[i] = append(p.samples[i], probeSample{start, time.Now(), ok, why})
				p.mu.Unlock()
				time.Sleep(probeEvery)
			}
		}()
	}
	return p
}

// finish stops the probe and returns the outages of every host in the order they began.
func (p *portProbe) finish() []outage {
	close(p.stop)
	p.wg.Wait()
	var out []outage
	for _, i := range webHosts {
		var cur *outage
		var lastOK time.Time
		for _, s := range p.samples[i] {
			switch {
			case !s.ok && cur == nil:
				cur = &outage{host: i, from: lastOK, failures: 1, failedFrom: s.start, failedTo: s.at, kinds: map[string]int{s.why: 1}, lastWhy: s.why, lastFailSent: s.start}
				if lastOK.IsZero() {
					cur.from = s.start
				}
			case !s.ok:
				cur.failures++
				cur.failedTo = s.at
				cur.kinds[s.why]++
				cur.lastWhy, cur.lastFailSent = s.why, s.start
			case cur != nil:
				cur.to = s.at
				cur.slowestSuccess = s.at.Sub(s.start)
				out = append(out, *cur)
				cur = nil
			}
			if s.ok {
				lastOK = s.at
			}
		}
		if cur != nil {
			cur.to = time.Now()
			out = append(out, *cur)
		}
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j].from.Before(out[i].from) {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// restartController stops the controllers and starts them again with proxyImage as the
// default proxy image, as a new --proxy-image would.
func restartController(t *testing.T, proxyImage string) {
	t.Helper()
	mgr.Stop()
	var err error
	if mgr, err = framework.StartManager(cp, managerOptions(proxyImage)); err != nil {
		t.Fatal(err)
	}
}

func TestProxyRolloutGoesHostByHostAndHaltsOnABrokenImage(t *testing.T) {
	tStart := time.Now()
	ns := fleetNS(t)
	d := appDeployment(ns, "app", "v1")
	createDeployment(t, d)
	waitDeployed(t, d)
	framework.Eventually(t, reactWithin, allServe("app.test", "v1"))
	servers := make([]*kamalv1.Server, len(webHosts))
	for i := range webHosts {
		servers[i] = &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("web-%d", i+1)}}
	}
	good, broken := env.ProxyImage(), env.Image(images.ProxyRepo+":"+images.BrokenProxyTag)
	current := good
	t.Cleanup(func() {
		if current != good { // before the earlier cleanups, which need the controllers
			restartController(t, good)
		}
	})
	proxyIDs := func() []string {
		var ids []string
		for _, i := range webHosts {
			ids = append(ids, containerID(t, env.Host(i), proxy.ContainerName))
		}
		return ids
	}
	noneAside := func() {
		t.Helper()
		for _, i := range webHosts {
			names := containerNames(t, env.Host(i))
			for _, leftover := range []string{proxy.AsideName, proxy.FailedName} {
				if contains(names, leftover) {
					t.Errorf("host %d still has %s", i, leftover)
				}
			}
		}
	}
	t.Logf("3 Servers and the app ready in %s", time.Since(tStart).Round(time.Millisecond))

	// 1. New proxy settings (its log options) roll host by host, web-1 first; each host's
	// ports are closed once, and never two hosts' at the same time.
	t1 := time.Now()
	firstIDs := proxyIDs()
	probe := startPortProbe("app.test")
	for _, s := range servers {
		updateObject(t, s, func(s *kamalv1.Server) {
			s.Spec.Proxy.Logging = &kamalv1.Logging{Driver: "json-file", Options: map[string]string{"max-size": "20m"}}
		})
	}
	for _, s := range servers {
		waitCondition(t, s, kamalv1.ConditionProxyUpgrade, metav1.ConditionFalse, kamalv1.ReasonProxyUpToDate, reactWithin)
		waitReady(t, s)
		waitEvent(t, ns, s.Name, "ProxyUpgraded")
	}
	time.Sleep(100 * time.Millisecond)
	outages := probe.finish()
	t.Logf("rolled new proxy settings over 3 hosts in %s", time.Since(t1).Round(time.Millisecond))
	ids := proxyIDs()
	for i, h := range webHosts {
		if ids[i] == firstIDs[i] {
			t.Errorf("web-%d: the proxy was not replaced", i+1)
		}
		// On trial a new proxy is not restarted by Docker; once it serves, it is.
		if p := hostExec(t, env.Host(h), "docker", "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", proxy.ContainerName); p != "unless-stopped" {
			t.Errorf("web-%d: the new proxy's restart policy is %q", i+1, p)
		}
	}
	if len(outages) != len(webHosts) {
		t.Fatalf("outages %+v, want one per host", outages)
	}
	for k, o := range outages {
		if o.host != webHosts[k] {
			t.Errorf("outage %d on host %d, want host %d (order web-1, web-2, web-3)", k, o.host, webHosts[k])
		}
		// Requests failing on two hosts at once would mean two proxies down at once. (Sent
		// times, with 100 ms for a probe goroutine that a loaded machine runs late.)
		if prev := outages[max(k-1, 0)]; k > 0 && o.failedFrom.Add(100*time.Millisecond).Before(prev.lastFailSent) {
			t.Errorf("host %d failed requests sent from %s while host %d still failed one sent at %s", o.host, o.failedFrom.Format("15:04:05.000"),
				prev.host, prev.lastFailSent.Format("15:04:05.000"))
		}
		// A bound against a replacement that hangs, not a speed claim: the outage is logged
		// (about 2 s on an idle machine) and measured by the benchmarks; a busy 2-core
		// machine has stretched it to 6 s.
		if o.length() > 15*time.Second {
			t.Errorf("host %d down for %s", o.host, o.length())
		}
		t.Logf("web-%d: no answer for %s as clients saw it (requests failing for %s: %v, the last %s; the first answer after took %s); the controller says: %s",
			k+1, o.length().Round(time.Millisecond), o.failedTo.Sub(o.failedFrom).Round(time.Millisecond), o.kinds, o.lastWhy,
			o.slowestSuccess.Round(time.Millisecond), framework.EventNote(k8s, ns, servers[k].Name, "ProxyUpgraded"))
	}
	noneAside()

	// 2. A proxy image that cannot start, as a new --proxy-image: web-1 (first in order) tries
	// it, gets its old proxy back and halts the rollout; web-2 and web-3 are held and keep
	// theirs. All three serve throughout but for web-1's one try.
	t2 := time.Now()
	probe = startPortProbe("app.test")
	restartController(t, broken)
	current = broken
	c := waitCondition(t, servers[0], kamalv1.ConditionProxyUpgrade, metav1.ConditionFalse, kamalv1.ReasonProxyUpgradeFailed, reactWithin)
	for _, want := range []string{broken, "exit code 1", "this test image cannot start", "restored"} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("web-1 ProxyUpgrade message %q lacks %q", c.Message, want)
		}
	}
	t.Logf("web-1: %s (%s after the restart)", c.Message, time.Since(t2).Round(time.Millisecond))
	waitCondition(t, servers[0], kamalv1.ConditionReady, metav1.ConditionFalse, kamalv1.ReasonProxyUpgradeFailed, time.Second)
	waitCondition(t, servers[0], kamalv1.ConditionProxyReady, metav1.ConditionTrue, kamalv1.ReasonProxyRunning, time.Second)
	if s := framework.Kstatus(t, servers[0]); s != status.FailedStatus {
		t.Errorf("web-1 kstatus = %s, want Failed", s)
	}
	for _, s := range servers[1:] {
		c := waitCondition(t, s, kamalv1.ConditionProxyUpgrade, metav1.ConditionFalse, kamalv1.ReasonProxyUpgradeHeld, reactWithin)
		if !strings.Contains(c.Message, ns+"/web-1") || !strings.Contains(c.Message, "halted") {
			t.Errorf("%s ProxyUpgrade message %q does not say the rollout halted on %s/web-1", s.Name, c.Message, ns)
		}
		waitCondition(t, s, kamalv1.ConditionReady, metav1.ConditionFalse, kamalv1.ReasonProxyUpgradeHeld, time.Second)
	}
	framework.Eventually(t, reactWithin, allServe("app.test", "v1"))
	failedTry := probe.finish()
	if got := proxyIDs(); strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("proxy containers %v, want %v unchanged (web-1's restored, the others untouched)", got, ids)
	}
	for _, o := range failedTry {
		if o.host != hostMain {
			t.Errorf("host %d was down for %s though it is held", o.host, o.length())
		} else {
			t.Logf("web-1: no answer for %s during the failed try (%v)", o.length().Round(time.Millisecond), o.kinds)
		}
	}
	for _, s := range servers {
		if s.Status.ProxyImage != good {
			t.Errorf("%s status.proxyImage = %q, want %q", s.Name, s.Status.ProxyImage, good)
		}
	}
	noneAside()
	waitEvent(t, ns, "web-1", kamalv1.ReasonProxyUpgradeFailed)

	// The halt is in the Servers' status: a restarted controller keeps it and does not retry.
	// And a controller that died mid-replacement (here web-2's, with its old proxy set aside
	// and stopped) puts the old proxy back when it starts again.
	started := hostExec(t, env.Host(hostMain), "docker", "inspect", "-f", "{{.State.StartedAt}}", proxy.ContainerName)
	mgr.Stop()
	h2 := env.Host(hostOther)
	hostExec(t, h2, "docker", "rename", proxy.ContainerName, proxy.AsideName)
	hostExec(t, h2, "docker", "stop", proxy.AsideName)
	restartController(t, broken)
	t4 := time.Now()
	waitEvent(t, ns, "web-2", "ProxyRestored")
	framework.Eventually(t, reactWithin, answers(h2, "app.test", "/version", 200, "v1"))
	t.Logf("web-2: a replacement cut off mid-way was settled %s after the controller came back", time.Since(t4).Round(time.Millisecond))
	if got := containerID(t, h2, proxy.ContainerName); got != ids[1] {
		t.Errorf("web-2 runs proxy %s, want its old one %s back", got, ids[1])
	}
	time.Sleep(2 * time.Second) // every Server reconciled by the new controller
	if now := hostExec(t, env.Host(hostMain), "docker", "inspect", "-f", "{{.State.StartedAt}}", proxy.ContainerName); now != started {
		t.Errorf("web-1's proxy restarted (%s, was %s): the failed upgrade was retried", now, started)
	}
	waitCondition(t, servers[0], kamalv1.ConditionProxyUpgrade, metav1.ConditionFalse, kamalv1.ReasonProxyUpgradeFailed, time.Second)
	for _, s := range servers[1:] {
		waitCondition(t, s, kamalv1.ConditionProxyUpgrade, metav1.ConditionFalse, kamalv1.ReasonProxyUpgradeHeld, time.Second)
	}
	noneAside()

	// 3. The good image again: nothing to replace, every Server Ready, the halt lifted.
	t3 := time.Now()
	restartController(t, good)
	current = good
	for _, s := range servers {
		waitReady(t, s)
		waitCondition(t, s, kamalv1.ConditionProxyUpgrade, metav1.ConditionFalse, kamalv1.ReasonProxyUpToDate, time.Second)
		if s.Status.ProxyFailedHash != "" {
			t.Errorf("%s status.proxyFailedHash = %q after the good image", s.Name, s.Status.ProxyFailedHash)
		}
		if c := meta.FindStatusCondition(s.Status.Conditions, kamalv1.ConditionStalled); c != nil {
			t.Errorf("%s still Stalled: %+v", s.Name, c)
		}
	}
	t.Logf("every Server Ready again %s after the good image came back", time.Since(t3).Round(time.Millisecond))
	if got := proxyIDs(); strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("proxy containers %v, want %v unchanged", got, ids)
	}
	framework.Eventually(t, reactWithin, allServe("app.test", "v1"))
	t.Logf("test body took %s", time.Since(tStart).Round(time.Millisecond))
}
