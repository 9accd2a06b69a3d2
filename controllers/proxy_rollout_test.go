package controllers

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// up is a Server that serves with the settings "old" and is asked for want.
func up(key, want string) fleetProxy {
	return fleetProxy{Key: key, Desired: want, Running: "old", Reachable: true, ProxyReady: true}
}

func TestGateProxyUpgrade(t *testing.T) {
	failed := up("a/web-1", "new")
	failed.FailedHash, failed.FailMsg = "new", "exited (exit code 1)"
	upgrading := up("b/web-1", "new")
	upgrading.Upgrading = true
	unreachable := up("a/web-1", "new")
	unreachable.Reachable = false
	broken := up("a/web-1", "new")
	broken.ProxyReady = false
	retried := up("a/web-1", "newer")
	retried.FailedHash = "new"

	for _, tc := range []struct {
		name  string
		self  string
		fleet []fleetProxy
		want  proxyVerdict // Message is matched as a substring
	}{
		{"alone", "a/web-1", []fleetProxy{up("a/web-1", "new")}, proxyVerdict{Go: true}},
		{"first in order goes", "a/web-1", []fleetProxy{up("a/web-2", "new"), up("a/web-1", "new"), up("b/web-1", "new")}, proxyVerdict{Go: true}},
		{"second waits for the first", "a/web-2", []fleetProxy{up("a/web-2", "new"), up("a/web-1", "new")},
			proxyVerdict{Reason: kamalv1.ReasonProxyUpgradeWaiting, Host: "a/web-1", Message: "a/web-1 is replaced first"}},
		{"order spans namespaces", "b/web-1", []fleetProxy{up("b/web-1", "new"), up("a/web-9", "new")},
			proxyVerdict{Reason: kamalv1.ReasonProxyUpgradeWaiting, Host: "a/web-9"}},
		{"one already done does not hold", "a/web-2", []fleetProxy{up("a/web-2", "new"), up("a/web-1", "old")}, proxyVerdict{Go: true}},
		{"proxy off does not hold", "a/web-2", []fleetProxy{up("a/web-2", "new"), {Key: "a/web-1", Running: "old", Reachable: true}}, proxyVerdict{Go: true}},
		{"running unknown does not hold", "a/web-2", []fleetProxy{up("a/web-2", "new"), {Key: "a/web-1", Desired: "new", Reachable: true, ProxyReady: true}}, proxyVerdict{Go: true}},
		{"unreachable earlier host does not hold", "a/web-2", []fleetProxy{up("a/web-2", "new"), unreachable}, proxyVerdict{Go: true}},
		{"earlier host without a working proxy does not hold", "a/web-2", []fleetProxy{up("a/web-2", "new"), broken}, proxyVerdict{Go: true}},
		{"anyone mid-upgrade holds, even later in order", "a/web-1", []fleetProxy{up("a/web-1", "new"), upgrading},
			proxyVerdict{Reason: kamalv1.ReasonProxyUpgradeWaiting, Host: "b/web-1", Message: "b/web-1 is being replaced"}},
		{"a halt holds everyone", "b/web-2", []fleetProxy{up("b/web-2", "new"), failed, up("a/web-3", "new")},
			proxyVerdict{Reason: kamalv1.ReasonProxyUpgradeHeld, Host: "a/web-1", Message: "halted on a/web-1 (change the proxy image or settings to retry): exited (exit code 1)"}},
		{"a halt outranks a wait", "b/web-2", []fleetProxy{up("b/web-2", "new"), upgrading, failed},
			proxyVerdict{Reason: kamalv1.ReasonProxyUpgradeHeld, Host: "a/web-1"}},
		{"new settings on the failed host lift the halt", "b/web-2", []fleetProxy{up("b/web-2", "newer"), retried},
			proxyVerdict{Reason: kamalv1.ReasonProxyUpgradeWaiting, Host: "a/web-1"}},
		{"the failed host retries new settings first", "a/web-1", []fleetProxy{up("b/web-2", "newer"), retried}, proxyVerdict{Go: true}},
		{"its own upgrade resumes out of order", "b/web-1", []fleetProxy{up("a/web-1", "new"), upgrading}, proxyVerdict{Go: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := gateProxyUpgrade(tc.self, tc.fleet)
			if got.Go != tc.want.Go || got.Reason != tc.want.Reason || got.Host != tc.want.Host || !strings.Contains(got.Message, tc.want.Message) {
				t.Errorf("gate(%s) = %+v, want %+v", tc.self, got, tc.want)
			}
		})
	}
}

func TestProxyRecordOfStatus(t *testing.T) {
	srv := &kamalv1.Server{Status: kamalv1.ServerStatus{ProxyHash: "h1", ProxyFailedHash: "h2"}}
	srv.Status.Conditions = []metav1.Condition{{Type: kamalv1.ConditionProxyUpgrade, Status: metav1.ConditionFalse, Reason: kamalv1.ReasonProxyUpgradeFailed, Message: "why"}}
	got := proxyRecordOf(srv)
	if got.Running != "h1" || got.FailedHash != "h2" || got.FailMsg != "why" || got.Upgrading || got.Cond == nil || got.Cond.Reason != kamalv1.ReasonProxyUpgradeFailed {
		t.Errorf("record = %+v", got)
	}
	srv.Status.Conditions[0] = metav1.Condition{Type: kamalv1.ConditionProxyUpgrade, Status: metav1.ConditionTrue, Reason: kamalv1.ReasonProxyUpgrading}
	if got := proxyRecordOf(srv); !got.Upgrading || got.FailMsg != "" {
		t.Errorf("record = %+v, want upgrading", got)
	}
}

// A status the cache handed out before the reconciler's last write gets that write back.
func TestProxyRecordAppliesOverAStaleStatus(t *testing.T) {
	written := &kamalv1.Server{Status: kamalv1.ServerStatus{ProxyHash: "old", ProxyFailedHash: "new"}}
	written.Status.Conditions = []metav1.Condition{
		{Type: kamalv1.ConditionReachable, Status: metav1.ConditionTrue, Reason: "Connected"},
		{Type: kamalv1.ConditionProxyUpgrade, Status: metav1.ConditionFalse, Reason: kamalv1.ReasonProxyUpgradeFailed, Message: "why"},
	}
	rec := proxyRecordOf(written)

	stale := &kamalv1.Server{Status: kamalv1.ServerStatus{ProxyHash: "old"}}
	stale.Status.Conditions = []metav1.Condition{
		{Type: kamalv1.ConditionReachable, Status: metav1.ConditionTrue, Reason: "Connected"},
		{Type: kamalv1.ConditionProxyUpgrade, Status: metav1.ConditionTrue, Reason: kamalv1.ReasonProxyUpgrading},
	}
	rec.applyTo(stale)
	if got := proxyRecordOf(stale); got.FailedHash != "new" || got.Upgrading || got.FailMsg != "why" || len(stale.Status.Conditions) != 2 {
		t.Errorf("after applyTo: %+v, conditions %+v", got, stale.Status.Conditions)
	}
	// The record is a copy: changing the status does not change it.
	stale.Status.Conditions[1].Message = "changed"
	if rec.Cond.Message != "why" {
		t.Error("the record shares its condition with a status")
	}
}

func TestFleetProxyOfUsesTheDefaultImage(t *testing.T) {
	r := &ServerReconciler{DefaultProxyImage: "reg/kamal-proxy:a"}
	s := &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-1"}}
	a := r.fleetProxyOf(s, proxyRecord{})
	r.DefaultProxyImage = "reg/kamal-proxy:b"
	b := r.fleetProxyOf(s, proxyRecord{})
	if a.Key != "ns/web-1" || a.Desired == "" || a.Desired == b.Desired {
		t.Errorf("desired hashes %q and %q: a new default image must change them", a.Desired, b.Desired)
	}
	off := false
	s.Spec.Proxy.Enabled = &off
	if f := r.fleetProxyOf(s, proxyRecord{}); f.Desired != "" {
		t.Errorf("a Server without proxy wants %q", f.Desired)
	}
}
