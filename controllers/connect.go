package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// connectServers connects to every Server of the namespace, and to the Servers of other
// namespaces in guests (serverRefs), in parallel; unreachable ones are reported with the reason,
// both keyed by serverRef. Every Server is looked at, not only the selected ones: one no longer
// selected may still run something to remove. That includes Servers being deleted: they wait
// for what runs on them to be removed (ServerReconciler.finalize), and their key Secret stays
// until they are gone (KeySecretFinalizer). A Server that duplicates another is never used: its
// host is the other's, and what runs there belongs to the other's selection.
func connectServers(ctx context.Context, c client.Client, f *fleet.Fleet, namespace string, guests ...string) (map[string]*fleet.Host, map[string]string, error) {
	servers, err := usableServers(ctx, c, namespace, guests)
	if err != nil {
		return nil, nil, err
	}
	hosts := map[string]*fleet.Host{}
	unreachable := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, srv := range servers {
		ref := serverRef(namespace, srv)
		if h := f.Cached(serverKey(srv)); h != nil {
			mu.Lock()
			hosts[ref] = h
			mu.Unlock()
			continue
		}
		// The Server controller owns the connection: while it reports the host unreachable,
		// say so at once instead of waiting out another dial here.
		if c := meta.FindStatusCondition(srv.Status.Conditions, kamalv1.ConditionReachable); c != nil &&
			c.Status == metav1.ConditionFalse && c.ObservedGeneration == srv.Generation {
			mu.Lock()
			unreachable[ref] = c.Message
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
			hosts[ref] = h
			return nil
		}, func(err error) {
			if err != nil {
				mu.Lock()
				unreachable[ref] = err.Error()
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	return hosts, unreachable, nil
}

// usableServers are the Servers connectServers looks at: all but duplicates.
// Whether a Server of another namespace allows this one is placement's to check (placeAll, before
// anything is placed); one that no longer does is still looked at, so the object can remove what
// it ran there — only its own containers, by their labels.
func usableServers(ctx context.Context, c client.Reader, namespace string, guests []string) ([]*kamalv1.Server, error) {
	var own kamalv1.ServerList
	if err := c.List(ctx, &own, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	candidates := make([]*kamalv1.Server, 0, len(own.Items)+len(guests))
	for i := range own.Items {
		candidates = append(candidates, &own.Items[i])
	}
	for _, ref := range guests {
		srv := &kamalv1.Server{}
		if err := c.Get(ctx, serverKeyOf(namespace, ref), srv); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		if srv.Namespace != namespace {
			candidates = append(candidates, srv)
		}
	}
	var out []*kamalv1.Server
	for _, srv := range candidates {
		owner, _, err := hostOwner(ctx, c, srv)
		if err != nil {
			return nil, err
		}
		if owner == nil {
			out = append(out, srv)
		}
	}
	return out, nil
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
