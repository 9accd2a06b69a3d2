package process

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/controllers"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

// The service account config/ installs the controller as.
const serviceAccount = "system:serviceaccount:kamal-operator-system:kamal-operator-controller-manager"

// render builds a kustomize folder of config/ with the real kubectl.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	out, err := exec.Command(cp.Kubectl, "kustomize", filepath.Join(framework.RepoRoot(), "config", dir)).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/%s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(string(out), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, u)
	}
	return objs
}

// The namespaced install (config/namespaced) grants the controller its rules in the watched
// namespaces and its own only, and the controller, started as its service account with the
// flags it sets, reconciles there without one refused request, and leaves other namespaces be.
func TestNamespacedInstallRunsWithRoleBindingsOnly(t *testing.T) {
	ctx := context.Background()
	c := cp.Client
	var args []string
	var rbac []*unstructured.Unstructured
	for _, u := range render(t, "namespaced") {
		switch u.GetKind() {
		case "ClusterRoleBinding":
			if roleRef, _, _ := unstructured.NestedString(u.Object, "roleRef", "name"); roleRef == "kamal-operator-manager-role" {
				t.Errorf("ClusterRoleBinding %s grants the controller's rules cluster-wide", u.GetName())
			}
			rbac = append(rbac, u)
		case "ServiceAccount", "Role", "ClusterRole", "RoleBinding":
			rbac = append(rbac, u)
		case "Deployment":
			containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			a, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
			for _, arg := range a {
				if strings.HasPrefix(arg, "--watch-namespaces=") || arg == "--leader-elect" {
					args = append(args, arg)
				}
			}
		}
	}
	if !slices.Equal(args, []string{"--leader-elect", "--watch-namespaces=team-a,team-b"}) {
		t.Fatalf("the manager's args name %q", args)
	}

	for _, ns := range []string{framework.ControllerNamespace, "team-a", "team-b", "team-c"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, u := range rbac {
		if err := c.Create(ctx, u); err != nil {
			t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	kubeconfig, err := cp.KubeconfigFor(serviceAccount, "system:serviceaccounts", "system:serviceaccounts:kamal-operator-system")
	if err != nil {
		t.Fatal(err)
	}
	m := startManager(t, kubeconfig, args...)

	servers := map[string]*kamalv1.Server{}
	for i, ns := range []string{"team-a", "team-b", "team-c"} {
		servers[ns] = &kamalv1.Server{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-1"},
			// One loopback address each: Servers of one address are one host (DuplicateServer).
			Spec: kamalv1.ServerSpec{Address: fmt.Sprintf("127.0.0.%d", i+1), Port: 1, SSHKeySecretRef: corev1.LocalObjectReference{Name: "deploy-key"},
				KnownHosts: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOuHlvosK/zgfTl3qHCDzrACo1uGYFrzR3z8sPm53zg/"}},
		}
		if err := c.Create(ctx, servers[ns]); err != nil {
			t.Fatal(err)
		}
	}
	waitServer(t, c, servers["team-a"], kamalv1.ReasonSecretNotFound)

	// A Deployment with credentials: the controller records its image as private in its own
	// namespace, which only the RoleBinding there allows.
	auth := base64.StdEncoding.EncodeToString([]byte("bot:token"))
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "registry"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"registry.example.com":{"auth":"` + auth + `"}}}`)}}); err != nil {
		t.Fatal(err)
	}
	d := &kamalv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "app"},
		Spec: kamalv1.DeploymentSpec{
			Image:            "registry.example.com/team-b/app:v1",
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "registry"}},
			Roles:            map[string]kamalv1.Role{"web": {Servers: kamalv1.ServerSelector{Names: []string{"web-1"}}}},
		},
	}
	if err := c.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, func() error {
		var record corev1.ConfigMap
		if err := c.Get(ctx, types.NamespacedName{Namespace: framework.ControllerNamespace, Name: controllers.PrivateImagesConfigMap}, &record); err != nil {
			return err
		}
		for _, repo := range record.Data {
			if repo == "registry.example.com/team-b/app" {
				return nil
			}
		}
		return fmt.Errorf("the record of private images holds %v", record.Data)
	})
	waitServer(t, c, servers["team-b"], kamalv1.ReasonSecretNotFound)

	// team-c is not watched: its Server was created with the others, and is never touched.
	if err := c.Get(ctx, client.ObjectKeyFromObject(servers["team-c"]), servers["team-c"]); err != nil {
		t.Fatal(err)
	}
	if len(servers["team-c"].Status.Conditions) > 0 || len(servers["team-c"].Finalizers) > 0 {
		t.Errorf("the Server of an unwatched namespace was reconciled: %+v", servers["team-c"])
	}
	log, err := os.ReadFile(m.log)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "forbidden") {
		t.Errorf("the manager was refused requests:\n%s", log)
	}
}
