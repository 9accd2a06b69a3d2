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
	"github.com/kamal-operator/kamal-operator/internal/refs"
)

// refProblem is a referenced object that is missing or unusable: retrying will not help until
// it is created or fixed, so it stalls the object.
type refProblem struct {
	Reason  string
	Message string
}

func (p *refProblem) Error() string { return p.Message }

// checkRefs reads every referenced object and returns the first problem, or an error for a
// failed read that a retry may fix. Messages name the object and the field, never content.
func checkRefs(ctx context.Context, c client.Reader, namespace string, rs []refs.Ref) (*refProblem, error) {
	for _, r := range rs {
		key := types.NamespacedName{Namespace: namespace, Name: r.Name}
		var obj client.Object
		switch r.Kind {
		case "Secret":
			obj = &corev1.Secret{}
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "Server":
			obj = &kamalv1.Server{}
		case "Accessory":
			obj = &kamalv1.Accessory{}
		default:
			return nil, fmt.Errorf("unknown reference kind %q", r.Kind)
		}
		if err := c.Get(ctx, key, obj); err != nil {
			if !apierrors.IsNotFound(err) {
				return nil, err
			}
			if r.Optional {
				continue
			}
			return &refProblem{Reason: notFoundReason(r.Kind), Message: fmt.Sprintf("%s %q (%s) not found", r.Kind, r.Name, r.Field)}, nil
		}
		if p := checkContent(r, obj); p != nil {
			return p, nil
		}
	}
	return nil, nil
}

func notFoundReason(kind string) string {
	switch kind {
	case "Secret":
		return kamalv1.ReasonSecretNotFound
	case "ConfigMap":
		return kamalv1.ReasonConfigMapNotFound
	case "Server":
		return kamalv1.ReasonServerNotFound
	default:
		return kamalv1.ReasonAccessoryNotFound
	}
}

// checkContent checks a Secret's type and key and a ConfigMap's key.
func checkContent(r refs.Ref, obj client.Object) *refProblem {
	invalid := func(format string, args ...any) *refProblem {
		return &refProblem{Reason: kamalv1.ReasonInvalidSecret, Message: fmt.Sprintf("%s %q (%s) ", r.Kind, r.Name, r.Field) + fmt.Sprintf(format, args...)}
	}
	switch o := obj.(type) {
	case *corev1.Secret:
		if r.SecretType != "" && string(o.Type) != r.SecretType {
			return invalid("has type %q, want %q", o.Type, r.SecretType)
		}
		if r.Key != "" {
			v, ok := o.Data[r.Key]
			if !ok {
				return invalid("has no key %q", r.Key)
			}
			if r.Key == refs.SSHPrivateKeyKey {
				if _, err := ssh.ParsePrivateKey(v); err != nil {
					// The parser's error never quotes key material.
					return invalid("key %q is not a usable private key: %v", r.Key, err)
				}
			}
		}
	case *corev1.ConfigMap:
		if r.Key != "" {
			_, inData := o.Data[r.Key]
			_, inBinary := o.BinaryData[r.Key]
			if !inData && !inBinary && !r.Optional {
				return &refProblem{Reason: kamalv1.ReasonConfigMapNotFound, Message: fmt.Sprintf("ConfigMap %q (%s) has no key %q", r.Name, r.Field, r.Key)}
			}
		}
	}
	return nil
}
