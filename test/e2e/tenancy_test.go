package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

// Servers in a platform namespace admit the team namespaces their allowedNamespaces selector
// matches: team A's app places on them and serves through their proxies; team C's is refused
// and nothing of it reaches the hosts. A second Server object for one of those hosts, in team
// A's namespace, is a duplicate: it never logs in to the host, and the host's proxy stays the
// same container through its creation and its deletion.
func TestTenantsPlaceOnPlatformServers(t *testing.T) {
	ctx := context.Background()
	hosts := []int{hostMain, hostOther}
	platform, teamA, teamC := newNamespace(t), newNamespace(t), newNamespace(t)
	keySecret(t, platform)
	var servers []*kamalv1.Server
	for i, h := range hosts {
		s := serverFor(platform, fmt.Sprintf("web-%d", i+1), env.Host(h))
		s.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromSelector,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant-of": platform}}}
		createServer(t, s)
		servers = append(servers, s)
	}
	for _, s := range servers {
		waitReady(t, s)
	}
	updateObject(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: teamA}}, func(n *corev1.Namespace) {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels["tenant-of"] = platform
	})

	guest := func(ns, name string) *kamalv1.Deployment {
		d := appDeployment(ns, name, "v1")
		d.Spec.Roles["web"] = kamalv1.Role{Servers: kamalv1.ServerSelector{Namespace: platform,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}}}
		return d
	}
	a, c := guest(teamA, "guest-a"), guest(teamC, "guest-c")
	t0 := time.Now()
	createDeployment(t, a)
	createDeployment(t, c)
	waitDeployed(t, a)
	t.Logf("team A's app Ready on the platform's 2 Servers in %s", time.Since(t0).Round(time.Millisecond))
	for _, h := range hosts {
		framework.Eventually(t, reactWithin, answers(env.Host(h), "guest-a.test", "/version", 200, "v1"))
	}
	var targets []string
	for _, ts := range a.Status.Targets {
		targets = append(targets, ts.Server)
	}
	if want := platform + "/web-1 " + platform + "/web-2"; strings.Join(targets, " ") != want {
		t.Errorf("targets %v, want %s", targets, want)
	}

	refused := waitDeployment(t, c, kamalv1.ConditionStalled, metav1.ConditionTrue, kamalv1.ReasonNamespaceNotAllowed, reactWithin)
	if !strings.Contains(refused.Message, "does not allow namespace "+teamC) || !strings.Contains(refused.Message, "from Selector tenant-of="+platform) {
		t.Errorf("message %q does not say why", refused.Message)
	}
	for _, h := range hosts {
		if out := hostExec(t, env.Host(h), "docker", "ps", "-aq", "--filter", "label="+kamalv1.LabelNamespace+"="+teamC); out != "" {
			t.Errorf("%s runs containers of the refused namespace: %s", env.Host(h).Name(), out)
		}
	}
	if code, _, err := httpGet(env.Host(hostMain), "guest-c.test", "/version"); err != nil || code != 404 {
		t.Errorf("guest-c.test answers %d (%v), want 404: routed", code, err)
	}

	// A duplicate of web-1 in team A's namespace, asking for other proxy settings: were it to act,
	// it would replace the proxy.
	h := env.Host(hostMain)
	proxyID := containerID(t, h, proxy.ContainerName)
	sshdLog := filepath.Join(h.StateDir(), "sshd.log")
	loginsBefore := countIn(t, sshdLog, "Accepted publickey")
	keySecret(t, teamA)
	dup := serverFor(teamA, "my-web-1", h)
	dup.Spec.Proxy.Options = &kamalv1.ContainerOptions{Resources: &kamalv1.Resources{Memory: ptr.To(resource.MustParse("256Mi"))}}
	createServer(t, dup)
	st := waitCondition(t, dup, kamalv1.ConditionStalled, metav1.ConditionTrue, kamalv1.ReasonDuplicateServer, reactWithin)
	if want := "Server " + platform + "/web-1, the older one, manages this host"; !strings.Contains(st.Message, want) {
		t.Errorf("message %q does not name the owner (%s)", st.Message, want)
	}
	waitCondition(t, dup, kamalv1.ConditionReachable, metav1.ConditionFalse, kamalv1.ReasonDuplicateServer, time.Second)
	// The owner, and the app through it, carry on.
	waitReady(t, servers[0])
	framework.Eventually(t, reactWithin, answers(h, "guest-a.test", "/version", 200, "v1"))

	// Deleting the duplicate leaves the host alone too (its finalizer does not clean up a host
	// it does not manage).
	if err := k8s.Delete(ctx, dup); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, reactWithin, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(dup), &kamalv1.Server{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("duplicate still present (%v)", err)
		}
		return nil
	})
	if got := containerID(t, h, proxy.ContainerName); got != proxyID {
		t.Errorf("the proxy was replaced: %s, was %s", got, proxyID)
	}
	if n := countIn(t, sshdLog, "Accepted publickey"); n != loginsBefore {
		t.Errorf("sshd accepted %d logins while the duplicate existed", n-loginsBefore)
	}
	framework.Eventually(t, reactWithin, answers(h, "guest-a.test", "/version", 200, "v1"))
}
