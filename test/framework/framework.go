// Package framework starts what the envtest and end-to-end suites share: a real kube-apiserver
// and etcd with the CRDs installed, a kubeconfig for the real kubectl, and the controllers
// running in-process as the manager binary runs them.
package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/controllers"
	"github.com/kamal-operator/kamal-operator/internal/fleet"
)

// Scheme knows the core and kamal types.
var Scheme = kruntime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(Scheme))
	utilruntime.Must(kamalv1.AddToScheme(Scheme))
}

// RepoRoot is the repository's top folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ControlPlane is a running kube-apiserver and etcd.
type ControlPlane struct {
	Config     *rest.Config
	Client     client.Client
	Kubeconfig string // file for the real kubectl
	Kubectl    string // path of the built kubectl
	env        *envtest.Environment
	dir        string
}

// logFile keeps a copy of everything the controllers log in this process, so a test can scan
// it for what must never be logged (LogContains).
var logFile *os.File

func logWriter() io.Writer {
	if logFile == nil {
		if f, err := os.CreateTemp("", "kamal-operator-log-"); err == nil {
			logFile = f
		}
	}
	if logFile == nil {
		return os.Stderr
	}
	return io.MultiWriter(os.Stderr, logFile)
}

// LogContains reports whether the controllers' log so far holds s.
func LogContains(s string) (bool, error) {
	if logFile == nil {
		return false, errors.New("the controllers' log is not kept")
	}
	b, err := os.ReadFile(logFile.Name())
	if err != nil {
		return false, err
	}
	return strings.Contains(string(b), s), nil
}

// StartControlPlane starts the binaries in KUBEBUILDER_ASSETS with the CRDs of config/crd.
func StartControlPlane() (*ControlPlane, error) {
	logf.SetLogger(zap.New(zap.WriteTo(logWriter()), zap.UseDevMode(true)))
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run the suites through make, which builds kube-apiserver, etcd and kubectl first")
	}
	cp := &ControlPlane{Kubectl: filepath.Join(assets, "kubectl")}
	cp.env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	var err error
	if cp.Config, err = cp.env.Start(); err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	fail := func(err error) (*ControlPlane, error) { cp.Stop(); return nil, err }
	if cp.Client, err = client.New(cp.Config, client.Options{Scheme: Scheme}); err != nil {
		return fail(err)
	}
	admin, err := cp.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, cp.Config)
	if err != nil {
		return fail(err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		return fail(err)
	}
	if cp.dir, err = os.MkdirTemp("", "kamal-controlplane-"); err != nil {
		return fail(err)
	}
	cp.Kubeconfig = filepath.Join(cp.dir, "kubeconfig")
	if err := os.WriteFile(cp.Kubeconfig, kc, 0o600); err != nil {
		return fail(err)
	}
	return cp, nil
}

// KubeconfigFor writes a kubeconfig for a user of that name and groups (a client certificate;
// RBAC decides what it may do) and returns its path: "system:serviceaccount:ns:name" is
// subject to the bindings of that service account.
func (cp *ControlPlane) KubeconfigFor(name string, groups ...string) (string, error) {
	u, err := cp.env.AddUser(envtest.User{Name: name, Groups: groups}, cp.Config)
	if err != nil {
		return "", err
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(cp.dir, "kubeconfig-")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write(kc); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// Stop ends the control plane.
func (cp *ControlPlane) Stop() {
	_ = cp.env.Stop()
	if cp.dir != "" {
		_ = os.RemoveAll(cp.dir)
	}
}

// Manager is the controllers running in this process.
type Manager struct {
	Fleet    *fleet.Fleet
	cancel   context.CancelFunc
	done     chan error
	once     sync.Once
	requests requestLog
}

// SecretRequests are the requests the controllers made about Secrets and ConfigMaps so far.
func (m *Manager) SecretRequests() []Request { return m.requests.list() }

// ControllerNamespace is the controllers' own namespace in the suites (it holds the known-hosts
// store); StartManager creates it and uses it when opts name none.
const ControllerNamespace = controllers.DefaultNamespace

// StartManager runs the controllers against cp until Stop.
func StartManager(cp *ControlPlane, opts controllers.Options) (*Manager, error) {
	if opts.Namespace == "" {
		opts.Namespace = ControllerNamespace
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: opts.Namespace}}
	if err := cp.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating the controllers' namespace %s: %w", opts.Namespace, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{cancel: cancel, done: make(chan error, 1)}
	cfg := rest.CopyConfig(cp.Config)
	cfg.Wrap(m.requests.wrap)
	skip := true // a test may stop the controllers and start them again in this process
	mgr, err := ctrl.NewManager(cfg, controllers.ManagerOptions(ctrl.Options{
		Scheme: Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: &skip},
	}, opts))
	if err != nil {
		cancel()
		return nil, err
	}
	if m.Fleet, err = controllers.Setup(ctx, mgr, opts); err != nil {
		cancel()
		return nil, err
	}
	go func() { m.done <- mgr.Start(ctx) }()
	return m, nil
}

// Stop ends the controllers, waits for them, and closes their host connections.
func (m *Manager) Stop() {
	m.once.Do(func() {
		m.cancel()
		<-m.done
		m.Fleet.Close()
	})
}

// NewNamespace gives a test its own namespace.
func NewNamespace(t testing.TB, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// Eventually polls cond until it returns nil, failing the test with cond's last error when
// timeout passes first. The controllers react to watches and events; the timeout only bounds a
// broken run.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kstatus computes an object's status as Flux, Argo CD and kubectl wait read it.
func Kstatus(t testing.TB, obj client.Object) status.Status {
	t.Helper()
	m, err := kruntime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: m})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

// FindEvent returns nil when an event with reason was recorded about the named object.
func FindEvent(c client.Client, ns, name, reason string) error {
	var list eventsv1.EventList
	if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return err
	}
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Reason == reason {
			return nil
		}
	}
	return fmt.Errorf("no event %s for %s among %d", reason, name, len(list.Items))
}

// EventNote returns the note of the last event with reason about name, "" when there is none.
func EventNote(c client.Client, ns, name, reason string) string {
	var list eventsv1.EventList
	if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return ""
	}
	note := ""
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Reason == reason {
			note = e.Note
		}
	}
	return note
}
