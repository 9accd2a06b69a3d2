package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/controllers"
	"github.com/kamal-operator/kamal-operator/internal/remote"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/hosts"
)

// keyscan is the knownHosts entry of h's key of type typ ("ed25519", "rsa", "ecdsa") as the
// README has users make it: `ssh-keyscan -t TYPE ADDRESS | cut -d' ' -f2-`.
func keyscan(t *testing.T, h *hosts.Host, typ string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ssh-keyscan", "-T", "5", "-t", typ, h.Address()).Output()
	if err != nil {
		t.Fatalf("ssh-keyscan -t %s %s: %v", typ, h.Address(), err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == h.Address() {
			return f[1] + " " + f[2]
		}
	}
	t.Fatalf("ssh-keyscan -t %s %s printed no key: %q", typ, h.Address(), out)
	return ""
}

// A stock sshd holds rsa, ecdsa and ed25519 host keys; a Server pinned by any one of them,
// in the form the README gives, connects (x/crypto alone would ask for the ecdsa key and refuse
// the others). One Server is pinned by each in turn: a second Server object for the host would
// be a duplicate.
func TestHostKeyPinnedByEachKeyType(t *testing.T) {
	h := env.Host(hostMain)
	ns := newNamespace(t)
	keySecret(t, ns)
	pins := []struct{ scanType, accessor string }{
		{"ed25519", h.HostPublicKey()},
		{"rsa", h.HostPublicKeyRSA()},
		{"ecdsa", h.HostPublicKeyECDSA()},
	}
	if got := len(h.HostPublicKeys()); got != 3 {
		t.Fatalf("the test host has %d host keys, want rsa, ecdsa and ed25519", got)
	}
	srv := serverFor(ns, "pinned", h)
	for i, p := range pins {
		entry := keyscan(t, h, p.scanType)
		if entry != p.accessor {
			t.Fatalf("ssh-keyscan -t %s gives %q, the test host's accessor %q", p.scanType, entry, p.accessor)
		}
		t0 := time.Now()
		if i == 0 {
			srv.Spec.KnownHosts = []string{entry}
			createServer(t, srv) // starts the host's proxy; the next pins find it running
		} else {
			updateObject(t, srv, func(s *kamalv1.Server) { s.Spec.KnownHosts = []string{entry} })
		}
		waitReady(t, srv)
		if want := fingerprintOf(t, entry); srv.Status.HostKeyFingerprint != want {
			t.Errorf("pinned by %s: connected with host key %s, want %s", p.scanType, srv.Status.HostKeyFingerprint, want)
		}
		t.Logf("pinned by %s: Ready in %s", p.scanType, time.Since(t0).Round(time.Millisecond))
	}
}

// storeKey is the known-hosts store's entry of h's sshd.
func storeKey(t *testing.T, h *hosts.Host) string {
	t.Helper()
	k, err := remote.StoreKey(h.Address(), h.SSHPort())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var storeName = types.NamespacedName{Namespace: framework.ControllerNamespace, Name: controllers.KnownHostsConfigMap}

// storeEntry reads the known-hosts store's entry ("" when there is none) and the store.
func storeEntry(t *testing.T, entry string) (string, *corev1.ConfigMap) {
	t.Helper()
	var cm corev1.ConfigMap
	err := k8s.Get(context.Background(), storeName, &cm)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data[entry], &cm
}

// setStoreEntry writes (or, with key "", deletes) an entry of the known-hosts store.
func setStoreEntry(t testing.TB, entry, key string) {
	t.Helper()
	framework.Eventually(t, 10*time.Second, func() error {
		ctx := context.Background()
		var cm corev1.ConfigMap
		err := k8s.Get(ctx, storeName, &cm)
		if apierrors.IsNotFound(err) {
			if key == "" {
				return nil
			}
			cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: storeName.Namespace, Name: storeName.Name}, Data: map[string]string{entry: key}}
			return k8s.Create(ctx, &cm)
		}
		if err != nil {
			return err
		}
		if key == "" {
			delete(cm.Data, entry)
		} else {
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			cm.Data[entry] = key
		}
		return k8s.Update(ctx, &cm)
	})
}

// keepStoreEntry puts the store's entry back as it is now when the test ends (after the
// Servers it creates later are gone), so other tests of the host see the store as before.
func keepStoreEntry(t *testing.T, entry string) {
	before, _ := storeEntry(t, entry)
	t.Cleanup(func() { setStoreEntry(t, entry, before) })
}

// eventOf returns the event with reason about name, nil when there is none.
func eventOf(t *testing.T, ns, name, reason string) *eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if e := &list.Items[i]; e.Regarding.Name == name && e.Reason == reason {
			return e
		}
	}
	return nil
}

func deleteServer(t *testing.T, srv *kamalv1.Server) {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Delete(ctx, &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: srv.Namespace, Name: srv.Name}}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, reactWithin, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(srv), &kamalv1.Server{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("server %s still present (%v)", srv.Name, err)
		}
		return nil
	})
}

func tofuServer(ns, name string, h *hosts.Host) *kamalv1.Server {
	srv := serverFor(ns, name, h)
	srv.Spec.KnownHosts = nil
	srv.Spec.HostKeyPolicy = kamalv1.HostKeyTrustOnFirstUse
	return srv
}

// The key trusted on first use is kept in the known-hosts store, which no Server owns: a
// Server deleted and created again without status accepts that key, from the store.
func TestTrustOnFirstUseKeepsTheKeyInTheStore(t *testing.T) {
	h := env.Host(hostThird)
	entry := storeKey(t, h)
	keepStoreEntry(t, entry)
	setStoreEntry(t, entry, "") // a host never seen
	ns := newNamespace(t)
	keySecret(t, ns)

	t0 := time.Now()
	srv := tofuServer(ns, "tofu-3", h)
	createServer(t, srv)
	waitReady(t, srv)
	t.Logf("first use: Ready in %s", time.Since(t0).Round(time.Millisecond))
	if got, want := fingerprintOf(t, srv.Status.TrustedHostKey), fingerprintOf(t, h.HostPublicKey()); got != want {
		t.Fatalf("trusted %s, want the host's ed25519 key %s", got, want)
	}
	held, cm := storeEntry(t, entry)
	if held != h.HostPublicKey() {
		t.Fatalf("the store holds %q for %s, want the host's key %q", held, entry, h.HostPublicKey())
	}
	if len(cm.OwnerReferences) != 0 {
		t.Errorf("the store has owners %v: deleting them would forget the keys", cm.OwnerReferences)
	}
	waitEvent(t, ns, srv.Name, "HostKeyTrusted")
	if e := eventOf(t, ns, srv.Name, "HostKeyTrusted"); e.Type != corev1.EventTypeWarning || !strings.Contains(e.Note, fingerprintOf(t, h.HostPublicKey())) {
		t.Errorf("HostKeyTrusted event %s %q, want a Warning naming the fingerprint", e.Type, e.Note)
	}

	// GitOps recreates it (or a backup without status restores it): it accepts the stored key.
	deleteServer(t, srv)
	if held, _ := storeEntry(t, entry); held != h.HostPublicKey() {
		t.Fatalf("deleting the Server changed the store's entry to %q", held)
	}
	t1 := time.Now()
	again := tofuServer(ns, "tofu-3", h)
	createServer(t, again)
	waitReady(t, again)
	t.Logf("recreated: Ready in %s", time.Since(t1).Round(time.Millisecond))
	if again.Status.TrustedHostKey != h.HostPublicKey() {
		t.Errorf("recreated Server trusts %q, want the stored %q", again.Status.TrustedHostKey, h.HostPublicKey())
	}
	waitEvent(t, ns, again.Name, "HostKeyRestored")
}

// A Server recreated without status while its address answers with another key than the one
// first seen there (simulated: the store holds another key for the address) is refused before
// authentication.
func TestTrustOnFirstUseRefusesAKeyOtherThanTheStoredOne(t *testing.T) {
	h := env.Host(hostThird)
	entry := storeKey(t, h)
	keepStoreEntry(t, entry)
	_, other, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(other)
	if err != nil {
		t.Fatal(err)
	}
	stored := remote.FormatKey(signer.PublicKey())
	setStoreEntry(t, entry, stored)
	ns := newNamespace(t)
	keySecret(t, ns)

	sshdLog := filepath.Join(h.StateDir(), "sshd.log")
	acceptedBefore := countIn(t, sshdLog, "Accepted publickey")
	started := time.Now()
	srv := tofuServer(ns, "tofu-3", h)
	createServer(t, srv)
	c := waitCondition(t, srv, kamalv1.ConditionStalled, metav1.ConditionTrue, kamalv1.ReasonHostKeyMismatch, reactWithin)
	t.Logf("Stalled in %s: %s", time.Since(started).Round(time.Millisecond), c.Message)
	if want := fingerprintOf(t, h.HostPublicKey()); !strings.Contains(c.Message, want) || !strings.Contains(c.Message, controllers.KnownHostsConfigMap) {
		t.Errorf("message %q names neither the presented key %s nor the store", c.Message, want)
	}
	waitCondition(t, srv, kamalv1.ConditionReady, metav1.ConditionFalse, kamalv1.ReasonHostKeyMismatch, time.Second)
	if srv.Status.TrustedHostKey != "" {
		t.Errorf("status.trustedHostKey = %q, want none", srv.Status.TrustedHostKey)
	}
	if held, _ := storeEntry(t, entry); held != stored {
		t.Errorf("the store's entry changed to %q", held)
	}
	if e := eventOf(t, ns, srv.Name, "HostKeyTrusted"); e != nil {
		t.Errorf("a key was trusted: %s", e.Note)
	}
	// Nothing ran: no login, nothing on the engine.
	if n := countIn(t, sshdLog, "Accepted publickey"); n != acceptedBefore {
		t.Errorf("sshd accepted %d logins meanwhile", n-acceptedBefore)
	}
	if evs := hostExec(t, h, "docker", "events", "--since", fmt.Sprintf("%d.%09d", started.Unix(), started.Nanosecond()), "--until", fmt.Sprint(time.Now().Unix()+1), "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"); evs != "" {
		t.Errorf("the engine of a refused host saw: %s", evs)
	}
}

func countIn(t *testing.T, path, s string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), s)
}
