package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/hosts"
)

const (
	// readyWithin bounds a first Ready, which includes pulling the proxy image.
	readyWithin = 3 * time.Minute
	reactWithin = 90 * time.Second
)

func newNamespace(t testing.TB) string { return framework.NewNamespace(t, k8s) }

func keySecret(t testing.TB, ns string) {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deploy-key"},
		Type:       corev1.SecretTypeSSHAuth,
		Data:       map[string][]byte{corev1.SSHAuthPrivateKey: env.ClientPrivateKeyPEM()},
	}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// serverFor is a Server for test host h with its host key pinned.
func serverFor(ns, name string, h *hosts.Host) *kamalv1.Server {
	return &kamalv1.Server{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"tier": "web"}},
		Spec: kamalv1.ServerSpec{
			Address:         h.Address(),
			SSHKeySecretRef: corev1.LocalObjectReference{Name: "deploy-key"},
			KnownHosts:      []string{h.HostPublicKey()},
		},
	}
}

// createServer creates s and, when the test ends, deletes it and waits until the controller
// has cleaned its host up.
func createServer(t testing.TB, s *kamalv1.Server) {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		key := client.ObjectKeyFromObject(s)
		_ = k8s.Delete(ctx, &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}})
		framework.Eventually(t, reactWithin, func() error {
			err := k8s.Get(ctx, key, &kamalv1.Server{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("server %s still present (%v)", key, err)
		})
	})
}

// waitFor waits until obj's condition typ has status and reason (any, when "") for obj's
// generation; detail, when set, adds what the status says besides.
func waitFor(t testing.TB, obj client.Object, conds func() []metav1.Condition, detail func() any, typ string, status metav1.ConditionStatus, reason string, within time.Duration) *metav1.Condition {
	t.Helper()
	var got *metav1.Condition
	framework.Eventually(t, within, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		got = meta.FindStatusCondition(conds(), typ)
		if got == nil || got.Status != status || (reason != "" && got.Reason != reason) || got.ObservedGeneration != obj.GetGeneration() {
			if detail != nil {
				return fmt.Errorf("%s = %+v, want %s/%s (%+v)", typ, got, status, reason, detail())
			}
			return fmt.Errorf("%s = %+v, want %s/%s", typ, got, status, reason)
		}
		return nil
	})
	return got
}

// waitCondition waits until s's condition typ has status and reason for s's generation.
func waitCondition(t testing.TB, s *kamalv1.Server, typ string, status metav1.ConditionStatus, reason string, within time.Duration) *metav1.Condition {
	t.Helper()
	return waitFor(t, s, func() []metav1.Condition { return s.Status.Conditions }, nil, typ, status, reason, within)
}

func waitReady(t testing.TB, s *kamalv1.Server) {
	t.Helper()
	waitCondition(t, s, kamalv1.ConditionReady, metav1.ConditionTrue, kamalv1.ReasonReconciled, readyWithin)
}

// httpGet asks h's proxy (port 80 of the host's own address) for path with the Host header.
func httpGet(h *hosts.Host, hostHeader, path string) (int, string, error) {
	return httpDo(h, http.MethodGet, hostHeader, path)
}

// httpDo sends method path to h's proxy (port 80) for hostHeader.
func httpDo(h *hosts.Host, method, hostHeader, path string) (int, string, error) {
	req, err := http.NewRequest(method, "http://"+h.Address()+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = hostHeader
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), nil
}

// hostExec runs a command on test host h (docker, ss …) and returns its output.
func hostExec(t testing.TB, h *hosts.Host, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := h.Exec(ctx, args...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func containerNames(t testing.TB, h *hosts.Host) []string {
	return strings.Fields(hostExec(t, h, "docker", "ps", "-a", "--format", "{{.Names}}"))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sshConnections counts established TCP connections to h's sshd.
func sshConnections(t testing.TB, h *hosts.Host) int {
	out := hostExec(t, h, "ss", "-Htn", "state", "established", "( sport = :22 )")
	if out == "" {
		return 0
	}
	return len(strings.Split(out, "\n"))
}

func waitEvent(t testing.TB, ns, name, reason string) {
	t.Helper()
	framework.Eventually(t, reactWithin, func() error { return framework.FindEvent(k8s, ns, name, reason) })
}

// updateObject reads obj, applies mut and writes it back, again on a conflict with the
// controller's status writes.
func updateObject[T client.Object](t testing.TB, obj T, mut func(T)) {
	t.Helper()
	framework.Eventually(t, 10*time.Second, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mut(obj)
		return k8s.Update(context.Background(), obj)
	})
}

// answers is a condition: h's proxy answers GET path for hostName with code and a body that
// contains want.
func answers(h *hosts.Host, hostName, path string, code int, want string) func() error {
	return func() error {
		got, body, err := httpGet(h, hostName, path)
		if err != nil {
			return err
		}
		if got != code || !strings.Contains(body, want) {
			return fmt.Errorf("%s GET %s for %s = %d %q, want %d with %q", h.Name(), path, hostName, got, body, code, want)
		}
		return nil
	}
}

// containerID is the ID of container name on h.
func containerID(t *testing.T, h *hosts.Host, name string) string {
	return hostExec(t, h, "docker", "inspect", "-f", "{{.Id}}", name)
}
