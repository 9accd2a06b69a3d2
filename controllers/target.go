package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/remote"
)

// maxJumpDepth bounds chains of jump Servers (and breaks cycles).
const maxJumpDepth = 4

// signerFrom reads the private key of an ssh-auth Secret; checkRefs has checked its shape.
func signerFrom(ctx context.Context, c client.Reader, namespace, name string) (ssh.Signer, error) {
	var s corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &s); err != nil {
		return nil, err
	}
	return ssh.ParsePrivateKey(s.Data[corev1.SSHAuthPrivateKey])
}

// hostKeyNotRecorded is what a caller that may not trust on first use is told about a
// TrustOnFirstUse Server whose key is not recorded yet.
const hostKeyNotRecorded = "host key not recorded yet; waiting for the Server controller"

// targetFor builds how to reach srv: its key, accepted host keys (pinned ones plus the one
// recorded under TrustOnFirstUse) and its jump host. mayTrust says whether the caller may trust
// a key on first use: only the Server controller's connect may, and it records the key (see
// knownHostsStore) before anything runs. For any other caller a TrustOnFirstUse Server without a
// recorded key is a problem (reason Pending) and nothing is dialled; a jump Server without one
// is a problem of reason JumpHostNotReady for every caller.
func targetFor(ctx context.Context, c client.Reader, srv *kamalv1.Server, mayTrust bool) (*remote.Target, *refProblem, error) {
	return targetAt(ctx, c, srv, mayTrust, 0)
}

func targetAt(ctx context.Context, c client.Reader, srv *kamalv1.Server, mayTrust bool, depth int) (*remote.Target, *refProblem, error) {
	if depth > maxJumpDepth {
		return nil, &refProblem{Reason: kamalv1.ReasonInvalidSpec, Message: "jump hosts nest too deep (or form a cycle)"}, nil
	}
	signer, err := signerFrom(ctx, c, srv.Namespace, srv.Spec.SSHKeySecretRef.Name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &refProblem{Reason: kamalv1.ReasonSecretNotFound, Message: fmt.Sprintf("Secret %q (spec.sshKeySecretRef) not found", srv.Spec.SSHKeySecretRef.Name)}, nil
		}
		return nil, nil, err
	}
	lines := append([]string{}, srv.Spec.KnownHosts...)
	if srv.Status.TrustedHostKey != "" {
		lines = append(lines, srv.Status.TrustedHostKey)
	}
	keys, err := remote.ParseKnownHosts(lines)
	if err != nil {
		return nil, &refProblem{Reason: kamalv1.ReasonInvalidSpec, Message: err.Error()}, nil
	}
	firstUse := srv.Spec.HostKeyPolicy == kamalv1.HostKeyTrustOnFirstUse && len(keys) == 0
	if firstUse && !mayTrust {
		return nil, &refProblem{Reason: kamalv1.ReasonPending, Message: hostKeyNotRecorded}, nil
	}
	t := &remote.Target{
		Address: srv.Spec.Address, Port: int(srv.Spec.Port), User: srv.Spec.User,
		Signer: signer, HostKeys: keys,
		// Only while nothing is recorded: a Target with keys is the same connection for every
		// caller sharing the pool.
		TrustOnFirstUse: firstUse,
	}
	if t.Port == 0 {
		t.Port = 22
	}
	if t.User == "" {
		t.User = "root"
	}
	if srv.Spec.KeepAliveInterval != nil {
		t.KeepAlive = srv.Spec.KeepAliveInterval.Duration
	}
	t.KeepAliveCountMax = int(srv.Spec.KeepAliveCountMax)
	j := srv.Spec.JumpHost
	switch {
	case j == nil:
	case j.ServerName != "":
		var js kamalv1.Server
		if err := c.Get(ctx, types.NamespacedName{Namespace: srv.Namespace, Name: j.ServerName}, &js); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &refProblem{Reason: kamalv1.ReasonServerNotFound, Message: fmt.Sprintf("jump Server %q not found", j.ServerName)}, nil
			}
			return nil, nil, err
		}
		// Only the jump Server's own reconcile trusts its key on first use.
		jt, problem, err := targetAt(ctx, c, &js, false, depth+1)
		if problem != nil || err != nil {
			if problem != nil {
				if problem.Reason == kamalv1.ReasonPending {
					problem.Reason = kamalv1.ReasonJumpHostNotReady
				}
				problem.Message = "jump Server " + j.ServerName + ": " + problem.Message
			}
			return nil, problem, err
		}
		t.Jump = jt
	default:
		jkeys, err := remote.ParseKnownHosts(j.KnownHosts)
		if err != nil {
			return nil, &refProblem{Reason: kamalv1.ReasonInvalidSpec, Message: "jumpHost." + err.Error()}, nil
		}
		jt := &remote.Target{Address: j.Address, Port: int(j.Port), User: j.User, Signer: signer, HostKeys: jkeys, KeepAlive: t.KeepAlive, KeepAliveCountMax: t.KeepAliveCountMax}
		if jt.Port == 0 {
			jt.Port = 22
		}
		if jt.User == "" {
			jt.User = t.User
		}
		if j.SSHKeySecretRef != nil {
			if jt.Signer, err = signerFrom(ctx, c, srv.Namespace, j.SSHKeySecretRef.Name); err != nil {
				if apierrors.IsNotFound(err) {
					return nil, &refProblem{Reason: kamalv1.ReasonSecretNotFound, Message: fmt.Sprintf("Secret %q (spec.jumpHost.sshKeySecretRef) not found", j.SSHKeySecretRef.Name)}, nil
				}
				return nil, nil, err
			}
		}
		t.Jump = jt
	}
	return t, nil, nil
}

// KnownHostsConfigMap is the known-hosts store: a ConfigMap in the controller's own namespace
// that keeps every host key trusted on first use, under the host's address and port
// (remote.StoreKey: "10.0.0.5_22"), in authorized_keys form. It belongs to no Server, so a
// Server deleted and created again (by GitOps, or restored from a backup without its status)
// accepts only the key first seen at its address instead of trusting whatever answers next.
const KnownHostsConfigMap = "kamal-operator-known-hosts"

// The Server controller keeps the known-hosts store (cluster-wide for now: the store's
// namespace is only known at run time).
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch

// knownHostsStore reads and writes KnownHostsConfigMap.
type knownHostsStore struct {
	c client.Client
	// fresh reads the store before a write, from the API server (c may answer from a cache
	// that is behind); c when nil.
	fresh     client.Reader
	namespace string
}

func (s knownHostsStore) name() string { return s.namespace + "/" + KnownHostsConfigMap }

// lookup returns the key kept for entry, "" when there is none.
func (s knownHostsStore) lookup(ctx context.Context, entry string) (string, error) {
	var cm corev1.ConfigMap
	err := s.c.Get(ctx, types.NamespacedName{Namespace: s.namespace, Name: KnownHostsConfigMap}, &cm)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the known-hosts store %s: %w", s.name(), err)
	}
	return cm.Data[entry], nil
}

// errStoreHoldsOtherKey: the store gained another key for the entry since it was read.
type errStoreHoldsOtherKey struct{ entry, held string }

func (e *errStoreHoldsOtherKey) Error() string {
	return fmt.Sprintf("the known-hosts store holds another key for %s (%s)", e.entry, fingerprintOf(e.held))
}

// record keeps key under entry: it creates the ConfigMap or updates it with the resourceVersion
// it read as precondition, so an entry written meanwhile (by another Server at the same
// address, or another replica) is never overwritten; such an entry with another key is an
// *errStoreHoldsOtherKey. Conflicts with writes of other entries are retried.
func (s knownHostsStore) record(ctx context.Context, entry, key string) error {
	err := retry.OnError(retry.DefaultBackoff, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
	}, func() error {
		fresh := s.fresh
		if fresh == nil {
			fresh = s.c
		}
		var cm corev1.ConfigMap
		err := fresh.Get(ctx, types.NamespacedName{Namespace: s.namespace, Name: KnownHostsConfigMap}, &cm)
		if apierrors.IsNotFound(err) {
			cm = corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: KnownHostsConfigMap,
					Labels: map[string]string{"app.kubernetes.io/managed-by": "kamal-operator"}},
				Data: map[string]string{entry: key},
			}
			return s.c.Create(ctx, &cm)
		}
		if err != nil {
			return err
		}
		switch held := cm.Data[entry]; {
		case held != "" && fingerprintOf(held) == fingerprintOf(key):
			return nil
		case held != "":
			return &errStoreHoldsOtherKey{entry: entry, held: held}
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[entry] = key
		return s.c.Update(ctx, &cm) // carries cm's resourceVersion: a precondition
	})
	var other *errStoreHoldsOtherKey
	if err != nil && !errors.As(err, &other) {
		return fmt.Errorf("writing the known-hosts store %s: %w", s.name(), err)
	}
	return err
}

// fingerprintOf is the SHA256 fingerprint of an authorized_keys line, or the line itself when
// it does not parse.
func fingerprintOf(line string) string {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return line
	}
	return ssh.FingerprintSHA256(k)
}

// firstUse is what the Server controller needs to trust a TrustOnFirstUse Server's key on
// first use: the store and the Server's entry in it.
type firstUse struct {
	store knownHostsStore
	entry string // remote.StoreKey of the Server's address and port
	held  string // the key the store keeps for entry when it was read; "" for none
}

// trustFromStore narrows t, the Target of a TrustOnFirstUse Server without knownHosts, to the
// store: with a key kept for its address and port only that key is accepted. A key in status
// that differs from the kept one is a problem (HostKeyMismatch): both were seen at this
// address, and only a person can say which is right. It returns the Server's entry, for
// recording the key once the host has shown it.
func trustFromStore(ctx context.Context, store knownHostsStore, srv *kamalv1.Server, t *remote.Target) (*firstUse, *refProblem, error) {
	entry, err := remote.StoreKey(t.Address, t.Port)
	if err != nil {
		return nil, &refProblem{Reason: kamalv1.ReasonInvalidSpec, Message: "spec.address: " + err.Error()}, nil
	}
	held, err := store.lookup(ctx, entry)
	if err != nil {
		return nil, nil, err
	}
	fu := &firstUse{store: store, entry: entry, held: held}
	if held == "" {
		return fu, nil, nil
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(held))
	if err != nil {
		return nil, &refProblem{Reason: kamalv1.ReasonHostKeyMismatch, Message: fmt.Sprintf(
			"the known-hosts store %s holds an unreadable key for %s (%v): refusing to connect; fix or delete that entry", store.name(), entry, err)}, nil
	}
	if recorded := srv.Status.TrustedHostKey; recorded != "" && fingerprintOf(recorded) != ssh.FingerprintSHA256(key) {
		return nil, &refProblem{Reason: kamalv1.ReasonHostKeyMismatch, Message: fmt.Sprintf(
			"status.trustedHostKey (%s) is not the key the known-hosts store %s keeps for %s (%s): refusing to connect; "+
				"to trust a new key deliberately, delete that entry and clear status.trustedHostKey",
			fingerprintOf(recorded), store.name(), entry, ssh.FingerprintSHA256(key))}, nil
	}
	t.HostKeys = []ssh.PublicKey{key}
	t.TrustOnFirstUse = false
	return fu, nil, nil
}

// trustFirstKey learns the key t's host shows, before authenticating (remote.ScanHostKey,
// ed25519 preferred), and keeps it in the store under the Server's entry. Only then may a
// connection authenticate, pinned to that key. When the store refuses it, the key shown comes
// back with the error, for the message.
func (fu *firstUse) trustFirstKey(ctx context.Context, t *remote.Target) (ssh.PublicKey, error) {
	key, err := remote.ScanHostKey(ctx, t)
	if err != nil {
		return nil, err
	}
	if err := fu.store.record(ctx, fu.entry, remote.FormatKey(key)); err != nil {
		return key, err // not trusted
	}
	fu.held = remote.FormatKey(key)
	return key, nil
}

// keep makes sure the store holds key, accepted through status.trustedHostKey, for the Server's
// entry: a key trusted before the store existed is kept from now on too.
func (fu *firstUse) keep(ctx context.Context, key ssh.PublicKey) error {
	if fu.held != "" {
		return nil
	}
	if err := fu.store.record(ctx, fu.entry, remote.FormatKey(key)); err != nil {
		return err
	}
	fu.held = remote.FormatKey(key)
	return nil
}

// mismatch is the problem a store write that met another key for the entry amounts to (nil
// for any other error): the host showed presented, the store keeps another key for its address.
func (fu *firstUse) mismatch(err error, presented ssh.PublicKey) *refProblem {
	var other *errStoreHoldsOtherKey
	if !errors.As(err, &other) || presented == nil {
		return nil
	}
	return &refProblem{Reason: kamalv1.ReasonHostKeyMismatch, Message: fmt.Sprintf(
		"host key %s is not the key the known-hosts store %s keeps for %s (%s): refusing to connect; "+
			"to trust a new key deliberately, delete that entry and clear status.trustedHostKey",
		ssh.FingerprintSHA256(presented), fu.store.name(), fu.entry, fingerprintOf(other.held))}
}

// storeRecheck is how soon a TrustOnFirstUse Server refused its host's key looks again: the
// known-hosts store is not watched, and deleting an entry is how a person trusts a new key.
const storeRecheck = time.Minute

// afterMismatch is when a Server that refused its host's key reconciles again besides on a
// change of it: never for a pinned one (its spec must change), storeRecheck for one under
// TrustOnFirstUse.
func afterMismatch(srv *kamalv1.Server) time.Duration {
	if srv.Spec.HostKeyPolicy == kamalv1.HostKeyTrustOnFirstUse && len(srv.Spec.KnownHosts) == 0 {
		return storeRecheck
	}
	return 0
}

// mismatchHint says, in a HostKeyMismatch message, where the accepted keys come from.
func (fu *firstUse) mismatchHint() string {
	if fu == nil {
		return "check spec.knownHosts"
	}
	return fmt.Sprintf("it is not the key trusted on first use for %s, kept in status.trustedHostKey and the known-hosts store %s; "+
		"to trust a new key deliberately, delete that entry and clear status.trustedHostKey", fu.entry, fu.store.name())
}
