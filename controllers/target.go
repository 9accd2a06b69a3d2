package controllers

import (
	"context"
	"fmt"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
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

// targetFor builds how to reach srv: its key, accepted host keys (pinned ones plus the one
// recorded under TrustOnFirstUse) and its jump host.
func targetFor(ctx context.Context, c client.Reader, srv *kamalv1.Server, depth int) (*remote.Target, *refProblem, error) {
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
	t := &remote.Target{
		Address: srv.Spec.Address, Port: int(srv.Spec.Port), User: srv.Spec.User,
		Signer: signer, HostKeys: keys,
		TrustOnFirstUse: srv.Spec.HostKeyPolicy == kamalv1.HostKeyTrustOnFirstUse,
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
		jt, problem, err := targetFor(ctx, c, &js, depth+1)
		if problem != nil || err != nil {
			if problem != nil {
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
		jt := &remote.Target{Address: j.Address, Port: int(j.Port), User: j.User, Signer: signer, HostKeys: jkeys, KeepAlive: t.KeepAlive}
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
