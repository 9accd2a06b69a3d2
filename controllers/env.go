package controllers

import (
	"context"
	"fmt"
	"regexp"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

var envName = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)

// envResolver reads env values from Secrets and ConfigMaps, each object once per reconcile.
type envResolver struct {
	c          client.Reader
	namespace  string
	secrets    map[string]*corev1.Secret
	configMaps map[string]*corev1.ConfigMap
}

func newEnvResolver(c client.Reader, namespace string) *envResolver {
	return &envResolver{c: c, namespace: namespace, secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{}}
}

func (r *envResolver) secret(ctx context.Context, name string) (*corev1.Secret, error) {
	if s, ok := r.secrets[name]; ok {
		return s, nil
	}
	s := &corev1.Secret{}
	if err := r.c.Get(ctx, types.NamespacedName{Namespace: r.namespace, Name: name}, s); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
		s = nil
	}
	r.secrets[name] = s
	return s, nil
}

func (r *envResolver) configMap(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	if c, ok := r.configMaps[name]; ok {
		return c, nil
	}
	c := &corev1.ConfigMap{}
	if err := r.c.Get(ctx, types.NamespacedName{Namespace: r.namespace, Name: name}, c); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
		c = nil
	}
	r.configMaps[name] = c
	return c, nil
}

// orderedEnv keeps the first position of each name and the last value, like a shell.
type orderedEnv struct {
	names  []string
	values map[string]string
}

func (o *orderedEnv) set(k, v string) {
	if o.values == nil {
		o.values = map[string]string{}
	}
	if _, ok := o.values[k]; !ok {
		o.names = append(o.names, k)
	}
	o.values[k] = v
}

func (o *orderedEnv) list() []string {
	out := make([]string, 0, len(o.names))
	for _, k := range o.names {
		out = append(out, k+"="+o.values[k])
	}
	return out
}

// resolve adds envFrom then env, as Kubernetes does; later layers win. Problems name the
// object and key, never a value.
func (r *envResolver) resolve(ctx context.Context, out *orderedEnv, field string, env []kamalv1.EnvVar, envFrom []kamalv1.EnvFromSource) (*refProblem, error) {
	for i, ef := range envFrom {
		var data map[string]string
		switch {
		case ef.SecretRef != nil:
			s, err := r.secret(ctx, ef.SecretRef.Name)
			if err != nil {
				return nil, err
			}
			if s == nil {
				if isOpt(ef.SecretRef.Optional) {
					continue
				}
				return &refProblem{Reason: kamalv1.ReasonSecretNotFound, Message: fmt.Sprintf("Secret %q (%s.envFrom[%d]) not found", ef.SecretRef.Name, field, i)}, nil
			}
			data = map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		case ef.ConfigMapRef != nil:
			c, err := r.configMap(ctx, ef.ConfigMapRef.Name)
			if err != nil {
				return nil, err
			}
			if c == nil {
				if isOpt(ef.ConfigMapRef.Optional) {
					continue
				}
				return &refProblem{Reason: kamalv1.ReasonConfigMapNotFound, Message: fmt.Sprintf("ConfigMap %q (%s.envFrom[%d]) not found", ef.ConfigMapRef.Name, field, i)}, nil
			}
			data = c.Data
		}
		for _, k := range sortedKeys(data) {
			if envName.MatchString(ef.Prefix + k) {
				out.set(ef.Prefix+k, data[k])
			}
		}
	}
	for _, e := range env {
		if e.ValueFrom == nil {
			out.set(e.Name, e.Value)
			continue
		}
		v, ok, problem, err := r.value(ctx, field+".env["+e.Name+"]", e.ValueFrom)
		if err != nil || problem != nil {
			return problem, err
		}
		if ok {
			out.set(e.Name, v)
		}
	}
	return nil, nil
}

func (r *envResolver) value(ctx context.Context, field string, src *kamalv1.EnvVarSource) (string, bool, *refProblem, error) {
	v, ok, problem, err := r.content(ctx, field, src, false)
	return string(v), ok, problem, err
}

// content reads the Secret or ConfigMap key src names (and a ConfigMap's binaryData too, with
// binary). ok is false for an optional reference that is missing.
func (r *envResolver) content(ctx context.Context, field string, src *kamalv1.EnvVarSource, binary bool) ([]byte, bool, *refProblem, error) {
	if s := src.SecretKeyRef; s != nil {
		sec, err := r.secret(ctx, s.Name)
		if err != nil {
			return nil, false, nil, err
		}
		if sec == nil || sec.Data[s.Key] == nil {
			if isOpt(s.Optional) {
				return nil, false, nil, nil
			}
			if sec == nil {
				return nil, false, &refProblem{Reason: kamalv1.ReasonSecretNotFound, Message: fmt.Sprintf("Secret %q (%s) not found", s.Name, field)}, nil
			}
			return nil, false, &refProblem{Reason: kamalv1.ReasonInvalidSecret, Message: fmt.Sprintf("Secret %q (%s) has no key %q", s.Name, field, s.Key)}, nil
		}
		return sec.Data[s.Key], true, nil, nil
	}
	c := src.ConfigMapKeyRef
	cm, err := r.configMap(ctx, c.Name)
	if err != nil {
		return nil, false, nil, err
	}
	var v []byte
	ok := false
	if cm != nil {
		var str string
		if str, ok = cm.Data[c.Key]; ok {
			v = []byte(str)
		} else if binary {
			v, ok = cm.BinaryData[c.Key]
		}
	}
	if !ok {
		if isOpt(c.Optional) {
			return nil, false, nil, nil
		}
		return nil, false, &refProblem{Reason: kamalv1.ReasonConfigMapNotFound, Message: fmt.Sprintf("ConfigMap %q (%s) has no key %q", c.Name, field, c.Key)}, nil
	}
	return v, true, nil, nil
}

func isOpt(b *bool) bool { return b != nil && *b }
