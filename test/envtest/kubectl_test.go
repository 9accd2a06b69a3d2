package envtest

import (
	"os/exec"
	"strings"
	"testing"
)

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestKubectlReportsVersion(t *testing.T) {
	out := kubectl(t, "version")
	if !strings.Contains(out, "Client Version: v1.37.2") || !strings.Contains(out, "Server Version: v1.37.2") {
		t.Errorf("kubectl version:\n%s", out)
	}
}

func TestKubectlNamesAndCategories(t *testing.T) {
	ns := newNamespace(t)
	applySamples(t, ns)

	// The group prefix reaches the kamal Deployment; the bare name stays apps/v1.
	if out := kubectl(t, "get", "deployments.kamal", "-n", ns); !strings.Contains(out, "dokuya") {
		t.Errorf("kubectl get deployments.kamal does not list dokuya:\n%s", out)
	}
	if out := kubectl(t, "get", "deployments", "-n", ns, "-o", "name"); strings.Contains(out, "dokuya") {
		t.Errorf("kubectl get deployments lists the kamal Deployment:\n%s", out)
	}

	// The kamal category lists all three kinds; `all` lists none of them.
	out := kubectl(t, "get", "kamal", "-n", ns, "-o", "name")
	for _, want := range []string{"server.kamal.operator.dev/web-1", "deployment.kamal.operator.dev/dokuya", "accessory.kamal.operator.dev/dokuya-postgres"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get kamal lacks %s:\n%s", want, out)
		}
	}
	if out := kubectl(t, "get", "all", "-n", ns, "-o", "name"); strings.Contains(out, "kamal.operator.dev") {
		t.Errorf("kubectl get all lists kamal kinds:\n%s", out)
	}

	// Short names and printer columns.
	for short, cols := range map[string][]string{
		"ksrv":    {"NAME", "READY", "REASON", "ADDRESS", "DOCKER", "AGE"},
		"kdeploy": {"NAME", "READY", "REASON", "IMAGE", "SERVERS", "AGE"},
		"kacc":    {"NAME", "READY", "REASON", "IMAGE", "SERVERS", "AGE"},
	} {
		out := kubectl(t, "get", short, "-n", ns)
		h := strings.Fields(strings.SplitN(out, "\n", 2)[0])
		if strings.Join(h, " ") != strings.Join(cols, " ") {
			t.Errorf("kubectl get %s header = %v, want %v", short, h, cols)
		}
		wide := strings.Fields(strings.SplitN(kubectl(t, "get", short, "-n", ns, "-o", "wide"), "\n", 2)[0])
		if wide[len(wide)-1] != "MESSAGE" {
			t.Errorf("kubectl get %s -o wide header = %v, want MESSAGE last", short, wide)
		}
	}
	if out := kubectl(t, "get", "kdeploy", "dokuya", "-n", ns); !strings.Contains(out, "docker.io/shuirong/dokuya:2f3c9a1") {
		t.Errorf("image column missing:\n%s", out)
	}
}
