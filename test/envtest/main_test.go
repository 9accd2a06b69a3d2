// Package envtest runs the API and the controllers against a real kube-apiserver and etcd
// (built by hack/build-kube-binaries.sh, found through KUBEBUILDER_ASSETS) and the real kubectl.
package envtest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kamal-operator/kamal-operator/controllers"
	"github.com/kamal-operator/kamal-operator/test/framework"
)

var (
	k8s        client.Client
	kubeconfig string
	kubectlBin string
	mgr        *framework.Manager
	repoRoot   = framework.RepoRoot()
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	cp, err := framework.StartControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cp.Stop()
	k8s, kubeconfig, kubectlBin = cp.Client, cp.Kubeconfig, cp.Kubectl
	mgr, err = framework.StartManager(cp, controllers.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer mgr.Stop()
	return m.Run()
}

func newNamespace(t *testing.T) string { return framework.NewNamespace(t, k8s) }

func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	framework.Eventually(t, timeout, cond)
}

func timeParse(s string) (time.Duration, error) { return time.ParseDuration(s) }
