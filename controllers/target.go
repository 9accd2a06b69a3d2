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
	"github.com/kamal-operator/kamal-operator/internal/servertarget"
)

// targetFor builds how to reach srv (servertarget.For), with its problem as a refProblem.
func targetFor(ctx context.Context, c client.Reader, srv *kamalv1.Server, mayTrust bool) (*remote.Target, *refProblem, error) {
	t, problem, err := servertarget.For(ctx, c, srv, mayTrust)
	if problem != nil {
		return nil, &refProblem{Reason: problem.Reason, Message: problem.Message}, nil
	}
	return t, nil, err
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
