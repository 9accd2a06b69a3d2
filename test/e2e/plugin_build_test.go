package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kamal-operator/kamal-operator/test/framework"
	"github.com/kamal-operator/kamal-operator/test/images"
)

// buildDockerfile makes an image of the sampleapp binary next to it, as test/images does.
const buildDockerfile = `FROM scratch
COPY sampleapp /sampleapp
EXPOSE 80
ENTRYPOINT ["/sampleapp"]
CMD ["serve"]
`

// buildContext writes a build context in a new folder: the Dockerfile, a .dockerignore and
// the sampleapp binary of version, committed to a new Git repository.
func buildContext(t testing.TB, version string) string {
	t.Helper()
	dir := t.TempDir()
	bin, err := images.BuildSampleApp(context.Background(), version, false)
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, bin, filepath.Join(dir, "sampleapp"), 0o755)
	for name, data := range map[string]string{
		"Dockerfile":    buildDockerfile,
		".dockerignore": "*.md\n",
		"README.md":     "not sent\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, dir, "init", "-q")
	git(t, dir, "add", "-A")
	git(t, dir, "-c", "user.name=kamal", "-c", "user.email=kamal@example.test", "commit", "-q", "-m", "app")
	return dir
}

func copyFile(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func registrySecret(t testing.TB, ns, name, addr, user, password string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeDockerConfigJson,
		StringData: map[string]string{corev1.DockerConfigJsonKey: `{"auths":{"` + addr + `":{"username":"` + user + `","password":"` + password + `"}}}`}}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// A Deployment whose image lives on the registry with a password: deploy --build builds its
// Git context on the first Server of its primary role, pushes with the Deployment's
// imagePullSecrets and rolls the commit out; an uncommitted change rolls out as a dirty tag;
// a wrong password and a Dockerfile error fail with the engine's or registry's message; the
// password is left neither on the builder nor in the plugin's output.
func TestPluginBuild(t *testing.T) {
	regAddr, regUser, regPass := env.AuthRegistry()
	const wrongPass = "wrong-password-4242"

	t.Run("the registry asks for the password", func(t *testing.T) {
		// Pulls read /v2/; pushes start with an upload.
		for _, c := range []struct {
			user, pass string
			want       int
		}{{"", "", 401}, {regUser, wrongPass, 401}, {regUser, regPass, 0}} {
			for _, req := range []struct{ method, path string }{{"GET", "/v2/"}, {"GET", "/v2/buildapp/tags/list"}, {"POST", "/v2/buildapp/blobs/uploads/"}} {
				r, _ := http.NewRequest(req.method, "http://"+regAddr+req.path, nil)
				if c.user != "" {
					r.SetBasicAuth(c.user, c.pass)
				}
				resp, err := http.DefaultClient.Do(r)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if (c.want == 401) != (resp.StatusCode == 401) {
					t.Errorf("%s %s with user %q (password given: %v): %s", req.method, req.path, c.user, c.pass != "", resp.Status)
				}
			}
		}
	})

	ns := newNamespace(t)
	keySecret(t, ns)
	h := env.Host(hostThird)
	srv := serverFor(ns, "build-web-1", h)
	createServer(t, srv)
	waitReady(t, srv)
	registrySecret(t, ns, "registry", regAddr, regUser, regPass)
	registrySecret(t, ns, "wrong", regAddr, regUser, wrongPass)

	const name = "buildapp"
	repo := regAddr + "/" + name
	d := appDeployment(ns, name, "v1")
	d.Spec.Image = repo + ":not-built-yet"
	d.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "registry"}}
	createDeployment(t, d)

	dir := buildContext(t, "built-1")
	var outputs []string
	run := func(timeout time.Duration, args ...string) pluginRun {
		t.Helper()
		r := kamal(t, ns, "", timeout, args...)
		outputs = append(outputs, r.Stdout, r.Stderr)
		return r
	}
	deployed := func(t *testing.T, tag, version string) {
		t.Helper()
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(d), d); err != nil {
			t.Fatal(err)
		}
		if d.Spec.Image != repo+":"+tag || d.Status.Image != d.Spec.Image {
			t.Errorf("spec.image %s, status.image %s; want %s:%s", d.Spec.Image, d.Status.Image, repo, tag)
		}
		framework.Eventually(t, 10*time.Second, answers(h, name+".test", "/version", 200, version))
	}

	t.Run("deploy --build rolls out the commit", func(t *testing.T) {
		t0 := time.Now()
		r := run(3*time.Minute, "deploy", name, "--build", dir)
		t.Logf("deploy --build took %s", time.Since(t0).Round(time.Millisecond))
		if r.Code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
		}
		sha := git(t, dir, "rev-parse", "HEAD")
		for _, want := range []string{"on Server build-web-1 (the first Server of role web", "Pushed " + repo + ":" + sha + "@sha256:", "rolled out"} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
			}
		}
		if !strings.Contains(r.Stdout, "✔ Healthy") {
			t.Errorf("the rollout was not followed to Healthy:\n%s", r.Stdout)
		}
		deployed(t, sha, "built-1")
	})

	t.Run("an uncommitted change rolls out under a dirty tag", func(t *testing.T) {
		bin, err := images.BuildSampleApp(context.Background(), "built-2", false)
		if err != nil {
			t.Fatal(err)
		}
		copyFile(t, bin, filepath.Join(dir, "sampleapp"), 0o755)
		r := run(3*time.Minute, "deploy", name, "--build", dir)
		if r.Code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
		}
		sha := git(t, dir, "rev-parse", "HEAD")
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(d), d); err != nil {
			t.Fatal(err)
		}
		tag := strings.TrimPrefix(d.Spec.Image, repo+":")
		if !strings.HasPrefix(tag, sha+"-dirty-") || len(tag) != len(sha)+len("-dirty-")+8 {
			t.Fatalf("tag %q, want %s-dirty-<8 hex>", tag, sha)
		}
		deployed(t, tag, "built-2")
	})

	t.Run("a wrong password fails the push with the registry's message", func(t *testing.T) {
		r := run(2*time.Minute, "build", "--builder", srv.Name, "--image", repo, "--registry-secret", "wrong", "--tag", "wrong-password", dir)
		t.Logf("stderr:\n%s", lastLines(r.Stderr, 3))
		if r.Code == 0 || !strings.Contains(strings.ToLower(r.Stderr), "unauthorized") || !strings.Contains(r.Stderr, "push of "+repo+":wrong-password") {
			t.Errorf("exit %d, stderr:\n%s", r.Code, r.Stderr)
		}
	})

	t.Run("a Dockerfile error fails with the builder's message", func(t *testing.T) {
		bad := t.TempDir()
		if err := os.WriteFile(filepath.Join(bad, "Dockerfile"), []byte("FROM scratch\nRUNN nothing\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r := run(time.Minute, "build", "--builder", srv.Name, "--image", repo, "--tag", "broken", bad)
		t.Logf("stderr:\n%s", lastLines(r.Stderr, 3))
		if r.Code == 0 || !strings.Contains(strings.ToLower(r.Stderr), "unknown instruction: runn") {
			t.Errorf("exit %d, stderr:\n%s", r.Code, r.Stderr)
		}
		// Without --tag, a folder outside Git has no version.
		r = run(time.Minute, "build", "--builder", srv.Name, "--image", repo, bad)
		if r.Code == 0 || !strings.Contains(r.Stderr, "pass --tag") {
			t.Errorf("no Git: exit %d, stderr:\n%s", r.Code, r.Stderr)
		}
		r = run(time.Minute, "deploy", name)
		if r.Code == 0 || !strings.Contains(r.Stderr, "--build") {
			t.Errorf("deploy without --build or --image: exit %d, stderr:\n%s", r.Code, r.Stderr)
		}
	})

	t.Run("no password is left on the builder or printed", func(t *testing.T) {
		for _, pass := range []string{regPass, wrongPass} {
			for _, o := range outputs {
				if strings.Contains(o, pass) {
					t.Fatalf("the plugin printed a password:\n%s", o)
				}
			}
			out, _ := h.Exec(context.Background(), "grep", "-rlsF", "-D", "skip", "-e", pass, "/root", "/etc/docker", "/var/lib/docker", "/run/docker")
			if s := strings.TrimSpace(string(out)); s != "" {
				t.Errorf("the password is on the builder host in:\n%s", s)
			}
		}
		// The search itself can find it: a planted copy is found.
		hostExec(t, h, "sh", "-c", "echo "+regPass+" > /root/planted")
		defer hostExec(t, h, "rm", "-f", "/root/planted")
		if out, _ := h.Exec(context.Background(), "grep", "-rlsF", "-e", regPass, "/root"); !strings.Contains(string(out), "/root/planted") {
			t.Errorf("grep does not find a planted password: %q", out)
		}
	})
}
