package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kamal-operator/kamal-operator/internal/docker"
	"github.com/kamal-operator/kamal-operator/internal/registryauth"
)

// PrivateImagesConfigMap is the record of private images: a ConfigMap in the controller's own
// namespace that keeps every image repository an object has credentials for (value: the
// repository, "10.0.0.9:5000/team/app"; key: its hash, as ConfigMap keys cannot hold '/').
// A host keeps an image after the object that pulled it is gone, and Docker does not remember
// that a pull needed credentials: the record does, so that every later container of such an
// image, for any object, is pulled first with that object's own credentials (docker.Pull).
// Entries are never removed by the controller; removing one makes that repository public again.
const PrivateImagesConfigMap = "kamal-operator-private-images"

// The Deployment and Accessory controllers keep the record, in the controller's namespace.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch

// privateImages reads and writes PrivateImagesConfigMap.
type privateImages struct {
	c         client.Client // reads through refClient: once per change of the record
	fresh     client.Reader // reads before a write, from the API server
	namespace string
}

func privateImageKey(repo string) string {
	sum := sha256.Sum256([]byte(repo))
	return "r-" + hex.EncodeToString(sum[:16])
}

func (p privateImages) key() types.NamespacedName {
	return types.NamespacedName{Namespace: p.namespace, Name: PrivateImagesConfigMap}
}

// recorded says whether repo is in the record.
func (p privateImages) recorded(ctx context.Context, repo string) (bool, error) {
	var cm corev1.ConfigMap
	if err := p.c.Get(ctx, p.key(), &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("reading the record of private images %s: %w", p.key(), err)
	}
	return cm.Data[privateImageKey(repo)] != "", nil
}

// record adds repo, creating the ConfigMap or updating it with the resourceVersion just read,
// retried on conflicts with other writes.
func (p privateImages) record(ctx context.Context, repo string) error {
	err := retry.OnError(retry.DefaultBackoff, func(err error) bool {
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
	}, func() error {
		var cm corev1.ConfigMap
		err := p.fresh.Get(ctx, p.key(), &cm)
		if apierrors.IsNotFound(err) {
			cm = corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: p.namespace, Name: PrivateImagesConfigMap,
					Labels: map[string]string{"app.kubernetes.io/managed-by": "kamal-operator"}},
				Data: map[string]string{privateImageKey(repo): repo},
			}
			return p.c.Create(ctx, &cm)
		}
		if err != nil {
			return err
		}
		if cm.Data[privateImageKey(repo)] != "" {
			return nil
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[privateImageKey(repo)] = repo
		return p.c.Update(ctx, &cm)
	})
	if err != nil {
		return fmt.Errorf("writing the record of private images %s: %w", p.key(), err)
	}
	return nil
}

// pullFor is how an object pulls image: with the credentials of its imagePullSecrets for the
// image's registry, and again before each new container when the image's repository is
// private. A repository becomes private, in the record, as soon as an object has credentials
// for it, before it is pulled with them.
func (p privateImages) pullFor(ctx context.Context, c client.Reader, namespace, image string, pullSecrets []corev1.LocalObjectReference) (docker.Pull, *refProblem, error) {
	auth, problem, err := pullAuthFor(ctx, c, namespace, image, pullSecrets)
	if err != nil || problem != nil {
		return docker.Pull{}, problem, err
	}
	repo := registryauth.Repository(image)
	private, err := p.recorded(ctx, repo)
	if err != nil {
		return docker.Pull{}, nil, err
	}
	if auth != "" && !private {
		if err := p.record(ctx, repo); err != nil {
			return docker.Pull{}, nil, err
		}
		private = true
	}
	return docker.Pull{Auth: auth, Private: private}, nil, nil
}
