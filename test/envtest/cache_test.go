package envtest

import (
	"context"
	"encoding/base64"
	"path"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/controllers"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

// secretReads counts the controllers' reads of the named Secret or ConfigMap of ns.
func secretReads(ns, resource, name string) int {
	n := 0
	for _, r := range mgr.SecretRequests() {
		if r.Method == "GET" && r.Path == "/api/v1/namespaces/"+ns+"/"+resource+"/"+name {
			n++
		}
	}
	return n
}

// reconciledAgain changes a plain env value of d, which only a reconcile can take in, and
// waits until its Ready condition is of the new generation.
func reconciledAgain(t *testing.T, d *kamalv1.Deployment, value string) {
	t.Helper()
	ctx := context.Background()
	eventually(t, waitFor, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		d.Spec.Env = append(d.Spec.Env[:1], kamalv1.EnvVar{Name: "TOUCH", Value: value})
		return k8s.Update(ctx, d)
	})
	waitReady(t, d, func() []metav1.Condition { return d.Status.Conditions }, kamalv1.ReasonUnreachable)
}

// The controllers learn of Secrets and ConfigMaps from their metadata only, read the ones
// that objects name from the API server, once per change, and never read the others.
func TestSecretsAndConfigMapsAreReadOnlyWhenReferenced(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	create := func(obj client.Object) {
		t.Helper()
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unrelated",
		Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"token":"c2VjcmV0"}}`}},
		StringData: map[string]string{"token": "secret"}})
	create(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unrelated"}, Data: map[string]string{"a": "b"}})
	appSecrets := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-secrets"}, StringData: map[string]string{"OTHER": "x"}}
	create(appSecrets)
	create(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-config"}, Data: map[string]string{"MODE": "a"}})
	create(sshKeySecret(t, ns, "deploy-key"))
	auth := base64.StdEncoding.EncodeToString([]byte("bot:token"))
	create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "registry"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"registry.example.com:5000":{"auth":"` + auth + `"}}}`)}})
	create(validServer(ns))
	d := validDeployment(ns)
	d.Spec.Env = []kamalv1.EnvVar{{Name: "DATABASE_URL", ValueFrom: &kamalv1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "app-secrets"}, Key: "DATABASE_URL"}}}}
	d.Spec.EnvFrom = []kamalv1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}}
	d.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "registry"}}
	create(d)
	conds := func() []metav1.Condition { return d.Status.Conditions }
	waitReady(t, d, conds, kamalv1.ReasonInvalidSecret)

	// A change of the Secret reaches the controller as metadata, wakes the Deployment, and its
	// new content is read: the reference is whole now, and the host is what is missing.
	appSecrets.StringData = map[string]string{"DATABASE_URL": "postgres://u:p@db/app"}
	if err := k8s.Update(ctx, appSecrets); err != nil {
		t.Fatal(err)
	}
	waitReady(t, d, conds, kamalv1.ReasonUnreachable)

	// Reconciles of unchanged references read nothing again.
	reads := map[string]int{}
	for _, r := range []string{"secrets/app-secrets", "configmaps/app-config", "secrets/deploy-key", "secrets/registry"} {
		res, name := path.Split(r)
		reads[r] = secretReads(ns, strings.TrimSuffix(res, "/"), name)
		if reads[r] == 0 {
			t.Errorf("%s was never read", r)
		}
	}
	reconciledAgain(t, d, "1")
	reconciledAgain(t, d, "2")
	for r, n := range reads {
		res, name := path.Split(r)
		if got := secretReads(ns, strings.TrimSuffix(res, "/"), name); got != n {
			t.Errorf("%s read %d times more in two reconciles without a change of it", r, got-n)
		}
	}

	// The credentials made the image's repository private.
	var record corev1.ConfigMap
	eventually(t, waitFor, func() error {
		return k8s.Get(ctx, types.NamespacedName{Namespace: framework.ControllerNamespace, Name: controllers.PrivateImagesConfigMap}, &record)
	})
	var repos []string
	for _, v := range record.Data {
		repos = append(repos, v)
	}
	if !slices.Contains(repos, "registry.example.com:5000/team/app") {
		t.Errorf("record of private images holds %q", repos)
	}

	// Over the whole suite so far: every list and watch of Secrets and ConfigMaps asked for
	// metadata only, and nothing unreferenced was read.
	var lists, gets int
	for _, r := range mgr.SecretRequests() {
		collection := strings.HasSuffix(r.Path, "/secrets") || strings.HasSuffix(r.Path, "/configmaps")
		switch {
		case collection && r.Method == "GET":
			lists++
			if !r.Metadata() {
				t.Errorf("%s %s?%s asked for whole objects (Accept %q)", r.Method, r.Path, r.Query, r.Accept)
			}
		case r.Method == "GET":
			gets++
			if strings.HasPrefix(r.Path, "/api/v1/namespaces/"+ns+"/") && path.Base(r.Path) == "unrelated" {
				t.Errorf("read %s, which nothing names", r.Path)
			}
		}
	}
	if lists == 0 || gets == 0 {
		t.Errorf("%d lists and watches, %d reads of Secrets and ConfigMaps recorded: the log sees nothing", lists, gets)
	}
	t.Logf("Secrets and ConfigMaps: %d metadata lists and watches, %d reads", lists, gets)
}
