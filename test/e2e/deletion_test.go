package e2e

import (
	"context"
	"fmt"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/controllers"
	"github.com/kamal-operator/kamal-operator/internal/accessory"
	"github.com/kamal-operator/kamal-operator/internal/proxy"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/hosts"
)

const deletionSecret = "tok-7d2e94"

// oneServerNS makes a namespace with the key Secret and Server web-1 for test host i, Ready.
func oneServerNS(t *testing.T, i int) (string, *kamalv1.Server) {
	t.Helper()
	ns := newNamespace(t)
	keySecret(t, ns)
	srv := serverFor(ns, "web-1", env.Host(i))
	createServer(t, srv)
	waitReady(t, srv)
	return ns, srv
}

// appSecrets holds a token that ends up in an app's env and an accessory's file.
func appSecrets(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-secrets"},
		StringData: map[string]string{"TOKEN": deletionSecret}}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-config"},
		Data: map[string]string{"app.conf": "level = debug\n"}}); err != nil {
		t.Fatal(err)
	}
}

func fromSecret(key string) *corev1.SecretKeySelector {
	return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "app-secrets"}, Key: key}
}

// workerAccessory is the sample app as an accessory (a worker: no port): an image FROM scratch,
// without a shell or rm. It gets a ConfigMap file, a Secret file and a data directory.
func workerAccessory(ns, name string) *kamalv1.Accessory {
	return &kamalv1.Accessory{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: kamalv1.AccessorySpec{
			Image:   env.Image("sampleapp:v1"),
			Cmd:     []string{"worker"},
			Servers: kamalv1.ServerSelector{Names: []string{"web-1"}},
			Env:     []kamalv1.EnvVar{{Name: "TOKEN", ValueFrom: &kamalv1.EnvVarSource{SecretKeyRef: fromSecret("TOKEN")}}},
			Files: []kamalv1.AccessoryFile{
				{Target: "/etc/app/app.conf", ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}, Key: "app.conf"}},
				{Target: "/run/secrets/token", SecretKeyRef: fromSecret("TOKEN")},
			},
			Directories: []string{"data:/data"},
		},
	}
}

// canary is a folder outside every accessory's folder on h, holding a file, that links in an
// accessory's data point to; removing the accessory must leave it.
func canary(t *testing.T, h *hosts.Host, ns string) string {
	t.Helper()
	dir := path.Join(path.Dir(accessory.Root), "canary-"+ns)
	hostExec(t, h, "mkdir", "-p", dir)
	hostExec(t, h, "touch", dir+"/keep")
	t.Cleanup(func() { _, _ = h.Exec(context.Background(), "rm", "-rf", dir) })
	return dir
}

// fillData writes into the accessory's data folder on h what a container could leave there: a
// file, a folder, and links to the canary (absolute and relative) and to the host's root.
func fillData(t *testing.T, h *hosts.Host, ns, name, canaryDir string) {
	t.Helper()
	data := accessory.Folder(ns, name) + "/data"
	hostExec(t, h, "mkdir", "-p", data+"/sub/deeper")
	hostExec(t, h, "touch", data+"/sub/deeper/rows")
	hostExec(t, h, "ln", "-s", canaryDir, data+"/abs-link")
	hostExec(t, h, "ln", "-s", "../../../../canary-"+ns, data+"/rel-link")
	hostExec(t, h, "ln", "-s", "/", data+"/root-link")
	hostExec(t, h, "test", "-f", data+"/rel-link/keep") // the relative link does reach the canary on the host
}

func absent(h *hosts.Host, p string) func() error {
	return func() error {
		if out, err := h.Exec(context.Background(), "test", "-e", p); err == nil {
			return fmt.Errorf("%s still exists on %s (%s)", p, h.Name(), out)
		}
		return nil
	}
}

// containersOf lists the containers on h labelled with namespace ns.
func containersOf(t *testing.T, h *hosts.Host, ns string) []string {
	return strings.Fields(hostExec(t, h, "docker", "ps", "-a", "--filter", "label="+kamalv1.LabelNamespace+"="+ns, "--format", "{{.Names}}"))
}

func noRemoverLeft(t *testing.T, h *hosts.Host) {
	t.Helper()
	if out := hostExec(t, h, "docker", "ps", "-a", "--filter", "label="+kamalv1.LabelPrefix+"remover", "--format", "{{.Names}}"); out != "" {
		t.Errorf("remover containers left on %s: %s", h.Name(), out)
	}
}

// deleteNamespace does what Kubernetes' namespace controller does, which this control plane
// does not run (no kube-controller-manager, so a deleted namespace never finishes): the
// namespace is marked for deletion, which makes the API refuse new objects in it, and every
// object in it is deleted at once, the Servers' key Secret included, so that nothing can count
// on one going before another. It waits until all of them are gone.
func deleteNamespace(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	kinds := []client.Object{&kamalv1.Deployment{}, &kamalv1.Accessory{}, &kamalv1.Server{}, &corev1.Secret{}, &corev1.ConfigMap{}}
	errs := make([]error, len(kinds))
	var wg sync.WaitGroup
	for i, obj := range kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = k8s.DeleteAllOf(ctx, obj, client.InNamespace(ns))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	lists := map[string]client.ObjectList{"Deployments": &kamalv1.DeploymentList{}, "Accessories": &kamalv1.AccessoryList{},
		"Servers": &kamalv1.ServerList{}, "Secrets": &corev1.SecretList{}, "ConfigMaps": &corev1.ConfigMapList{}}
	framework.Eventually(t, 2*readyWithin, func() error {
		for kind, l := range lists {
			if err := k8s.List(ctx, l, client.InNamespace(ns)); err != nil {
				return err
			}
			if n := len(mustItems(l)); n > 0 {
				return fmt.Errorf("%d %s left in %s: %v", n, kind, ns, mustItems(l))
			}
		}
		return nil
	})
}

// mustItems names the objects of a list, with their finalizers.
func mustItems(l client.ObjectList) []string {
	var names []string
	_ = meta.EachListItem(l, func(o runtime.Object) error {
		if m, ok := o.(client.Object); ok {
			names = append(names, m.GetName()+fmt.Sprint(m.GetFinalizers()))
		}
		return nil
	})
	return names
}

// Deleting a namespace while its app and accessory run leaves nothing of it on the hosts: no
// container (with its secret env), no route, no accessory file or folder. The app is a guest on
// a platform namespace's Server (which keeps the proxy on that host, so the route table can be
// asked); the accessory runs on the namespace's own Server of another host, whose key Secret
// goes with everything else at once.
func TestDeletingANamespaceLeavesNothingOnTheHost(t *testing.T) {
	h, h2 := env.Host(hostMain), env.Host(hostOther)
	ctx := context.Background()
	platform := newNamespace(t)
	keySecret(t, platform)
	keeper := serverFor(platform, "shared-web-1", h)
	keeper.Spec.AllowedNamespaces = &kamalv1.AllowedNamespaces{From: kamalv1.NamespacesFromAll}
	createServer(t, keeper)
	waitReady(t, keeper)

	ns, srv := oneServerNS(t, hostOther)
	appSecrets(t, ns)
	d := appDeployment(ns, "tenant", "v1")
	d.Spec.Roles = map[string]kamalv1.Role{"web": {Servers: kamalv1.ServerSelector{Namespace: platform, Names: []string{"shared-web-1"}}}}
	d.Spec.Env = []kamalv1.EnvVar{{Name: "TOKEN", ValueFrom: &kamalv1.EnvVarSource{SecretKeyRef: fromSecret("TOKEN")}}}
	a := workerAccessory(ns, "store")
	a.Spec.DeletionPolicy = kamalv1.DeletionDelete
	createDeployment(t, d)
	createAccessory(t, a)
	waitDeployed(t, d)
	waitAccessory(t, a, kamalv1.ConditionReady, metav1.ConditionTrue, kamalv1.ReasonReconciled, readyWithin)
	framework.Eventually(t, reactWithin, answers(h, "tenant.test", "/env?name=TOKEN", 200, deletionSecret))
	folder := accessory.Folder(ns, "store")
	hostExec(t, h2, "test", "-f", folder+"/files/run/secrets/token")
	guard := canary(t, h2, ns)
	fillData(t, h2, ns, "store", guard)
	if got := containersOf(t, h, ns); len(got) != 1 {
		t.Fatalf("containers of %s on %s: %v, want the app's", ns, h.Name(), got)
	}
	if got := containersOf(t, h2, ns); len(got) != 1 {
		t.Fatalf("containers of %s on %s: %v, want the accessory's", ns, h2.Name(), got)
	}
	// The key Secret is held while its Server exists.
	key := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "deploy-key"}, key); err != nil {
		t.Fatal(err)
	}
	if !contains(key.Finalizers, controllers.KeySecretFinalizer) {
		t.Fatalf("key Secret finalizers %v, want %s", key.Finalizers, controllers.KeySecretFinalizer)
	}
	proxyID := containerID(t, h, proxy.ContainerName)

	t0 := time.Now()
	deleteNamespace(t, ns)
	t.Logf("namespace %s emptied (every object gone) in %s", ns, time.Since(t0).Round(time.Millisecond))

	for _, host := range []*hosts.Host{h, h2} {
		if got := containersOf(t, host, ns); len(got) != 0 {
			t.Errorf("containers of the deleted namespace left on %s: %v", host.Name(), got)
		}
		if out := hostExec(t, host, "find", accessory.Root, "-path", "*/"+ns+"/*"); out != "" {
			t.Errorf("files of the deleted namespace left on %s:\n%s", host.Name(), out)
		}
		noRemoverLeft(t, host)
	}
	if err := answers(h, "tenant.test", "/", 404, "no app is routed")(); err != nil {
		t.Errorf("the route is left: %v", err)
	}
	if err := absent(h2, folder)(); err != nil {
		t.Error(err)
	}
	hostExec(t, h2, "test", "-f", guard+"/keep")
	// The platform's Server manages the host still: the proxy stayed, untouched.
	if got := containerID(t, h, proxy.ContainerName); got != proxyID {
		t.Errorf("the proxy was replaced (%s, was %s)", got, proxyID)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(srv), &kamalv1.Server{}); !apierrors.IsNotFound(err) {
		t.Errorf("Server %s: %v", srv.Name, err)
	}
}

// A Server still in use waits until the Deployment on it has removed its container and route
// from its host, saying so; only then is it gone. A suspended Deployment changes nothing on
// hosts, so the Server's wait is seen for sure; resumed, it leaves the Server.
func TestDeletingAServerInUseRemovesTheAppFromItFirst(t *testing.T) {
	ns := fleetNS(t)
	ctx := context.Background()
	d := appDeployment(ns, "leave", "v1")
	createDeployment(t, d)
	waitDeployed(t, d)
	h2 := env.Host(hostOther)
	if !contains(containerNames(t, h2), "leave-web-v1") {
		t.Fatalf("leave-web-v1 not on %s: %v", h2.Name(), containerNames(t, h2))
	}

	update(t, d, func(d *kamalv1.Deployment) { d.Spec.Suspend = true })
	waitDeployment(t, d, kamalv1.ConditionReady, metav1.ConditionUnknown, kamalv1.ReasonSuspended, reactWithin)
	srv := &kamalv1.Server{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-2"}}
	if err := k8s.Delete(ctx, srv); err != nil {
		t.Fatal(err)
	}
	c := waitCondition(t, srv, kamalv1.ConditionReady, metav1.ConditionFalse, kamalv1.ReasonServerDeleting, reactWithin)
	if !strings.Contains(c.Message, "Deployment leave (1 container; suspended") {
		t.Errorf("the Server does not say what it waits for: %q", c.Message)
	}
	waitEvent(t, ns, "web-2", kamalv1.ReasonServerDeleting)
	if !contains(containerNames(t, h2), "leave-web-v1") {
		t.Fatal("the suspended Deployment's container went")
	}

	t0 := time.Now()
	update(t, d, func(d *kamalv1.Deployment) { d.Spec.Suspend = false })
	sawServerWithoutContainer := false
	framework.Eventually(t, reactWithin, func() error {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(srv), &kamalv1.Server{})
		running := contains(containerNames(t, h2), "leave-web-v1")
		switch {
		case apierrors.IsNotFound(err):
			if running {
				t.Fatal("the Server went while the app's container still runs on its host")
			}
			return nil
		case err != nil:
			return err
		}
		sawServerWithoutContainer = sawServerWithoutContainer || !running
		return fmt.Errorf("Server web-2 still there (container running: %v)", running)
	})
	t.Logf("resumed: the app left web-2 and the Server was gone in %s (Server seen waiting without the container: %v)",
		time.Since(t0).Round(time.Millisecond), sawServerWithoutContainer)
	if code, _, err := httpGet(h2, "leave.test", "/version"); err == nil && code == 200 {
		t.Error("web-2's host still routes the app")
	}
	// The other Servers keep serving; the Deployment counts two targets and said why.
	waitDeployed(t, d)
	if d.Status.ServersReady != "2/2" {
		t.Errorf("servers ready %s, want 2/2", d.Status.ServersReady)
	}
	waitEventD(t, d, kamalv1.ReasonServerDeleting)
	for _, i := range []int{hostMain, hostThird} {
		if err := answers(env.Host(i), "leave.test", "/version", 200, "v1")(); err != nil {
			t.Error(err)
		}
	}
}

// A file dropped from spec.files is removed from the host (it may hold a Secret's value); the
// others stay. Deleted (deletionPolicy Retain), the accessory leaves its data, not its files.
func TestDroppingAnAccessoryFileRemovesItFromTheHost(t *testing.T) {
	h := env.Host(hostMain)
	ns, _ := oneServerNS(t, hostMain)
	appSecrets(t, ns)
	a := workerAccessory(ns, "files")
	createAccessory(t, a)
	waitAccessory(t, a, kamalv1.ConditionReady, metav1.ConditionTrue, kamalv1.ReasonReconciled, readyWithin)
	folder := accessory.Folder(ns, "files")
	token, conf := folder+"/files/run/secrets/token", folder+"/files/etc/app/app.conf"
	if got := hostExec(t, h, "cat", token); got != deletionSecret {
		t.Fatalf("%s holds the wrong content", token)
	}
	if got := hostExec(t, h, "docker", "inspect", "-f", `{{index .Config.Labels "`+accessory.FilesLabel+`"}}`, "files"); got != `["/etc/app/app.conf","/run/secrets/token"]` {
		t.Errorf("files label %q", got)
	}

	updateObject(t, a, func(a *kamalv1.Accessory) { a.Spec.Files = a.Spec.Files[:1] })
	waitAccessory(t, a, kamalv1.ConditionReady, metav1.ConditionTrue, kamalv1.ReasonReconciled, reactWithin)
	if err := absent(h, token)(); err != nil {
		t.Error(err)
	}
	if err := absent(h, folder+"/files/run")(); err != nil {
		t.Errorf("emptied folders stay: %v", err)
	}
	hostExec(t, h, "test", "-f", conf)
	if got := hostExec(t, h, "docker", "exec", "files", "/sampleapp", "version"); got != "v1" {
		t.Errorf("the recreated accessory does not run: %q", got)
	}
	waitEvent(t, ns, "files", "FilesRemoved")
	noRemoverLeft(t, h)

	deleteAccessory(t, a)
	if err := absent(h, folder+"/files")(); err != nil {
		t.Error(err)
	}
	hostExec(t, h, "test", "-d", folder+"/data")
	waitEvent(t, ns, "files", "DataRetained")
}

// deletionPolicy Delete removes the accessory's folder even when its image has no rm (the
// sample app's image is FROM scratch): the controller removes it with the proxy image. Links a
// container left in its data are removed, never followed.
func TestDeletePolicyRemovesTheFolderOfAnImageWithoutRm(t *testing.T) {
	h := env.Host(hostOther)
	ns, _ := oneServerNS(t, hostOther)
	appSecrets(t, ns)
	a := workerAccessory(ns, "nosh")
	a.Spec.DeletionPolicy = kamalv1.DeletionDelete
	createAccessory(t, a)
	waitAccessory(t, a, kamalv1.ConditionReady, metav1.ConditionTrue, kamalv1.ReasonReconciled, readyWithin)
	if out, err := h.Exec(context.Background(), "docker", "run", "--rm", "--entrypoint", "rm", env.Image("sampleapp:v1"), "--help"); err == nil {
		t.Fatalf("the image has an rm after all: %s", out)
	}
	guard := canary(t, h, ns)
	fillData(t, h, ns, "nosh", guard)

	t0 := time.Now()
	deleteAccessory(t, a)
	t.Logf("accessory with deletionPolicy Delete gone in %s", time.Since(t0).Round(time.Millisecond))
	if err := absent(h, accessory.Folder(ns, "nosh"))(); err != nil {
		t.Error(err)
	}
	hostExec(t, h, "test", "-f", guard+"/keep")
	hostExec(t, h, "test", "-d", "/etc")
	waitEvent(t, ns, "nosh", "DataDeleted")
	noRemoverLeft(t, h)
	if got := containersOf(t, h, ns); len(got) != 0 {
		t.Errorf("containers left: %v", got)
	}
}
