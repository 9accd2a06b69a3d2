package plugin

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// rollingOut is dokuya halfway from v1 to v2: web done on web-1, health-checking on web-2;
// jobs still on v1.
func rollingOut() *kamalv1.Deployment {
	return &kamalv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "dokuya", Namespace: "shop", Generation: 4, UID: "u1"},
		Spec: kamalv1.DeploymentSpec{
			Image:       "registry.example.com/dokuya:v2",
			PrimaryRole: "web",
			Roles:       map[string]kamalv1.Role{"web": {}, "jobs": {}},
		},
		Status: kamalv1.DeploymentStatus{
			CommonStatus: kamalv1.CommonStatus{ObservedGeneration: 4, Conditions: []metav1.Condition{
				{Type: "Ready", Status: "False", Reason: "RollingOut", Message: "rolling out v2:\n1/4 targets", LastTransitionTime: ago(40 * time.Second)},
				{Type: "Reconciling", Status: "True", Reason: "RollingOut", Message: "rolling out v2", LastTransitionTime: ago(40 * time.Second)},
			}},
			Image: "registry.example.com/dokuya:v1", Version: "v1", ServersReady: "1/4",
			Targets: []kamalv1.TargetStatus{
				{Server: "web-2", Role: "web", Version: "v1", Container: "dokuya-web-v1", State: "HealthChecking", Message: "waiting for dokuya-web-v2 to answer /up"},
				{Server: "web-1", Role: "web", Version: "v2", Container: "dokuya-web-v2", State: "Running"},
				{Server: "web-1", Role: "jobs", Version: "v1", Container: "dokuya-jobs-v1", State: "Running"},
				{Server: "web-2", Role: "jobs", State: "Unreachable", Message: "dial tcp 10.0.0.2:22: i/o timeout"},
			},
		},
	}
}

func event(typ, reason, msg string, at time.Duration) corev1.Event {
	return corev1.Event{Type: typ, Reason: reason, Message: msg, EventTime: metav1.NewMicroTime(now.Add(-at))}
}

func TestRenderStatusOfADeploymentRollingOut(t *testing.T) {
	events := []corev1.Event{
		event("Normal", "Started", "started dokuya-web-v2 on web-1", 30*time.Second),
		event("Normal", "RolloutStarted", "rolling out registry.example.com/dokuya:v2", 40*time.Second),
		{Type: "Warning", Reason: "Unreachable", Message: "web-2: dial tcp 10.0.0.2:22: i/o timeout", Count: 3, LastTimestamp: ago(5 * time.Second)},
	}
	want := `Name:       dokuya
Namespace:  shop
Kind:       Deployment
Status:     ◌ Progressing
Message:    rolling out v2: 1/4 targets
Image:      registry.example.com/dokuya:v2 (serving: registry.example.com/dokuya:v1)
Servers:    1/4 ready

NAME           KIND        STATUS            VERSION  INFO
⟳ dokuya       Deployment  ◌ Progressing     v1
├──# web       Role        ◌ 1/2
│  ├──□ web-1  Server      ✔ Running         v2       dokuya-web-v2
│  └──□ web-2  Server      ◌ HealthChecking  v1       dokuya-web-v1: waiting for dokuya-web-v2 to answer /up
└──# jobs      Role        ◌ 0/2
   ├──□ web-1  Server      ✔ Running         v1       dokuya-jobs-v1
   └──□ web-2  Server      ⚠ Unreachable              dial tcp 10.0.0.2:22: i/o timeout

Conditions:
  TYPE         STATUS  REASON      AGE  MESSAGE
  Ready        False   RollingOut  40s  rolling out v2: 1/4 targets
  Reconciling  True    RollingOut  40s  rolling out v2

Events:
  AGE      TYPE     REASON          MESSAGE
  40s      Normal   RolloutStarted  rolling out registry.example.com/dokuya:v2
  30s      Normal   Started         started dokuya-web-v2 on web-1
  5s (x3)  Warning  Unreachable     web-2: dial tcp 10.0.0.2:22: i/o timeout
`
	got := renderStatus(&workload{Deployment: rollingOut()}, events, now)
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// Pure: the same input draws the same text; no time leaves ages out.
	if again := renderStatus(&workload{Deployment: rollingOut()}, events, now); again != got {
		t.Error("two drawings of the same input differ")
	}
	if noAges := renderStatus(&workload{Deployment: rollingOut()}, events, time.Time{}); strings.Contains(noAges, "40s") {
		t.Errorf("a drawing without a time has ages:\n%s", noAges)
	}
}

func TestRenderStatusOfAnAccessory(t *testing.T) {
	a := &kamalv1.Accessory{
		ObjectMeta: metav1.ObjectMeta{Name: "dokuya-postgres", Namespace: "shop", Generation: 1},
		Spec:       kamalv1.AccessorySpec{Image: "postgres:15"},
		Status: kamalv1.AccessoryStatus{
			CommonStatus: kamalv1.CommonStatus{ObservedGeneration: 1, Conditions: []metav1.Condition{
				{Type: "Ready", Status: "True", Reason: "Reconciled", Message: "running on 1/1 servers", LastTransitionTime: ago(3 * time.Hour)},
			}},
			Image: "postgres:15", ServersReady: "1/1",
			Servers: []kamalv1.AccessoryServerStatus{{Server: "db-1", Container: "dokuya-postgres", State: "Running"}},
		},
	}
	want := `Name:       dokuya-postgres
Namespace:  shop
Kind:       Accessory
Status:     ✔ Healthy
Image:      postgres:15
Servers:    1/1 ready

NAME               KIND       STATUS     VERSION  INFO
⟳ dokuya-postgres  Accessory  ✔ Healthy  15
└──□ db-1          Server     ✔ Running           dokuya-postgres

Conditions:
  TYPE   STATUS  REASON      AGE  MESSAGE
  Ready  True    Reconciled  3h   running on 1/1 servers

Events:
  <none>
`
	if got := renderStatus(&workload{Accessory: a}, nil, now); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestOverallStatus(t *testing.T) {
	cond := func(typ string, st metav1.ConditionStatus, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: st, Message: msg}
	}
	for _, c := range []struct {
		name        string
		gen, obs    int64
		conds       []metav1.Condition
		suspended   bool
		want, wantM string
	}{
		{"ready", 2, 2, []metav1.Condition{cond("Ready", "True", "all good")}, false, "✔ Healthy", ""},
		{"new spec not seen yet", 3, 2, []metav1.Condition{cond("Ready", "True", "")}, false, "◌ Progressing", "the controller has not acted on the latest spec yet"},
		{"reconciling", 2, 2, []metav1.Condition{cond("Ready", "False", "rolling out"), cond("Reconciling", "True", "")}, false, "◌ Progressing", "rolling out"},
		{"stalled", 2, 2, []metav1.Condition{cond("Ready", "False", "x"), cond("Stalled", "True", "secret missing")}, false, "✖ Stalled", "secret missing"},
		{"not ready", 2, 2, []metav1.Condition{cond("Ready", "False", "web-2 unreachable")}, false, "✖ Degraded", "web-2 unreachable"},
		{"no conditions yet", 1, -1, nil, false, "◌ Progressing", "the controller has not acted on the latest spec yet"},
		{"unknown", 1, 1, []metav1.Condition{cond("Ready", "Unknown", "?")}, false, "? Unknown", "?"},
		{"suspended", 2, 2, []metav1.Condition{cond("Ready", "Unknown", "suspended")}, true, "॥ Suspended", "suspended"},
	} {
		got, msg := overallStatus(c.gen, c.obs, c.conds, c.suspended)
		if got != c.want || msg != c.wantM {
			t.Errorf("%s: %q %q, want %q %q", c.name, got, msg, c.want, c.wantM)
		}
	}
}

func TestLatestEventsKeepsTheNewestOldestFirst(t *testing.T) {
	var es []corev1.Event
	for i := 0; i < 15; i++ {
		es = append(es, event("Normal", fmt.Sprint("R", i), "", time.Duration(i)*time.Minute))
	}
	got := latestEvents(es, 10)
	if len(got) != 10 || got[0].Reason != "R9" || got[9].Reason != "R0" {
		var rs []string
		for _, e := range got {
			rs = append(rs, e.Reason)
		}
		t.Errorf("latest events %v, want R9 … R0", rs)
	}
}

// A Deployment on many Servers lists only its targets that are not Running: the roles count
// them all, and a table of counts by version and state follows the tree.
func TestRenderStatusOfALargeDeployment(t *testing.T) {
	d := &kamalv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "dokuya", Namespace: "shop", Generation: 2, UID: "u1"},
		Spec: kamalv1.DeploymentSpec{
			Image:       "registry.example.com/dokuya:v2",
			PrimaryRole: "web",
			Roles:       map[string]kamalv1.Role{"web": {}, "jobs": {}},
		},
		Status: kamalv1.DeploymentStatus{
			CommonStatus: kamalv1.CommonStatus{ObservedGeneration: 2, Conditions: []metav1.Condition{
				{Type: "Ready", Status: "False", Reason: "RollingOut", Message: "2997 of 3000 targets on v2; retrying: web/web-0042 (health check failed)", LastTransitionTime: ago(2 * time.Minute)},
			}},
			Image: "registry.example.com/dokuya:v1", Version: "v1", ServersReady: "2997/3000", ReadyTargets: 2997, TotalTargets: 3000,
			Targets: []kamalv1.TargetStatus{
				{Server: "web-0042", Role: "web", Version: "v1", Container: "dokuya-web-v1", State: "Failed", Message: "health check failed"},
				{Server: "web-0007", Role: "web", State: "Unreachable", Message: "dial tcp 10.0.0.7:22: i/o timeout"},
				{Server: "web-0007", Role: "jobs", State: "Unreachable", Message: "dial tcp 10.0.0.7:22: i/o timeout"},
			},
			TargetsNotListed: 2997,
			Summary: []kamalv1.TargetCount{
				{Role: "web", State: "Unreachable", Count: 1},
				{Role: "web", Version: "v1", State: "Failed", Count: 1},
				{Role: "web", Version: "v2", State: "Running", Count: 1998},
				{Role: "jobs", State: "Unreachable", Count: 1},
				{Role: "jobs", Version: "v2", State: "Running", Count: 999},
			},
		},
	}
	want := `Name:       dokuya
Namespace:  shop
Kind:       Deployment
Status:     ✖ Degraded
Message:    2997 of 3000 targets on v2; retrying: web/web-0042 (health check failed)
Image:      registry.example.com/dokuya:v2 (serving: registry.example.com/dokuya:v1)
Servers:    2997/3000 ready

NAME               KIND        STATUS         VERSION  INFO
⟳ dokuya           Deployment  ✖ Degraded     v1
├──# web           Role        ◌ 1998/2000
│  ├──□ web-0007   Server      ⚠ Unreachable           dial tcp 10.0.0.7:22: i/o timeout
│  ├──□ web-0042   Server      ✖ Failed       v1       dokuya-web-v1: health check failed
│  └──… 1998 more                                      not listed (see Targets)
└──# jobs          Role        ◌ 999/1000
   ├──□ web-0007   Server      ⚠ Unreachable           dial tcp 10.0.0.7:22: i/o timeout
   └──… 999 more                                       not listed (see Targets)

Targets:
  ROLE  VERSION  STATE          COUNT
  web            ⚠ Unreachable  1
  web   v1       ✖ Failed       1
  web   v2       ✔ Running      1998
  jobs           ⚠ Unreachable  1
  jobs  v2       ✔ Running      999

Conditions:
  TYPE   STATUS  REASON      AGE  MESSAGE
  Ready  False   RollingOut  2m   2997 of 3000 targets on v2; retrying: web/web-0042 (health check failed)

Events:
  <none>
`
	if got := renderStatus(&workload{Deployment: d}, nil, now); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// An Accessory on a large fleet lists where it is not Running and counts the rest.
func TestStatusOfACappedAccessory(t *testing.T) {
	a := &kamalv1.Accessory{
		ObjectMeta: metav1.ObjectMeta{Name: "vector", Namespace: "ops", Generation: 1},
		Spec:       kamalv1.AccessorySpec{Image: "timberio/vector:0.40"},
		Status: kamalv1.AccessoryStatus{
			CommonStatus: kamalv1.CommonStatus{ObservedGeneration: 1},
			Image:        "timberio/vector:0.40", ServersReady: "1499/1500", ServersNotListed: 1499,
			Servers: []kamalv1.AccessoryServerStatus{{Server: "web-0007", State: "Unreachable", Message: "dial tcp 10.0.0.7:22: i/o timeout"}},
		},
	}
	got := accessoryTree(a)
	if len(got.children) != 2 || got.children[0].name != "□ web-0007" || got.children[1].name != "… 1499 more" {
		var names []string
		for _, c := range got.children {
			names = append(names, c.name)
		}
		t.Errorf("tree children %q", names)
	}
}
