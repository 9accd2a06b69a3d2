package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/hosts"
)

var webHosts = []int{hostMain, hostOther, hostThird}

// fleetNS makes a namespace with the key Secret and Servers web-1..3 for hosts 1..3, Ready.
func fleetNS(t testing.TB) string {
	t.Helper()
	ns := newNamespace(t)
	keySecret(t, ns)
	var servers []*kamalv1.Server
	for i, h := range webHosts {
		s := serverFor(ns, fmt.Sprintf("web-%d", i+1), env.Host(h))
		createServer(t, s)
		servers = append(servers, s)
	}
	for _, s := range servers {
		waitReady(t, s)
	}
	return ns
}

func appDeployment(ns, name, tag string) *kamalv1.Deployment {
	return &kamalv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: kamalv1.DeploymentSpec{
			Image: env.Image("sampleapp:" + tag),
			Roles: map[string]kamalv1.Role{
				"web": {Servers: kamalv1.ServerSelector{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}}},
			},
			Proxy: &kamalv1.Proxy{
				Hosts:       []string{name + ".test"},
				Healthcheck: &kamalv1.ProxyHealthcheck{Interval: &metav1.Duration{Duration: 200 * time.Millisecond}},
			},
			Rollout: kamalv1.Rollout{
				DeployTimeout: &metav1.Duration{Duration: 15 * time.Second},
				DrainTimeout:  &metav1.Duration{Duration: 10 * time.Second},
				StopTimeout:   &metav1.Duration{Duration: 10 * time.Second},
			},
		},
	}
}

// createDeployment creates d and deletes it when the test ends, waiting until it is gone
// (its containers removed from the hosts) before the Servers go.
func createDeployment(t testing.TB, d *kamalv1.Deployment) {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		key := client.ObjectKeyFromObject(d)
		_ = k8s.Delete(ctx, &kamalv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}})
		framework.Eventually(t, reactWithin, func() error {
			if err := k8s.Get(ctx, key, &kamalv1.Deployment{}); err == nil {
				return fmt.Errorf("deployment %s still present", key)
			}
			return nil
		})
	})
}

func waitDeployment(t testing.TB, d *kamalv1.Deployment, typ string, st metav1.ConditionStatus, reason string, within time.Duration) *metav1.Condition {
	t.Helper()
	return waitFor(t, d, func() []metav1.Condition { return d.Status.Conditions }, func() any { return d.Status.Targets }, typ, st, reason, within)
}

func waitDeployed(t testing.TB, d *kamalv1.Deployment) {
	t.Helper()
	waitDeployment(t, d, kamalv1.ConditionReady, metav1.ConditionTrue, kamalv1.ReasonReconciled, readyWithin)
}

// setImage updates the Deployment's image (retrying on conflicts with status writes).
func update(t testing.TB, d *kamalv1.Deployment, mut func(*kamalv1.Deployment)) {
	t.Helper()
	updateObject(t, d, mut)
}

// versionsServed asks every web host's proxy for /version.
func versionsServed(hostName string) []string {
	var out []string
	for _, i := range webHosts {
		code, body, err := httpGet(env.Host(i), hostName, "/version")
		switch {
		case err != nil:
			out = append(out, "error: "+err.Error())
		case code != 200:
			out = append(out, fmt.Sprintf("HTTP %d", code))
		default:
			out = append(out, strings.TrimSpace(body))
		}
	}
	return out
}

func allServe(hostName, version string) func() error {
	return func() error {
		got := versionsServed(hostName)
		for _, v := range got {
			if v != version {
				return fmt.Errorf("served %v, want %s everywhere", got, version)
			}
		}
		return nil
	}
}

// load sends requests through hosts' proxies until stopped, at most max requests or for at
// most limit, and counts failures.
type load struct {
	ok, failed atomic.Int64
	firstErr   atomic.Value
	stop       chan struct{}
	wg         sync.WaitGroup
}

// loadSpec is what a load asks: GET /version for hostName, from workers round-robin over
// hosts (test host numbers). want, when set, is the body every answer must have; with
// freshConns, every other worker opens a new connection per request.
type loadSpec struct {
	hosts      []int
	hostName   string
	want       string
	freshConns bool
}

// startLoad loads every web host with hostName, on kept-alive connections.
func startLoad(hostName string, workers int, max int64, limit time.Duration) *load {
	return runLoad(loadSpec{hosts: webHosts, hostName: hostName}, workers, max, limit)
}

func runLoad(spec loadSpec, workers int, max int64, limit time.Duration) *load {
	l := &load{stop: make(chan struct{})}
	deadline := time.Now().Add(limit)
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tr := &http.Transport{DisableKeepAlives: spec.freshConns && w%2 == 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
			for i := w; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				if l.ok.Load()+l.failed.Load() >= max || time.Now().After(deadline) {
					return
				}
				h := env.Host(spec.hosts[i%len(spec.hosts)])
				req, _ := http.NewRequest(http.MethodGet, "http://"+h.Address()+"/version", nil)
				req.Host = spec.hostName
				resp, err := c.Do(req)
				if err == nil {
					body, _ := ioDiscard(resp)
					if resp.StatusCode == 200 && (spec.want == "" || strings.TrimSpace(body) == spec.want) {
						l.ok.Add(1)
						continue
					}
					err = fmt.Errorf("HTTP %d %q from %s", resp.StatusCode, body, h.Address())
				}
				l.failed.Add(1)
				l.firstErr.CompareAndSwap(nil, time.Now().UTC().Format("15:04:05.000")+" "+err.Error())
			}
		}()
	}
	return l
}

func (l *load) finish() (ok, failed int64, firstErr string) {
	close(l.stop)
	l.wg.Wait()
	if e := l.firstErr.Load(); e != nil {
		firstErr = e.(string)
	}
	return l.ok.Load(), l.failed.Load(), firstErr
}

func TestDeployAndRollWithZeroDowntime(t *testing.T) {
	ns := fleetNS(t)
	d := appDeployment(ns, "app", "v1")
	t0 := time.Now()
	createDeployment(t, d)
	waitDeployed(t, d)
	t.Logf("v1 deployed to 3 hosts in %s", time.Since(t0).Round(time.Millisecond))
	framework.Eventually(t, reactWithin, allServe("app.test", "v1"))
	if s := framework.Kstatus(t, d); s != status.CurrentStatus {
		t.Errorf("kstatus = %s, want Current", s)
	}
	if d.Status.ServersReady != "3/3" || d.Status.Image != d.Spec.Image || len(d.Status.History) != 1 {
		t.Errorf("status = %s image=%s history=%v", d.Status.ServersReady, d.Status.Image, d.Status.History)
	}
	for _, i := range webHosts {
		if names := containerNames(t, env.Host(i)); !contains(names, "app-web-v1") {
			t.Errorf("host %d runs %v, want app-web-v1", i, names)
		}
	}

	// v2, with a load generator on all three proxies.
	l := startLoad("app.test", 4, 200_000, 3*time.Minute)
	framework.Eventually(t, 10*time.Second, func() error {
		if l.ok.Load() < 200 {
			return fmt.Errorf("load not running yet")
		}
		return nil
	})
	t0 = time.Now()
	update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = env.Image("sampleapp:v2") })
	sawInProgress := false
	framework.Eventually(t, readyWithin, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		if framework.Kstatus(t, d) == status.InProgressStatus {
			sawInProgress = true
		}
		if !(sawInProgress && framework.Kstatus(t, d) == status.CurrentStatus) {
			return fmt.Errorf("kstatus %s, InProgress seen: %v", framework.Kstatus(t, d), sawInProgress)
		}
		return nil
	})
	took := time.Since(t0)
	framework.Eventually(t, reactWithin, allServe("app.test", "v2"))
	t.Logf("v1 -> v2 on 3 hosts in %s", took.Round(time.Millisecond))
	okN, failed, firstErr := l.finish()
	t.Logf("under load: %d requests ok, %d failed", okN, failed)
	if failed != 0 {
		t.Errorf("%d requests failed during the rollout (first: %s)", failed, firstErr)
		logProxies(t)
	}
	if okN < 3000 {
		t.Errorf("only %d requests were sent; the zero-downtime claim needs several thousand", okN)
	}
	if len(d.Status.History) != 2 || d.Status.History[0].Version != "v2" {
		t.Errorf("history = %+v", d.Status.History)
	}
	// The old version is stopped and retained for rollback.
	h := env.Host(hostMain)
	if st := hostExec(t, h, "docker", "inspect", "-f", "{{.State.Status}}", "app-web-v1"); st != "exited" {
		t.Errorf("app-web-v1 is %s, want exited (retained)", st)
	}
}

func TestInFlightRequestSurvivesTheSwitch(t *testing.T) {
	ns := fleetNS(t)
	d := appDeployment(ns, "slowapp", "v1")
	createDeployment(t, d)
	waitDeployed(t, d)
	h := env.Host(hostMain)

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+h.Address()+"/slow?ms=4000", nil)
		req.Host = "slowapp.test"
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := ioDiscard(resp)
		done <- result{code: resp.StatusCode, body: b}
	}()
	// The slow request has reached the app before the rollout starts.
	framework.Eventually(t, 10*time.Second, func() error {
		_, body, err := httpGet(h, "slowapp.test", "/inflight")
		if err != nil || strings.TrimSpace(body) == "0" {
			return fmt.Errorf("slow request not in flight yet (%q, %v)", body, err)
		}
		return nil
	})
	update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = env.Image("sampleapp:v2") })
	r := <-done
	if r.err != nil || r.code != 200 || !strings.Contains(r.body, "slept 4000 ms") {
		t.Errorf("in-flight request: %d %q %v", r.code, r.body, r.err)
	}
	waitDeployed(t, d)
	framework.Eventually(t, reactWithin, allServe("slowapp.test", "v2"))
}

func TestBrokenImageHaltsAndRollbackNeedsNoPull(t *testing.T) {
	ns := fleetNS(t)
	d := appDeployment(ns, "app", "v1")
	createDeployment(t, d)
	waitDeployed(t, d)
	v1IDs := map[int]string{}
	for _, i := range webHosts {
		v1IDs[i] = containerID(t, env.Host(i), "app-web-v1")
	}
	update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = env.Image("sampleapp:v2") })
	waitDeployed(t, d)
	framework.Eventually(t, reactWithin, allServe("app.test", "v2"))

	// The broken image never takes traffic; the rollout stops after the first batch.
	update(t, d, func(d *kamalv1.Deployment) {
		d.Spec.Image = env.Image("sampleapp:broken")
		d.Spec.Rollout.DeployTimeout = &metav1.Duration{Duration: 5 * time.Second}
	})
	c := waitDeployment(t, d, kamalv1.ConditionStalled, metav1.ConditionTrue, kamalv1.ReasonHealthCheckFailed, readyWithin)
	if !strings.Contains(c.Message, "health check GET /up") || !strings.Contains(c.Message, "503") {
		t.Errorf("Stalled message %q does not say what the health check saw", c.Message)
	}
	if r := meta.FindStatusCondition(d.Status.Conditions, kamalv1.ConditionReady); r == nil || r.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %+v", r)
	}
	if s := framework.Kstatus(t, d); s != status.FailedStatus {
		t.Errorf("kstatus = %s, want Failed", s)
	}
	if err := allServe("app.test", "v2")(); err != nil {
		t.Error(err)
	}
	broken := 0
	for _, i := range webHosts {
		for _, n := range strings.Fields(hostExec(t, env.Host(i), "docker", "ps", "--format", "{{.Names}}")) {
			if strings.Contains(n, "broken") {
				broken++
			}
		}
	}
	if broken != 0 {
		t.Errorf("%d broken containers left running", broken)
	}
	waitEventD(t, d, kamalv1.ReasonHealthCheckFailed)

	// Rolling back to v1 restarts the retained containers: same container, no pull.
	since := time.Now()
	update(t, d, func(d *kamalv1.Deployment) { d.Spec.Image = env.Image("sampleapp:v1") })
	waitDeployed(t, d)
	framework.Eventually(t, reactWithin, allServe("app.test", "v1"))
	for _, i := range webHosts {
		if id := containerID(t, env.Host(i), "app-web-v1"); id != v1IDs[i] {
			t.Errorf("host %d: app-web-v1 was recreated (%s, was %s)", i, id, v1IDs[i])
		}
		pulls := hostExec(t, env.Host(i), "docker", "events", "--since", fmt.Sprint(since.Unix()), "--until", fmt.Sprint(time.Now().Unix()), "--filter", "type=image", "--filter", "event=pull", "--format", "{{.Actor.ID}}")
		if pulls != "" {
			t.Errorf("host %d pulled during rollback: %s", i, pulls)
		}
	}
}

func waitEventD(t *testing.T, d *kamalv1.Deployment, reason string) {
	t.Helper()
	framework.Eventually(t, reactWithin, func() error { return framework.FindEvent(k8s, d.Namespace, d.Name, reason) })
}

func TestWorkerRoleAndTwoDeploymentsShareAHost(t *testing.T) {
	ns := fleetNS(t)
	a := appDeployment(ns, "alpha", "v1")
	a.Spec.Env = []kamalv1.EnvVar{{Name: "APP_VERSION", Value: "alpha-1"}}
	a.Spec.Roles["jobs"] = kamalv1.Role{Servers: kamalv1.ServerSelector{Names: []string{"web-1"}}, Cmd: []string{"worker"}}
	a.Spec.Rollout.ReadinessDelay = &metav1.Duration{Duration: time.Second}
	b := appDeployment(ns, "beta", "v1")
	b.Spec.Env = []kamalv1.EnvVar{{Name: "APP_VERSION", Value: "beta-1"}}
	createDeployment(t, a)
	createDeployment(t, b)
	waitDeployed(t, a)
	waitDeployed(t, b)
	framework.Eventually(t, reactWithin, allServe("alpha.test", "alpha-1"))
	framework.Eventually(t, reactWithin, allServe("beta.test", "beta-1"))
	if a.Status.ServersReady != "4/4" {
		t.Errorf("alpha servers ready %s, want 4/4 (3 web + 1 jobs)", a.Status.ServersReady)
	}
	h := env.Host(hostMain)
	if st := hostExec(t, h, "docker", "inspect", "-f", "{{.State.Status}}", "alpha-jobs-v1"); st != "running" {
		t.Errorf("alpha-jobs-v1 is %s", st)
	}
	// The worker is not routed: its role has no proxy.
	if code, _, _ := httpGet(h, "unknown.test", "/version"); code != 404 {
		t.Errorf("unknown host answered %d", code)
	}

	// Taking the jobs role out of the spec removes its container.
	update(t, a, func(d *kamalv1.Deployment) { delete(d.Spec.Roles, "jobs") })
	waitDeployed(t, a)
	if contains(containerNames(t, h), "alpha-jobs-v1") {
		t.Error("alpha-jobs-v1 still on the host after its role was removed")
	}
	waitEventD(t, a, "Removed")

	// Deleting beta leaves nothing of it on any host, and alpha untouched.
	ctx := context.Background()
	if err := k8s.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, reactWithin, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(b), &kamalv1.Deployment{}); err == nil {
			return fmt.Errorf("beta still present")
		}
		for _, i := range webHosts {
			for _, n := range containerNames(t, env.Host(i)) {
				if strings.HasPrefix(n, "beta-") {
					return fmt.Errorf("host %d still has %s", i, n)
				}
			}
			if code, _, _ := httpGet(env.Host(i), "beta.test", "/version"); code != 404 {
				return fmt.Errorf("host %d still routes beta.test (%d)", i, code)
			}
		}
		return nil
	})
	if err := allServe("alpha.test", "alpha-1")(); err != nil {
		t.Error(err)
	}
}

func TestSecretChangeRedeploysAndDriftIsRepaired(t *testing.T) {
	ns := fleetNS(t)
	ctx := context.Background()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-secrets"}, StringData: map[string]string{"WORD": "one"}}
	if err := k8s.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	d := appDeployment(ns, "app", "v1")
	d.Spec.Env = []kamalv1.EnvVar{{Name: "SECRET_WORD", ValueFrom: &kamalv1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "app-secrets"}, Key: "WORD"}}}}
	d.Spec.Rollout.MaxParallel = ptr.To(intstr.FromString("100%"))
	createDeployment(t, d)
	waitDeployed(t, d)
	word := func(want string) func() error {
		return func() error {
			for _, i := range webHosts {
				_, body, err := httpGet(env.Host(i), "app.test", "/env?name=SECRET_WORD")
				if err != nil || strings.TrimSpace(body) != want {
					return fmt.Errorf("host %d says %q (%v), want %q", i, body, err, want)
				}
			}
			return nil
		}
	}
	framework.Eventually(t, reactWithin, word("one"))

	sec.StringData = map[string]string{"WORD": "two"}
	if err := k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, readyWithin, word("two"))
	waitDeployed(t, d)
	// The value reached the container through the Engine API only: not in status or events.
	for _, c := range d.Status.Conditions {
		if strings.Contains(c.Message, "two") {
			t.Errorf("condition mentions the secret value: %+v", c)
		}
	}

	// A container removed by hand comes back, from the docker events, without a resync.
	h := env.Host(hostOther)
	var serving string
	for _, tgt := range d.Status.Targets {
		if tgt.Server == "web-2" {
			serving = tgt.Container
		}
	}
	if serving == "" {
		t.Fatalf("no container for web-2 in %+v", d.Status.Targets)
	}
	t0 := time.Now()
	hostExec(t, h, "docker", "rm", "-f", serving)
	framework.Eventually(t, reactWithin, func() error {
		code, body, err := httpGet(h, "app.test", "/env?name=SECRET_WORD")
		if err != nil || code != 200 || strings.TrimSpace(body) != "two" {
			return fmt.Errorf("web-2 answers %d %q %v", code, body, err)
		}
		return nil
	})
	t.Logf("container removed by hand: served again after %s", time.Since(t0).Round(time.Millisecond))
}

func ioDiscard(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for b.Len() < 1<<20 {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String(), nil
}

var _ = hosts.Prefix

// logProxies puts the proxies' logs in the test output, to explain a failed request.
func logProxies(t *testing.T) {
	for _, i := range webHosts {
		out, _ := env.Host(i).Exec(context.Background(), "bash", "-c", "docker logs --tail 80 kamal-proxy 2>&1 | grep -v '\"level\":\"info\"'")
		t.Logf("host %d kamal-proxy log:\n%s", i, out)
	}
}

func TestProxySettingsChangeRewritesTheRouteOnly(t *testing.T) {
	ns := fleetNS(t)
	d := appDeployment(ns, "routeapp", "v1")
	createDeployment(t, d)
	waitDeployed(t, d)
	ids := map[int]string{}
	for _, i := range webHosts {
		ids[i] = containerID(t, env.Host(i), "routeapp-web-v1")
	}

	update(t, d, func(d *kamalv1.Deployment) {
		d.Spec.Proxy.Hosts = append(d.Spec.Proxy.Hosts, "alias.test")
		d.Spec.Proxy.ResponseTimeout = &metav1.Duration{Duration: 45 * time.Second}
	})
	waitDeployed(t, d)
	framework.Eventually(t, reactWithin, allServe("alias.test", "v1"))
	framework.Eventually(t, reactWithin, allServe("routeapp.test", "v1"))
	for _, i := range webHosts {
		if id := containerID(t, env.Host(i), "routeapp-web-v1"); id != ids[i] {
			t.Errorf("host %d: a proxy setting replaced the container", i)
		}
	}
	waitEventD(t, d, "RouteUpdated")

	// Taken out of the proxy: the route goes, the containers stay.
	update(t, d, func(d *kamalv1.Deployment) { d.Spec.Proxy.Enabled = ptr.To(false) })
	waitDeployed(t, d)
	waitEventD(t, d, "RouteRemoved")
	for _, i := range webHosts {
		framework.Eventually(t, reactWithin, answers(env.Host(i), "routeapp.test", "/version", http.StatusNotFound, ""))
		if id := containerID(t, env.Host(i), "routeapp-web-v1"); id != ids[i] {
			t.Errorf("host %d: leaving the proxy replaced the container", i)
		}
	}
}
