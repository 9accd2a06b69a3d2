package envtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportOutputIsAccepted runs the built plugin's import on the test configs, as `kubectl
// kamal import` (kubectl finds kubectl-kamal on PATH), and applies what it prints with a
// server-side dry run: the CRD schemas and CEL rules accept every object.
func TestImportOutputIsAccepted(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kubectl-kamal")
	build := exec.Command("go", "build", "-o", bin, "./cmd/kubectl-kamal")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := filepath.Join(repoRoot, "test", "testdata", "kamal")
	for name, args := range map[string][]string{
		"dokuya":       {filepath.Join(data, "dokuya-deploy.yml"), "--tag", "2f3c9a1"},
		"shop":         {filepath.Join(data, "shop", "config", "deploy.yml"), "--tag", "v42", "--secrets-file", filepath.Join(data, "shop", ".kamal", "secrets")},
		"shop-staging": {filepath.Join(data, "shop", "config", "deploy.yml"), "-d", "staging", "--tag", "v42"},
	} {
		t.Run(name, func(t *testing.T) {
			ns := newNamespace(t)
			imp := exec.Command(kubectlBin, append([]string{"kamal", "import", "--kubeconfig", kubeconfig, "-n", ns}, args...)...)
			var stdout, stderr bytes.Buffer
			imp.Stdout, imp.Stderr = &stdout, &stderr
			imp.Env = append(os.Environ(), "NO_COLOR=1", "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
			if err := imp.Run(); err != nil {
				t.Fatalf("import: %v\n%s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), "warning: builder: not mapped") {
				t.Errorf("stderr lacks the builder warning:\n%s", stderr.String())
			}
			apply := exec.Command(kubectlBin, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "-f", "-")
			apply.Stdin = bytes.NewReader(stdout.Bytes())
			out, err := apply.CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl apply --dry-run=server refused the import: %v\n%s\n--- input:\n%s", err, out, stdout.String())
			}
			for _, want := range []string{"deployment.kamal.operator.dev/", "server.kamal.operator.dev/", "accessory.kamal.operator.dev/", "secret/"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("kubectl apply did not report a %s:\n%s", want, out)
				}
			}
			if n := strings.Count(string(out), "(server dry run)"); n != strings.Count(stdout.String(), "\nkind: ") {
				t.Errorf("%d objects applied, %d printed:\n%s", n, strings.Count(stdout.String(), "\nkind: "), out)
			}
		})
	}
}
