package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
	"github.com/kamal-operator/kamal-operator/internal/registryauth"
)

// connectTimeout bounds connecting to a host that is not connected yet.
const connectTimeout = 15 * time.Second

// connectServers connects to every Server of the namespace in parallel; unreachable ones are
// reported with the reason. Every Server is looked at, not only the selected ones: one no
// longer selected may still run something to remove. That includes Servers being deleted: they
// wait for what runs on them to be removed (ServerReconciler.finalize), and their key Secret
// stays until they are gone (KeySecretFinalizer).
func connectServers(ctx context.Context, c client.Client, f *fleet.Fleet, namespace string) (map[string]*fleet.Host, map[string]string, error) {
	var servers kamalv1.ServerList
	if err := c.List(ctx, &servers, client.InNamespace(namespace)); err != nil {
		return nil, nil, err
	}
	hosts := map[string]*fleet.Host{}
	unreachable := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range servers.Items {
		srv := &servers.Items[i]
		if h := f.Cached(serverKey(srv)); h != nil {
			mu.Lock()
			hosts[srv.Name] = h
			mu.Unlock()
			continue
		}
		// The Server controller owns the connection: while it reports the host unreachable,
		// say so at once instead of waiting out another dial here.
		if c := meta.FindStatusCondition(srv.Status.Conditions, kamalv1.ConditionReachable); c != nil &&
			c.Status == metav1.ConditionFalse && c.ObservedGeneration == srv.Generation {
			mu.Lock()
			unreachable[srv.Name] = c.Message
			mu.Unlock()
			continue
		}
		wg.Add(1)
		goSafe(func() error {
			h, err := connectServer(ctx, c, f, srv)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				return err
			}
			hosts[srv.Name] = h
			return nil
		}, func(err error) {
			if err != nil {
				mu.Lock()
				unreachable[srv.Name] = err.Error()
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	return hosts, unreachable, nil
}

func connectServer(ctx context.Context, c client.Reader, f *fleet.Fleet, srv *kamalv1.Server) (*fleet.Host, error) {
	t, problem, err := targetFor(ctx, c, srv, false)
	if err != nil {
		return nil, err
	}
	if problem != nil {
		return nil, fmt.Errorf("%s", problem.Message)
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	return f.Connect(cctx, serverKey(srv), t, srv.Spec.Docker.SocketPath)
}

// pullAuthFor encodes the registry credentials of pullSecrets for image's registry.
func pullAuthFor(ctx context.Context, c client.Reader, namespace, image string, pullSecrets []corev1.LocalObjectReference) (string, *refProblem, error) {
	var configs [][]byte
	for _, ref := range pullSecrets {
		var s corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, &s); err != nil {
			return "", nil, err
		}
		configs = append(configs, s.Data[corev1.DockerConfigJsonKey])
	}
	auth, err := registryauth.For(image, configs)
	if err != nil {
		return "", &refProblem{Reason: kamalv1.ReasonInvalidSecret, Message: err.Error()}, nil
	}
	return auth, nil, nil
}
