package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

const kamalGroup = "kamal.operator.dev"

// The kamal kinds, in the order they become Ready.
var kinds = []struct{ kind, resource string }{
	{"Server", "servers"},
	{"Accessory", "accessories"},
	{"Deployment", "deployments"},
}

// object is a kamal object of the applied samples.
type object struct {
	kind, resource, namespace, name string
	spec                            map[string]any
}

func (o object) gvr() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: kamalGroup, Version: "v1alpha1", Resource: o.resource}
}

func (o object) String() string { return o.kind + "/" + o.name }

// decodeAll reads every object of a multi-document YAML stream.
func decodeAll(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if u.Object != nil {
			out = append(out, u)
		}
	}
}

// normalize rewrites the rendered manifests with each Secret's stringData moved into data, as
// the API server stores it, so that applying the same samples again reports them unchanged.
func normalize(rendered []byte) ([]byte, []*unstructured.Unstructured, error) {
	docs, err := decodeAll(rendered)
	if err != nil {
		return nil, nil, err
	}
	var out bytes.Buffer
	for _, u := range docs {
		if u.GetKind() == "Secret" && u.GetAPIVersion() == "v1" {
			data, _, _ := unstructured.NestedStringMap(u.Object, "data")
			if data == nil {
				data = map[string]string{}
			}
			// kustomize's generators wrap base64 lines; the API server stores them unwrapped.
			for k, v := range data {
				data[k] = strings.Join(strings.Fields(v), "")
			}
			sd, _, _ := unstructured.NestedStringMap(u.Object, "stringData")
			for k, v := range sd {
				data[k] = base64.StdEncoding.EncodeToString([]byte(v))
			}
			unstructured.RemoveNestedField(u.Object, "stringData")
			if err := unstructured.SetNestedStringMap(u.Object, data, "data"); err != nil {
				return nil, nil, err
			}
		}
		b, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, nil, err
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	return out.Bytes(), docs, nil
}

// kamalObjects picks the kamal objects, Servers first, then Accessories, then Deployments.
func kamalObjects(docs []*unstructured.Unstructured) []object {
	var objs []object
	for _, u := range docs {
		if u.GroupVersionKind().Group != kamalGroup {
			continue
		}
		for _, k := range kinds {
			if k.kind == u.GetKind() {
				ns := u.GetNamespace()
				if ns == "" {
					ns = "default"
				}
				spec, _, _ := unstructured.NestedMap(u.Object, "spec")
				objs = append(objs, object{kind: k.kind, resource: k.resource, namespace: ns, name: u.GetName(), spec: spec})
			}
		}
	}
	order := map[string]int{}
	for i, k := range kinds {
		order[k.kind] = i
	}
	sort.SliceStable(objs, func(i, j int) bool { return order[objs[i].kind] < order[objs[j].kind] })
	return objs
}

func dynClient(p paths) (dynamic.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", p.kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
	return dynamic.NewForConfig(cfg)
}

func apiReachable(ctx context.Context, p paths) error {
	c, err := dynClient(p)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = c.Resource(object{resource: "servers"}.gvr()).List(ctx, metav1.ListOptions{Limit: 1})
	return err
}

// readyCondition returns the Ready condition's status, reason and message.
func readyCondition(u *unstructured.Unstructured) (string, string, string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" {
			s, _ := m["status"].(string)
			r, _ := m["reason"].(string)
			msg, _ := m["message"].(string)
			return s, r, msg
		}
	}
	return "", "", ""
}

// waitReady waits until every object is Ready (kstatus Current), printing each change of its
// Ready condition; it gives up after timeout, or when an object stays Stalled for 30s.
func waitReady(ctx context.Context, p paths, u *ui, objs []object, timeout time.Duration) error {
	t0 := u.step("Wait until every resource is Ready")
	c, err := dynClient(p)
	if err != nil {
		return err
	}
	type track struct {
		last         string
		ready        bool
		stalledSince time.Time
	}
	tr := make([]track, len(objs))
	deadline := time.Now().Add(timeout)
	for {
		all := true
		for i, o := range objs {
			if tr[i].ready {
				continue
			}
			all = false
			gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			obj, err := c.Resource(o.gvr()).Namespace(o.namespace).Get(gctx, o.name, metav1.GetOptions{})
			cancel()
			var line string
			var st status.Status
			if err != nil {
				line = "not readable: " + err.Error()
			} else {
				res, err := status.Compute(obj)
				if err != nil {
					line = "status: " + err.Error()
				} else {
					st = res.Status
					s, r, m := readyCondition(obj)
					switch {
					case s == "":
						line = "waiting for the controller"
					case m != "":
						line = fmt.Sprintf("Ready=%s %s: %s", s, r, m)
					default:
						line = fmt.Sprintf("Ready=%s %s", s, r)
					}
				}
			}
			if st == status.CurrentStatus {
				tr[i].ready = true
				extra := ""
				if sr, ok, _ := unstructured.NestedString(obj.Object, "status", "serversReady"); ok && sr != "" {
					extra = ", servers " + sr
				}
				if img, ok, _ := unstructured.NestedString(obj.Object, "spec", "image"); ok {
					extra += ", " + img
				}
				if addr, ok, _ := unstructured.NestedString(obj.Object, "spec", "address"); ok {
					extra += ", " + addr
				}
				u.done(t0, "%s Ready%s", o, extra)
				continue
			}
			if line != tr[i].last {
				u.info("..  %7s  %s: %s", dur(time.Since(t0)), o, clip(line, 140))
				tr[i].last = line
			}
			if st == status.FailedStatus {
				if tr[i].stalledSince.IsZero() {
					tr[i].stalledSince = time.Now()
				} else if time.Since(tr[i].stalledSince) > 30*time.Second {
					return fmt.Errorf("%s is Stalled: %s", o, line)
				}
			} else {
				tr[i].stalledSince = time.Time{}
			}
		}
		if all {
			return nil
		}
		if time.Now().After(deadline) {
			var not []string
			for i, o := range objs {
				if !tr[i].ready {
					not = append(not, fmt.Sprintf("%s (%s)", o, tr[i].last))
				}
			}
			return fmt.Errorf("not Ready after %s: %s", timeout, strings.Join(not, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// proxyHost is the first host name of the Deployment's proxy.
func proxyHost(objs []object) (deployment, host string) {
	for _, o := range objs {
		if o.kind != "Deployment" {
			continue
		}
		hs, _, _ := unstructured.NestedStringSlice(o.spec, "proxy", "hosts")
		if len(hs) > 0 {
			return o.name, hs[0]
		}
		return o.name, ""
	}
	return "", ""
}

func hasAccessory(objs []object) bool {
	for _, o := range objs {
		if o.kind == "Accessory" {
			return true
		}
	}
	return false
}

// get asks a host's proxy for path with the given Host header.
func get(ctx context.Context, addr, host, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

var passwordInURL = regexp.MustCompile(`(://[^:/@]+:)[^@]+@`)

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return s
}

// askApp asks the app through each host's proxy, and shows what runs on each host.
func askApp(ctx context.Context, u *ui, objs []object, ds *demoState) {
	_, host := proxyHost(objs)
	if host == "" {
		return
	}
	u.step("Ask the app through each host's proxy (port 80, Host: %s)", host)
	for i, h := range ds.Hosts {
		paths := []string{"/", "/version"}
		if i == 0 {
			paths = append(paths, "/env?name=PHX_HOST", "/env?name=DATABASE_URL")
			if hasAccessory(objs) {
				paths = append(paths, "/db")
			}
		}
		for _, path := range paths {
			var code int
			var body string
			var err error
			// The route is in place when the Deployment is Ready; allow the proxy a moment.
			for try := 0; try < 20; try++ {
				if code, body, err = get(ctx, h.Address, host, path); err == nil && code == http.StatusOK {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			switch {
			case err != nil:
				u.info("%-6s curl -H 'Host: %s' http://%s%s  ->  %v", h.Server, host, h.Address, path, err)
			case path == "/db" && code == http.StatusNotFound:
				// A sample app without the database endpoint.
			default:
				body = passwordInURL.ReplaceAllString(firstLine(body), "${1}***@")
				u.info("%-6s curl -H 'Host: %s' http://%s%-22s ->  %d %s", h.Server, host, h.Address, path, code, body)
			}
		}
	}
	u.info("")
	for _, h := range ds.Hosts {
		cmd := exec.CommandContext(ctx, "docker", "ps", "--format", "{{.Names}}")
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+h.DockerHost)
		out, err := cmd.Output()
		if err != nil {
			continue
		}
		names := strings.Fields(string(out))
		sort.Strings(names)
		u.info("containers on %s (%s): %s", h.Server, h.Address, strings.Join(names, ", "))
	}
}

func printUsage(u *ui, p paths, assets string, objs []object, ds *demoState) {
	d, host := proxyHost(objs)
	if d == "" {
		d = sampleDeployment
	}
	var b strings.Builder
	w := func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }
	w("")
	w("The demo is up (in %s) and left running. Use it from a shell:", dur(time.Since(u.t0)))
	w("")
	w("  export KUBECONFIG=%s", p.kubeconfig)
	w("  export PATH=%s:$PATH    # the kubectl built by make kube-binaries", assets)
	w("")
	w("  kubectl get kamal")
	w("  # deploy a new version (the image tag is the version), and watch it roll host by host")
	w(`  kubectl patch deployments.kamal %s --type merge -p '{"spec":{"image":"%s"}}'`, d, appImageNext)
	w("  kubectl get deployments.kamal -w")
	for _, h := range ds.Hosts {
		w("  curl -H 'Host: %s' http://%s/version", host, h.Address)
	}
	if hasAccessory(objs) {
		w("  # the database (the Accessory runs on %s, where the app reaches it by its container name)", ds.Hosts[0].Server)
		w("  curl -H 'Host: %s' http://%s/db", host, ds.Hosts[0].Address)
		w("  curl -X POST -H 'Host: %s' 'http://%s/db/rows?value=hello'", host, ds.Hosts[0].Address)
		w("  curl -H 'Host: %s' http://%s/db/rows", host, ds.Hosts[0].Address)
	}
	w("  # roll back: set the image back to %s (the retained container restarts, nothing is pulled)", appImage)
	w("  # a version whose health check fails halts the rollout, the old one keeps serving: %s", appImageBroken)
	w("  # what the controller did, and why")
	w("  kubectl events --for deployments.kamal/%s", d)
	w("  kubectl describe deployments.kamal %s", d)
	w("  # the containers on a host, and the controller's log")
	w("  DOCKER_HOST=%s docker ps", ds.Hosts[0].DockerHost)
	w("  tail -f %s", p.managerLog)
	w("")
	w("  %s status    # what runs", rel(p, p.dir+"/kamal-demo"))
	w("  make demo-down              # stop the controller and the control plane, remove the test hosts")
	w("")
	w("The test hosts are shared with the end-to-end tests: a test run (make e2e) replaces them; run make demo again afterwards.")
	u.printf("%s", b.String())
}
