package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/controllers"
	"github.com/kamal-operator/kamal-operator/internal/registryauth"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

// pullsSince counts, on each web host, the pulls of image since t.
func pullsSince(t *testing.T, since time.Time, image string) map[int]int {
	t.Helper()
	out := map[int]int{}
	until := time.Now()
	for _, i := range webHosts {
		events := hostExec(t, env.Host(i), "docker", "events",
			"--since", fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()), "--until", fmt.Sprintf("%d.%09d", until.Unix(), until.Nanosecond()),
			"--filter", "type=image", "--filter", "event=pull", "--format", "{{.Actor.ID}}")
		for _, e := range strings.Fields(events) {
			if e == image {
				out[i]++
			}
		}
	}
	return out
}

// privateRecord is the set of repositories in the record of private images.
func privateRecord(t *testing.T) (*corev1.ConfigMap, map[string]string) {
	t.Helper()
	var cm corev1.ConfigMap
	err := k8s.Get(context.Background(), types.NamespacedName{Namespace: framework.ControllerNamespace, Name: controllers.PrivateImagesConfigMap}, &cm)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	repos := map[string]string{}
	for k, v := range cm.Data {
		repos[v] = k
	}
	return &cm, repos
}

// forgetPrivate takes repo out of the record of private images, so that later tests find the
// fixture images public again.
func forgetPrivate(t *testing.T, repo string) {
	t.Helper()
	framework.Eventually(t, 10*time.Second, func() error {
		cm, repos := privateRecord(t)
		if _, ok := repos[repo]; !ok {
			return nil
		}
		delete(cm.Data, repos[repo])
		return k8s.Update(context.Background(), cm)
	})
}

// An image that an object has credentials for is pulled before every new container of it, for
// any object, even when the hosts have it: with the object's credentials, or with none for an
// object without (which a registry with authentication refuses: the test registry has none, so
// that refusal is not seen here). An image no object has credentials for is used as the hosts
// have it.
func TestPrivateImageIsPulledForEveryNewContainer(t *testing.T) {
	ns := fleetNS(t)
	ctx := context.Background()
	image := env.Image("sampleapp:v1")
	repo := registryauth.Repository(image)
	forgetPrivate(t, repo)
	t.Cleanup(func() { forgetPrivate(t, repo) })
	roll := func(d *kamalv1.Deployment, round string) time.Time {
		t.Helper()
		since := time.Now()
		update(t, d, func(d *kamalv1.Deployment) { d.Spec.Env = []kamalv1.EnvVar{{Name: "ROUND", Value: round}} })
		waitDeployed(t, d)
		return since
	}

	// A public image: once the hosts have it, a new container is made without a pull.
	pub := appDeployment(ns, "pub", "v1")
	pub.Spec.Rollout.MaxParallel = ptr.To(intstr.FromString("100%"))
	createDeployment(t, pub)
	waitDeployed(t, pub)
	since := roll(pub, "1")
	if n := pullsSince(t, since, image); len(n) > 0 {
		t.Errorf("a public image the hosts have was pulled again: %v pulls per host", n)
	}

	// An object with credentials for it: its image becomes private, and is pulled, with them,
	// though every host has it.
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "registry"}, Type: corev1.SecretTypeDockerConfigJson,
		StringData: map[string]string{corev1.DockerConfigJsonKey: `{"auths":{"` + env.RegistryAddress() + `":{"username":"kamal","password":"not-checked-by-the-test-registry"}}}`}}); err != nil {
		t.Fatal(err)
	}
	since = time.Now()
	priv := appDeployment(ns, "priv", "v1")
	priv.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "registry"}}
	priv.Spec.Rollout.MaxParallel = ptr.To(intstr.FromString("100%"))
	createDeployment(t, priv)
	waitDeployed(t, priv)
	if n := pullsSince(t, since, image); len(n) != len(webHosts) {
		t.Errorf("the image was not pulled with the object's credentials on every host: %v pulls per host", n)
	}
	if _, repos := privateRecord(t); repos[repo] == "" {
		t.Errorf("%s is not in the record of private images: %v", repo, repos)
	}
	since = roll(priv, "1")
	if n := pullsSince(t, since, image); len(n) != len(webHosts) {
		t.Errorf("a new container of the object with credentials made no pull on every host: %v pulls per host", n)
	}

	// The object without credentials: its next container needs a pull too, without any.
	since = roll(pub, "2")
	if n := pullsSince(t, since, image); len(n) != len(webHosts) {
		t.Errorf("a private image the hosts have was run for an object without credentials with no pull on every host: %v pulls per host", n)
	}
}
