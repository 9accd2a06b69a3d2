// Package servertarget turns a Server object into how to reach its host (a remote.Target): its
// SSH key from the Secret it names, the host keys it accepts (pinned, or recorded on first use)
// and its jump host. The controller and kubectl-kamal both reach hosts through it, so the
// plugin verifies host keys exactly as the controller does.
package servertarget

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/remote"
)

// Problem is a Server that cannot be reached as specified (a missing Secret, an unreadable
// key, a host key not recorded yet), with the condition reason to report.
type Problem struct {
	Reason  string
	Message string
}

func (p *Problem) Error() string { return p.Message }

// maxJumpDepth bounds chains of jump Servers (and breaks cycles).
const maxJumpDepth = 4

// hostKeyNotRecorded is what a caller that may not trust on first use is told about a
// TrustOnFirstUse Server whose key is not recorded yet.
const hostKeyNotRecorded = "host key not recorded yet; waiting for the Server controller"

// KeyError is a failed read of a Server's SSH key Secret (for example Forbidden), naming the
// Secret and the field that points at it.
type KeyError struct {
	Namespace, Name, Field string
	Err                    error
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("reading Secret %s/%s (%s): %v", e.Namespace, e.Name, e.Field, e.Err)
}

func (e *KeyError) Unwrap() error { return e.Err }

// signerFrom reads the private key of an ssh-auth Secret.
func signerFrom(ctx context.Context, c client.Reader, namespace, name, field string) (ssh.Signer, *Problem, error) {
	var s corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &Problem{Reason: kamalv1.ReasonSecretNotFound, Message: fmt.Sprintf("Secret %q (%s) not found", name, field)}, nil
		}
		return nil, nil, &KeyError{Namespace: namespace, Name: name, Field: field, Err: err}
	}
	signer, err := ssh.ParsePrivateKey(s.Data[corev1.SSHAuthPrivateKey])
	if err != nil {
		return nil, &Problem{Reason: kamalv1.ReasonInvalidSecret, Message: fmt.Sprintf("Secret %q (%s): %s: %v", name, field, corev1.SSHAuthPrivateKey, err)}, nil
	}
	return signer, nil, nil
}

// For builds how to reach srv: its key, accepted host keys (pinned ones plus the one recorded
// under TrustOnFirstUse) and its jump host. mayTrust says whether the caller may trust a key on
// first use: only the Server controller's connect may, and it records the key before anything
// runs. For any other caller a TrustOnFirstUse Server without a recorded key is a problem
// (reason Pending) and nothing is dialled; a jump Server without one is a problem of reason
// JumpHostNotReady for every caller.
func For(ctx context.Context, c client.Reader, srv *kamalv1.Server, mayTrust bool) (*remote.Target, *Problem, error) {
	return targetAt(ctx, c, srv, mayTrust, 0)
}

func targetAt(ctx context.Context, c client.Reader, srv *kamalv1.Server, mayTrust bool, depth int) (*remote.Target, *Problem, error) {
	if depth > maxJumpDepth {
		return nil, &Problem{Reason: kamalv1.ReasonInvalidSpec, Message: "jump hosts nest too deep (or form a cycle)"}, nil
	}
	signer, problem, err := signerFrom(ctx, c, srv.Namespace, srv.Spec.SSHKeySecretRef.Name, "spec.sshKeySecretRef")
	if problem != nil || err != nil {
		return nil, problem, err
	}
	lines := append([]string{}, srv.Spec.KnownHosts...)
	if srv.Status.TrustedHostKey != "" {
		lines = append(lines, srv.Status.TrustedHostKey)
	}
	keys, err := remote.ParseKnownHosts(lines)
	if err != nil {
		return nil, &Problem{Reason: kamalv1.ReasonInvalidSpec, Message: err.Error()}, nil
	}
	firstUse := srv.Spec.HostKeyPolicy == kamalv1.HostKeyTrustOnFirstUse && len(keys) == 0
	if firstUse && !mayTrust {
		return nil, &Problem{Reason: kamalv1.ReasonPending, Message: hostKeyNotRecorded}, nil
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
				return nil, &Problem{Reason: kamalv1.ReasonServerNotFound, Message: fmt.Sprintf("jump Server %q not found", j.ServerName)}, nil
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
			return nil, &Problem{Reason: kamalv1.ReasonInvalidSpec, Message: "jumpHost." + err.Error()}, nil
		}
		jt := &remote.Target{Address: j.Address, Port: int(j.Port), User: j.User, Signer: signer, HostKeys: jkeys, KeepAlive: t.KeepAlive, KeepAliveCountMax: t.KeepAliveCountMax}
		if jt.Port == 0 {
			jt.Port = 22
		}
		if jt.User == "" {
			jt.User = t.User
		}
		if j.SSHKeySecretRef != nil {
			if jt.Signer, problem, err = signerFrom(ctx, c, srv.Namespace, j.SSHKeySecretRef.Name, "spec.jumpHost.sshKeySecretRef"); problem != nil || err != nil {
				return nil, problem, err
			}
		}
		t.Jump = jt
	}
	return t, nil, nil
}

// RefKey reads back how a Deployment or Accessory of objNamespace names a Server in its
// placement and status: "name" for one of its own namespace, "namespace/name" for another's.
func RefKey(objNamespace, ref string) types.NamespacedName {
	if ns, name, ok := strings.Cut(ref, "/"); ok {
		return types.NamespacedName{Namespace: ns, Name: name}
	}
	return types.NamespacedName{Namespace: objNamespace, Name: ref}
}
