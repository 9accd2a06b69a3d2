package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/release"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/images"
)

// A spec the controller cannot act on is refused by the API, next to a good app that keeps
// serving, and the controller goes on reconciling (it used to panic on "/%zz" and restart
// every second until the object was deleted).
func TestMalformedSpecIsRefusedAndTheControllerStaysUp(t *testing.T) {
	ns := fleetNS(t)
	good := appDeployment(ns, "good", "v1")
	createDeployment(t, good)
	waitDeployed(t, good)

	for _, path := range []string{"/%zz", "/a%2", "/{http.request.host}"} {
		bad := appDeployment(ns, "bad", "v1")
		bad.Spec.Proxy.Healthcheck.Path = path
		err := k8s.Create(context.Background(), bad)
		if err == nil {
			_ = k8s.Delete(context.Background(), bad)
			t.Fatalf("health check path %q was accepted", path)
		}
		if !strings.Contains(err.Error(), "healthcheck") && !strings.Contains(err.Error(), "path") {
			t.Errorf("refusal of %q does not say which field: %v", path, err)
		}
	}
	// The controller still works: a change of the good app rolls out.
	update(t, good, func(d *kamalv1.Deployment) { d.Spec.Image = env.Image("sampleapp:v2") })
	waitDeployed(t, good)
	framework.Eventually(t, reactWithin, allServe("good.test", "v2"))
}

// A 40-digit Git SHA as the version and a long Deployment name make container names past the
// 63-character DNS label; the proxy must still reach them by name, also with the hash suffix
// of a second container of the same version.
func TestLongVersionsServeThroughTheProxy(t *testing.T) {
	ns := fleetNS(t)
	d := appDeployment(ns, "storefront-billings", images.SHATag)
	createDeployment(t, d)
	waitDeployed(t, d)
	framework.Eventually(t, reactWithin, allServe("storefront-billings.test", images.SHATag))
	checkNames := func() {
		for _, i := range webHosts {
			for _, name := range containerNames(t, env.Host(i)) {
				if strings.HasPrefix(name, "storefront-billings") && (len(name) > 63 || !release.ValidDNSLabel(name)) {
					t.Errorf("host %d runs %q (%d characters): not a DNS label", i, name, len(name))
				}
			}
		}
	}
	checkNames()

	// Same version, other env: a second container of the version, with the hash suffix.
	update(t, d, func(d *kamalv1.Deployment) {
		d.Spec.Env = append(d.Spec.Env, kamalv1.EnvVar{Name: "GREETING", Value: "hello"})
	})
	waitDeployed(t, d)
	framework.Eventually(t, reactWithin, allServe("storefront-billings.test", images.SHATag))
	framework.Eventually(t, reactWithin, func() error {
		got := versionsServed("storefront-billings.test")
		for _, i := range webHosts {
			_, body, err := httpGet(env.Host(i), "storefront-billings.test", "/env?name=GREETING")
			if err != nil || strings.TrimSpace(body) != "hello" {
				return fmt.Errorf("host %d: /env = %q (%v); versions %v", i, body, err, got)
			}
		}
		return nil
	})
	checkNames()
}

// A wrong appPort stalls on the health check; fixing it deploys, without a restart annotation,
// and no condition keeps talking about the old port.
func TestFixingAFailedSpecRetries(t *testing.T) {
	ns := fleetNS(t)
	d := appDeployment(ns, "fixport", "v1")
	d.Spec.Proxy.AppPort = ptr.To(int32(8080))
	d.Spec.Rollout.DeployTimeout = &metav1.Duration{Duration: 5 * time.Second}
	createDeployment(t, d)
	c := waitDeployment(t, d, kamalv1.ConditionStalled, metav1.ConditionTrue, kamalv1.ReasonHealthCheckFailed, readyWithin)
	if !strings.Contains(c.Message, "8080") {
		t.Errorf("stall message %q does not name the port", c.Message)
	}

	update(t, d, func(d *kamalv1.Deployment) { d.Spec.Proxy.AppPort = ptr.To(int32(80)) })
	waitDeployed(t, d)
	framework.Eventually(t, reactWithin, allServe("fixport.test", "v1"))
	for _, c := range d.Status.Conditions {
		if strings.Contains(c.Message, "8080") {
			t.Errorf("condition %s still says %q", c.Type, c.Message)
		}
	}

	// The same for the health check path.
	update(t, d, func(d *kamalv1.Deployment) {
		d.Spec.Image = env.Image("sampleapp:v2")
		d.Spec.Proxy.Healthcheck.Path = "/nothing-here"
	})
	waitDeployment(t, d, kamalv1.ConditionStalled, metav1.ConditionTrue, kamalv1.ReasonHealthCheckFailed, readyWithin)
	framework.Eventually(t, reactWithin, allServe("fixport.test", "v1"))
	update(t, d, func(d *kamalv1.Deployment) { d.Spec.Proxy.Healthcheck.Path = "/up" })
	waitDeployed(t, d)
	framework.Eventually(t, reactWithin, allServe("fixport.test", "v2"))
}

// A host whose network is cut mid-rollout is named in its Server's and the Deployment's status
// within 15 s, while the others go on serving; when the network is back, the rollout ends.
func TestLostHostIsNamedWithinSeconds(t *testing.T) {
	ns, d := midRollout(t)
	third := env.Host(hostThird)
	ctx := context.Background()
	if err := third.CutNetwork(ctx); err != nil {
		t.Fatal(err)
	}
	restored := false
	t.Cleanup(func() {
		if !restored {
			_ = third.RestoreNetwork(ctx)
		}
	})
	cut := time.Now()
	srv := &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-3"}}
	var serverAt, deploymentAt time.Duration
	framework.Eventually(t, 30*time.Second, func() error {
		if serverAt == 0 {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(srv), srv); err != nil {
				return err
			}
			for _, c := range srv.Status.Conditions {
				if c.Type == kamalv1.ConditionReachable && c.Status == metav1.ConditionFalse {
					serverAt = time.Since(cut)
				}
			}
		}
		if deploymentAt == 0 {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
				return err
			}
			for _, tgt := range d.Status.Targets {
				if tgt.Server == "web-3" && tgt.State == kamalv1.TargetUnreachable {
					deploymentAt = time.Since(cut)
				}
			}
		}
		if serverAt == 0 || deploymentAt == 0 {
			return fmt.Errorf("after %s: Server web-3 conditions %+v, Deployment targets %+v", time.Since(cut).Round(time.Second), srv.Status.Conditions, d.Status.Targets)
		}
		return nil
	})
	t.Logf("network cut: Server web-3 unreachable after %s, Deployment named it after %s", serverAt.Round(time.Millisecond), deploymentAt.Round(time.Millisecond))
	if serverAt > 15*time.Second || deploymentAt > 15*time.Second {
		t.Errorf("the lost host was named after %s (Server) and %s (Deployment), want within 15s", serverAt, deploymentAt)
	}
	c := waitDeployment(t, d, kamalv1.ConditionReady, metav1.ConditionFalse, "", reactWithin)
	if !strings.Contains(c.Message, "web-3") {
		t.Errorf("Ready message %q does not name web-3", c.Message)
	}
	framework.Eventually(t, reactWithin, func() error {
		for _, i := range []int{hostMain, hostOther} {
			if err := answers(env.Host(i), "app.test", "/version", 200, "v2")(); err != nil {
				return err
			}
		}
		return nil
	})

	if err := third.RestoreNetwork(ctx); err != nil {
		t.Fatal(err)
	}
	restored = true
	waitDeployed(t, d)
	framework.Eventually(t, reactWithin, allServe("app.test", "v2"))
}
