package e2e

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/accessory"
	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/hosts"
)

const dbPassword = "pw-3f9c1e"

// dbSecrets holds the database password, its file and the app's DATABASE_URL.
func dbSecrets(t *testing.T, ns string) {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-secrets"},
		StringData: map[string]string{
			"POSTGRES_PASSWORD": dbPassword,
			"DATABASE_URL":      "postgres://app:" + dbPassword + "@db:5432/app?sslmode=disable",
		},
	}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func postgresAccessory(ns string) *kamalv1.Accessory {
	port := intstr.FromString("127.0.0.1:5432:5432")
	return &kamalv1.Accessory{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		Spec: kamalv1.AccessorySpec{
			Image:   env.Image("postgres:15"),
			Servers: kamalv1.ServerSelector{Names: []string{"web-1"}},
			Port:    &port,
			Env: []kamalv1.EnvVar{
				{Name: "POSTGRES_USER", Value: "app"},
				{Name: "POSTGRES_DB", Value: "app"},
				{Name: "POSTGRES_PASSWORD", ValueFrom: &kamalv1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "db-secrets"}, Key: "POSTGRES_PASSWORD"}}},
			},
			Files: []kamalv1.AccessoryFile{{
				Target:       "/run/secrets/postgres-password",
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db-secrets"}, Key: "POSTGRES_PASSWORD"},
			}},
			Directories: []string{"data:/var/lib/postgresql/data"},
		},
	}
}

// dbApp is the sample app on web-1, reaching the accessory by its container name.
func dbApp(ns string) *kamalv1.Deployment {
	d := appDeployment(ns, "dbapp", "v1")
	d.Spec.Roles = map[string]kamalv1.Role{"web": {Servers: kamalv1.ServerSelector{Names: []string{"web-1"}}}}
	d.Spec.DependsOn = []corev1.LocalObjectReference{{Name: "db"}}
	d.Spec.Env = []kamalv1.EnvVar{{Name: "DATABASE_URL", ValueFrom: &kamalv1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "db-secrets"}, Key: "DATABASE_URL"}}}}
	return d
}

func createAccessory(t *testing.T, a *kamalv1.Accessory) {
	t.Helper()
	if err := k8s.Create(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteAccessory(t, a) })
}

// deleteAccessory deletes a and waits until the controller has let it go.
func deleteAccessory(t *testing.T, a *kamalv1.Accessory) {
	t.Helper()
	ctx := context.Background()
	key := client.ObjectKeyFromObject(a)
	_ = k8s.Delete(ctx, &kamalv1.Accessory{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}})
	framework.Eventually(t, reactWithin, func() error {
		if err := k8s.Get(ctx, key, &kamalv1.Accessory{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("accessory %s still present (%v)", key, err)
		}
		return nil
	})
}

func waitAccessory(t testing.TB, a *kamalv1.Accessory, typ string, st metav1.ConditionStatus, reason string, within time.Duration) *metav1.Condition {
	t.Helper()
	return waitFor(t, a, func() []metav1.Condition { return a.Status.Conditions }, func() any { return a.Status.Servers }, typ, st, reason, within)
}

// rows answers the app's rows, read from the database through web-1's proxy.
func rows(h *hosts.Host) ([]string, error) {
	code, body, err := httpDo(h, http.MethodGet, "dbapp.test", "/db/rows")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /db/rows: %d %s", code, body)
	}
	return strings.Fields(body), nil
}

// waitRow waits until the app reads value from the database.
func waitRow(t *testing.T, h *hosts.Host, value string) {
	t.Helper()
	framework.Eventually(t, reactWithin, func() error {
		got, err := rows(h)
		if err != nil {
			return err
		}
		if !contains(got, value) {
			return fmt.Errorf("rows %v lack %q", got, value)
		}
		return nil
	})
}

var downFor = regexp.MustCompile(`down ([0-9.]+m?s)`)

func TestAccessoryServesTheAppAndKeepsItsData(t *testing.T) {
	ns := fleetNS(t)
	dbSecrets(t, ns)
	h := env.Host(webHosts[0])
	folder := accessory.Folder(ns, "db")

	// The accessory and the app that depends on it are created together, as `kubectl apply -f`
	// of both does: the app waits, and boots only once the accessory is Ready.
	a := postgresAccessory(ns)
	d := dbApp(ns)
	t0 := time.Now()
	createAccessory(t, a)
	createDeployment(t, d)
	sawWaiting := false
	framework.Eventually(t, readyWithin, func() error {
		var cur kamalv1.Deployment
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(d), &cur); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(cur.Status.Conditions, kamalv1.ConditionReconciling); c != nil && c.Reason == kamalv1.ReasonWaitingForDeps {
			sawWaiting = true
		}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(a), a); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(a.Status.Conditions, kamalv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != a.Generation {
			return fmt.Errorf("accessory Ready = %+v", c)
		}
		return nil
	})
	t.Logf("accessory Ready in %s", time.Since(t0).Round(time.Millisecond))
	if !sawWaiting {
		t.Error("the Deployment never said it waits for the accessory")
	}
	readyAt := meta.FindStatusCondition(a.Status.Conditions, kamalv1.ConditionReady).LastTransitionTime.Time
	if a.Status.ServersReady != "1/1" || len(a.Status.Servers) != 1 || a.Status.Servers[0].State != kamalv1.TargetRunning {
		t.Errorf("status: %s %+v", a.Status.ServersReady, a.Status.Servers)
	}
	if got := hostExec(t, h, "docker", "inspect", "-f", "{{.HostConfig.RestartPolicy.Name}} {{index .Config.Labels \"kamal.operator.dev/accessory\"}}", "db"); got != "unless-stopped db" {
		t.Errorf("restart policy and label: %q", got)
	}
	if got := hostExec(t, h, "docker", "port", "db", "5432/tcp"); got != "127.0.0.1:5432" {
		t.Errorf("published port: %q", got)
	}
	// The Secret's file: mode 0600, root, the value, mounted read-only.
	hostFile := folder + "/files/run/secrets/postgres-password"
	if got := hostExec(t, h, "stat", "-c", "%a %u:%g", hostFile); got != "600 0:0" {
		t.Errorf("%s: mode and owner %q, want 600 0:0", hostFile, got)
	}
	if got := hostExec(t, h, "cat", hostFile); got != dbPassword {
		t.Errorf("%s holds the wrong content", hostFile)
	}
	if got := hostExec(t, h, "docker", "exec", "db", "cat", "/run/secrets/postgres-password"); got != dbPassword {
		t.Errorf("the file in the container holds the wrong content")
	}
	// No secret value on a command line or a label.
	if inspect := hostExec(t, h, "docker", "inspect", "-f", "{{json .Config.Labels}} {{json .Config.Cmd}} {{json .Path}}", "db"); strings.Contains(inspect, dbPassword) {
		t.Errorf("the password shows in labels or the command: %s", inspect)
	}

	// The app booted after the accessory was Ready, reaches it by name and writes a row.
	waitDeployed(t, d)
	created, err := time.Parse(time.RFC3339Nano, hostExec(t, h, "docker", "inspect", "-f", "{{.Created}}", "dbapp-web-v1"))
	if err != nil {
		t.Fatal(err)
	}
	// Conditions keep whole seconds.
	if created.Before(readyAt) {
		t.Errorf("the app's container was created at %s, before the accessory was Ready at %s", created, readyAt)
	}
	code, body, err := httpDo(h, http.MethodPost, "dbapp.test", "/db/rows?value=first")
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST /db/rows: %d %s %v", code, body, err)
	}
	waitRow(t, h, "first")

	// An env change recreates the container on the same data.
	before := containerID(t, h, "db")
	probe := startDBProbe(h)
	updateObject(t, a, func(a *kamalv1.Accessory) { a.Spec.Env = append(a.Spec.Env, kamalv1.EnvVar{Name: "TZ", Value: "UTC"}) })
	waitAccessory(t, a, kamalv1.ConditionReady, metav1.ConditionTrue, kamalv1.ReasonReconciled, reactWithin)
	if after := containerID(t, h, "db"); after == before {
		t.Fatal("the env change did not recreate the container")
	}
	if got := hostExec(t, h, "docker", "exec", "db", "printenv", "TZ"); got != "UTC" {
		t.Errorf("TZ in the new container: %q", got)
	}
	waitEvent(t, ns, "db", "Recreated")
	if ev := framework.EventNote(k8s, ns, "db", "Recreated"); ev != "" {
		if m := downFor.FindStringSubmatch(ev); m != nil {
			t.Logf("recreate gap (accessory down to up again, from the event): %s", m[1])
		}
	}
	waitRow(t, h, "first")
	outage, failed, total := probe.stop()
	t.Logf("recreate seen by the app: /db failed for %s (%d of %d probes every 50ms)", outage.Round(time.Millisecond), failed, total)

	// Killed by hand: restored, the row still there.
	before = containerID(t, h, "db")
	hostExec(t, h, "docker", "rm", "-f", "db")
	t1 := time.Now()
	framework.Eventually(t, reactWithin, func() error {
		out, err := h.Exec(context.Background(), "docker", "inspect", "-f", "{{.State.Running}}", "db")
		if err != nil || strings.TrimSpace(string(out)) != "true" {
			return fmt.Errorf("db not running again: %s %v", out, err)
		}
		return nil
	})
	t.Logf("accessory removed by hand, running again after %s", time.Since(t1).Round(time.Millisecond))
	if containerID(t, h, "db") == before {
		t.Fatal("the container was not recreated")
	}
	waitRow(t, h, "first")

	// Deleted with Retain: the container goes, the data stays; created again, the row is back.
	deleteAccessory(t, a)
	if names := containerNames(t, h); contains(names, "db") {
		t.Fatalf("db still on the host after deletion: %v", names)
	}
	hostExec(t, h, "test", "-f", folder+"/data/PG_VERSION")
	a = postgresAccessory(ns)
	createAccessory(t, a)
	waitAccessory(t, a, kamalv1.ConditionReady, metav1.ConditionTrue, kamalv1.ReasonReconciled, readyWithin)
	waitRow(t, h, "first")

	// Deleted with Delete: the folder goes too.
	updateObject(t, a, func(a *kamalv1.Accessory) { a.Spec.DeletionPolicy = kamalv1.DeletionDelete })
	waitAccessory(t, a, kamalv1.ConditionReady, metav1.ConditionTrue, kamalv1.ReasonReconciled, reactWithin)
	deleteAccessory(t, a)
	if out, err := h.Exec(context.Background(), "test", "-e", folder); err == nil {
		t.Fatalf("%s still exists after deletion with deletionPolicy Delete (%s)", folder, out)
	}
	hostExec(t, h, "test", "-d", accessory.Root+"/"+ns)
	waitEvent(t, ns, "db", "DataDeleted")
}

func TestAccessoryWithAMissingConfigMapMakesNothing(t *testing.T) {
	ns := fleetNS(t)
	dbSecrets(t, ns)
	h := env.Host(webHosts[0])
	a := postgresAccessory(ns)
	a.Name = "cfgdb"
	a.Spec.Files = append(a.Spec.Files, kamalv1.AccessoryFile{
		Target:          "/etc/postgresql/extra.conf",
		ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "pg-config"}, Key: "extra.conf"},
	})
	createAccessory(t, a)
	c := waitAccessory(t, a, kamalv1.ConditionStalled, metav1.ConditionTrue, kamalv1.ReasonConfigMapNotFound, reactWithin)
	if !strings.Contains(c.Message, `ConfigMap "pg-config"`) || !strings.Contains(c.Message, "/etc/postgresql/extra.conf") {
		t.Errorf("message %q does not name the ConfigMap and the file", c.Message)
	}
	if ready := meta.FindStatusCondition(a.Status.Conditions, kamalv1.ConditionReady); ready == nil || ready.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %+v, want False", ready)
	}
	for _, n := range containerNames(t, h) {
		if strings.HasPrefix(n, "cfgdb") {
			t.Fatalf("a container %s was made for an accessory with a missing ConfigMap", n)
		}
	}
	if _, err := h.Exec(context.Background(), "test", "-e", accessory.Folder(ns, "cfgdb")); err == nil {
		t.Error("a folder was made for an accessory with a missing ConfigMap")
	}

	// The ConfigMap appears: the accessory starts, with the file.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg-config"}, Data: map[string]string{"extra.conf": "work_mem = 8MB\n"}}
	if err := k8s.Create(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	waitAccessory(t, a, kamalv1.ConditionReady, metav1.ConditionTrue, kamalv1.ReasonReconciled, readyWithin)
	if got := hostExec(t, h, "docker", "exec", "cfgdb", "cat", "/etc/postgresql/extra.conf"); got != "work_mem = 8MB" {
		t.Errorf("extra.conf in the container: %q", got)
	}
	if got := hostExec(t, h, "stat", "-c", "%a", accessory.Folder(ns, "cfgdb")+"/files/etc/postgresql/extra.conf"); got != "644" {
		t.Errorf("a ConfigMap file has mode %s, want 644", got)
	}
}

// dbProbe asks the app's /db every 50 ms (at most 2,400 times) and keeps the longest run of
// failures, to measure how long a recreate takes the database away.
type dbProbe struct {
	done   chan struct{}
	result chan [3]int64
}

func startDBProbe(h *hosts.Host) *dbProbe {
	p := &dbProbe{done: make(chan struct{}), result: make(chan [3]int64, 1)}
	go func() {
		var longest, failed, total int64
		var downSince time.Time
	probing:
		for range 2400 {
			select {
			case <-p.done:
				break probing
			case <-time.After(50 * time.Millisecond):
			}
			total++
			code, _, err := httpDo(h, http.MethodGet, "dbapp.test", "/db")
			now := time.Now()
			if err != nil || code != http.StatusOK {
				failed++
				if downSince.IsZero() {
					downSince = now
				}
				continue
			}
			if !downSince.IsZero() {
				longest = max(longest, int64(now.Sub(downSince)))
				downSince = time.Time{}
			}
		}
		p.result <- [3]int64{longest, failed, total}
	}()
	return p
}

func (p *dbProbe) stop() (time.Duration, int64, int64) {
	close(p.done)
	r := <-p.result
	return time.Duration(r[0]), r[1], r[2]
}
