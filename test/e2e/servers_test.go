package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/internal/release"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

func fingerprintOf(t *testing.T, authorizedKey string) string {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(k)
}

func TestServerBecomesReadyWithFactsAndProxy(t *testing.T) {
	h := env.Host(hostMain)
	ns := newNamespace(t)
	keySecret(t, ns)
	srv := serverFor(ns, "web-1", h)
	t0 := time.Now()
	createServer(t, srv)
	waitReady(t, srv)
	t.Logf("first Ready (connect, facts, network, proxy pull and start) in %s", time.Since(t0).Round(time.Millisecond))

	f := srv.Status.Facts
	api, err := h.DockerAPIVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f == nil || f.DockerVersion == "" || f.APIVersion != api || f.CPUs < 1 || f.MemoryBytes < 1<<20 || f.Architecture == "" || f.OperatingSystem == "" {
		t.Errorf("facts = %+v, want the engine's (API %s)", f, api)
	}
	if want := fingerprintOf(t, h.HostPublicKey()); srv.Status.HostKeyFingerprint != want {
		t.Errorf("host key fingerprint = %q, want %q", srv.Status.HostKeyFingerprint, want)
	}
	for _, typ := range []string{kamalv1.ConditionReachable, kamalv1.ConditionDockerReady, kamalv1.ConditionProxyReady} {
		waitCondition(t, srv, typ, metav1.ConditionTrue, "", time.Second)
	}
	if s := framework.Kstatus(t, srv); s != status.CurrentStatus {
		t.Errorf("kstatus = %s, want Current", s)
	}
	if srv.Status.ProxyImage != env.ProxyImage() {
		t.Errorf("status.proxyImage = %q", srv.Status.ProxyImage)
	}

	// The proxy answers on the host's port 80; no app claims this host name.
	framework.Eventually(t, reactWithin, answers(h, "nothing.test", "/", 404, "no app is routed"))
	if out := hostExec(t, h, "docker", "network", "inspect", "-f", "{{.Name}}", "kamal"); out != "kamal" {
		t.Errorf("kamal network: %q", out)
	}
	// Reloads hand queued connections to the new listener instead of resetting them.
	if v := hostExec(t, h, "docker", "inspect", "-f", `{{index .HostConfig.Sysctls "net.ipv4.tcp_migrate_req"}}`, proxy.ContainerName); v != "1" {
		t.Errorf("proxy tcp_migrate_req = %q, want 1", v)
	}
	// The admin API is not published on any host port.
	if out := hostExec(t, h, "docker", "port", proxy.ContainerName); strings.Contains(out, "2019") {
		t.Errorf("admin port published: %s", out)
	}
	waitEvent(t, ns, srv.Name, kamalv1.ReasonConnected)
	waitEvent(t, ns, srv.Name, "ProxyCreated")
}

func TestProxyRecreatedAndUpgradedKeepsRoutes(t *testing.T) {
	h := env.Host(hostMain)
	ns := newNamespace(t)
	keySecret(t, ns)
	srv := serverFor(ns, "web-1", h)
	createServer(t, srv)
	waitReady(t, srv)

	hostExec(t, h, "docker", "run", "-d", "--name", "e2e-app", "--network", "kamal", env.Image("sampleapp:v1"))
	t.Cleanup(func() { hostExec(t, h, "docker", "rm", "-f", "e2e-app") })
	host := mgr.Fleet.Cached(ns + "/web-1")
	if host == nil {
		t.Fatal("no connection for web-1")
	}
	ctx := context.Background()
	// A route as the controller makes it: it lives in the proxy's route table, which is saved
	// in the data volume, so a recreated or upgraded proxy routes the same.
	p := &release.Proxy{Hosts: []string{"app.test"}, AppPort: 80, ResponseTimeout: 30 * time.Second}
	if _, err := host.Proxy.PutRoute(ctx, "e2e-app", p.Route(p.Upstream("e2e-app"), "e2e"), 0, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = host.Proxy.DeleteRoute(context.Background(), "e2e-app", 0) })
	servesV1 := answers(h, "app.test", "/version", 200, "v1")
	framework.Eventually(t, reactWithin, servesV1)

	// Removed by hand: the docker event brings the Server back to work at once.
	oldID := containerID(t, h, proxy.ContainerName)
	hostExec(t, h, "docker", "rm", "-f", proxy.ContainerName)
	t0 := time.Now()
	framework.Eventually(t, reactWithin, func() error {
		id, err := h.Exec(ctx, "docker", "inspect", "-f", "{{.Id}}", proxy.ContainerName)
		if err != nil || strings.TrimSpace(string(id)) == oldID {
			return fmt.Errorf("proxy not recreated yet")
		}
		return servesV1()
	})
	t.Logf("proxy removed by hand served again after %s", time.Since(t0).Round(time.Millisecond))

	// A settings change replaces the container and keeps the route.
	updateObject(t, srv, func(srv *kamalv1.Server) {
		srv.Spec.Proxy.Options = &kamalv1.ContainerOptions{Resources: &kamalv1.Resources{Memory: ptr.To(resource.MustParse("256Mi"))}}
	})
	waitReady(t, srv)
	waitEvent(t, ns, srv.Name, "ProxyUpgraded")
	if mem := hostExec(t, h, "docker", "inspect", "-f", "{{.HostConfig.Memory}}", proxy.ContainerName); mem != fmt.Sprint(256<<20) {
		t.Errorf("proxy memory limit = %s", mem)
	}
	framework.Eventually(t, reactWithin, servesV1)

	// All of that went over one SSH connection.
	if n := sshConnections(t, h); n != 1 {
		t.Errorf("%d SSH connections to the host, want 1", n)
	}
}

func TestServerRecoversFromSSHDAndDockerdOutages(t *testing.T) {
	h := env.Host(hostMain)
	ns := newNamespace(t)
	keySecret(t, ns)
	srv := serverFor(ns, "web-1", h)
	createServer(t, srv)
	waitReady(t, srv)
	ctx := context.Background()

	if err := h.StopSSHD(ctx); err != nil {
		t.Fatal(err)
	}
	c := waitCondition(t, srv, kamalv1.ConditionReady, metav1.ConditionFalse, kamalv1.ReasonUnreachable, reactWithin)
	if !strings.Contains(c.Message, h.Address()) {
		t.Errorf("message %q does not name the host", c.Message)
	}
	waitCondition(t, srv, kamalv1.ConditionReachable, metav1.ConditionFalse, kamalv1.ReasonUnreachable, time.Second)
	if err := h.StartSSHD(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitReady(t, srv)
	t.Logf("Ready again %s after sshd came back", time.Since(t0).Round(time.Millisecond))

	if err := h.StopDockerd(ctx); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, srv, kamalv1.ConditionDockerReady, metav1.ConditionFalse, kamalv1.ReasonDockerUnavailable, reactWithin)
	waitCondition(t, srv, kamalv1.ConditionReady, metav1.ConditionFalse, kamalv1.ReasonDockerUnavailable, time.Second)
	if err := h.StartDockerd(ctx); err != nil {
		t.Fatal(err)
	}
	waitReady(t, srv)
}

func TestWrongPinnedHostKeyRunsNothing(t *testing.T) {
	h, other := env.Host(hostOther), env.Host(hostMain)
	ns := newNamespace(t)
	keySecret(t, ns)
	srv := serverFor(ns, "web-2", h)
	srv.Spec.KnownHosts = []string{other.HostPublicKey()}
	started := time.Now()
	createServer(t, srv)

	c := waitCondition(t, srv, kamalv1.ConditionReady, metav1.ConditionFalse, kamalv1.ReasonHostKeyMismatch, reactWithin)
	if want := fingerprintOf(t, h.HostPublicKey()); !strings.Contains(c.Message, want) {
		t.Errorf("message %q does not name the presented key %s", c.Message, want)
	}
	waitCondition(t, srv, kamalv1.ConditionStalled, metav1.ConditionTrue, kamalv1.ReasonHostKeyMismatch, time.Second)
	waitCondition(t, srv, kamalv1.ConditionReachable, metav1.ConditionFalse, kamalv1.ReasonHostKeyMismatch, time.Second)
	if s := framework.Kstatus(t, srv); s != status.FailedStatus {
		t.Errorf("kstatus = %s, want Failed", s)
	}
	// Refused before authentication: nothing happened on the host's engine meanwhile.
	if evs := hostExec(t, h, "docker", "events", "--since", fmt.Sprintf("%d.%09d", started.Unix(), started.Nanosecond()), "--until", fmt.Sprint(time.Now().Unix()+1), "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"); evs != "" {
		t.Errorf("the engine of a host whose key was refused saw: %s", evs)
	}
}

func TestTrustOnFirstUsePinsTheFirstKey(t *testing.T) {
	h, other := env.Host(hostOther), env.Host(hostMain)
	ns := newNamespace(t)
	keySecret(t, ns)
	srv := serverFor(ns, "web-2", h)
	srv.Spec.KnownHosts = nil
	srv.Spec.HostKeyPolicy = kamalv1.HostKeyTrustOnFirstUse
	createServer(t, srv)
	waitReady(t, srv)
	if got, want := fingerprintOf(t, srv.Status.TrustedHostKey), fingerprintOf(t, h.HostPublicKey()); got != want {
		t.Fatalf("trusted key %s, want the host's %s", got, want)
	}
	waitEvent(t, ns, srv.Name, "HostKeyTrusted")
	trusted := srv.Status.TrustedHostKey

	// The same Server now answers with another key (here: another host at its address).
	updateObject(t, srv, func(srv *kamalv1.Server) { srv.Spec.Address = other.Address() })
	waitCondition(t, srv, kamalv1.ConditionReady, metav1.ConditionFalse, kamalv1.ReasonHostKeyMismatch, reactWithin)
	if srv.Status.TrustedHostKey != trusted {
		t.Errorf("trusted key changed to %q", srv.Status.TrustedHostKey)
	}

	// Back at its own address it is trusted again, and cleanup can reach it.
	updateObject(t, srv, func(srv *kamalv1.Server) { srv.Spec.Address = h.Address() })
	waitReady(t, srv)
}

func TestServerThroughJumpHost(t *testing.T) {
	jump, behind := env.Host(hostMain), env.Host(hostBehind)
	// The host behind is not reachable from here: only through the jump host.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(behind.Address(), "22"), 2*time.Second); err == nil {
		c.Close()
		t.Fatalf("%s is reachable directly; the test would prove nothing", behind.Address())
	}
	ns := newNamespace(t)
	keySecret(t, ns)
	createServer(t, serverFor(ns, "web-1", jump))
	srv := serverFor(ns, "inner-1", behind)
	srv.Spec.JumpHost = &kamalv1.JumpHost{ServerName: "web-1"}
	createServer(t, srv)
	waitReady(t, srv)
	if want := fingerprintOf(t, behind.HostPublicKey()); srv.Status.HostKeyFingerprint != want {
		t.Errorf("fingerprint %s, want the inner host's %s", srv.Status.HostKeyFingerprint, want)
	}
	if !contains(containerNames(t, behind), proxy.ContainerName) {
		t.Error("no proxy on the inner host")
	}
}

func TestDialStdioWhenStreamForwardingIsRefused(t *testing.T) {
	h := env.Host(hostNoStream)
	ns := newNamespace(t)
	keySecret(t, ns)
	srv := serverFor(ns, "web-4", h)
	createServer(t, srv)
	c := waitCondition(t, srv, kamalv1.ConditionDockerReady, metav1.ConditionTrue, kamalv1.ReasonDockerAvailable, readyWithin)
	if !strings.Contains(c.Message, "dial-stdio") {
		t.Errorf("DockerReady message %q does not say dial-stdio", c.Message)
	}
	// The proxy's admin socket needs stream-local forwarding: the status says so plainly.
	c = waitCondition(t, srv, kamalv1.ConditionProxyReady, metav1.ConditionFalse, kamalv1.ReasonProxyFailed, readyWithin)
	if !strings.Contains(c.Message, "AllowStreamLocalForwarding") {
		t.Errorf("ProxyReady message %q", c.Message)
	}
}

func TestUnauthorizedKeyStalls(t *testing.T) {
	h := env.Host(hostMain)
	ns := newNamespace(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deploy-key"},
		Type:       corev1.SecretTypeSSHAuth,
		Data:       map[string][]byte{corev1.SSHAuthPrivateKey: pem.EncodeToMemory(block)},
	}); err != nil {
		t.Fatal(err)
	}
	srv := serverFor(ns, "web-1", h)
	createServer(t, srv)
	c := waitCondition(t, srv, kamalv1.ConditionStalled, metav1.ConditionTrue, kamalv1.ReasonAuthFailed, reactWithin)
	if !strings.Contains(c.Message, `Secret "deploy-key"`) {
		t.Errorf("message %q does not name the Secret", c.Message)
	}
}

func TestServerDeletionRemovesProxy(t *testing.T) {
	h := env.Host(hostMain)
	ns := newNamespace(t)
	keySecret(t, ns)
	srv := serverFor(ns, "web-1", h)
	ctx := context.Background()
	if err := k8s.Create(ctx, srv); err != nil {
		t.Fatal(err)
	}
	waitReady(t, srv)
	if err := k8s.Delete(ctx, srv); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, reactWithin, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(srv), srv); err == nil {
			return fmt.Errorf("server still present")
		}
		if contains(containerNames(t, h), proxy.ContainerName) {
			return fmt.Errorf("proxy still on the host")
		}
		return nil
	})
}
