// Package argocd tests the Argo CD health checks in config/argocd: each Lua script runs in
// gopher-lua, the engine Argo CD uses, the way Argo CD runs it (a global `obj` built from the
// object, only the base, package and table libraries, a one-second limit, a returned table with
// status and message), against status fixtures in testdata/ and against status written by the
// controller's own condition setters.
package argocd

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/conditions"
)

const (
	configDir     = "../../config/argocd"
	configMapFile = "argocd-cm.yaml"
	keyPrefix     = "resource.customizations.health."
)

// scriptFiles maps each kind to its .lua file in configDir: one script serves the three.
var scriptFiles = map[string]string{
	"Server":     "health.lua",
	"Deployment": "health.lua",
	"Accessory":  "health.lua",
}

// healthKey is the argocd-cm key Argo CD looks up for a kind: <group>_<kind>.
func healthKey(gvk schema.GroupVersionKind) string {
	return keyPrefix + gvk.Group + "_" + gvk.Kind
}

// loadConfigMap reads the argocd-cm snippet's data.
func loadConfigMap(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(configDir, configMapFile))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		t.Fatalf("%s: %v", configMapFile, err)
	}
	if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" || cm.Name != "argocd-cm" {
		t.Fatalf("%s is %s %s %q, want v1 ConfigMap argocd-cm", configMapFile, cm.APIVersion, cm.Kind, cm.Name)
	}
	return cm.Data
}

// TestConfigMapEmbedsScripts keeps the argocd-cm snippet and the .lua files identical, with one
// key per kind and nothing else.
func TestConfigMapEmbedsScripts(t *testing.T) {
	data := loadConfigMap(t)
	var want []string
	for kind, file := range scriptFiles {
		key := healthKey(kamalv1.GroupVersion.WithKind(kind))
		want = append(want, key)
		script, err := os.ReadFile(filepath.Join(configDir, file))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := data[key]
		if !ok {
			t.Errorf("%s has no key %s", configMapFile, key)
			continue
		}
		if got != string(script) {
			t.Errorf("%s differs from %s[%s]: copy the file into the ConfigMap verbatim", file, configMapFile, key)
		}
	}
	var keys []string
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("%s keys = %v, want %v", configMapFile, keys, want)
	}
}

// health is what a script returned.
type health struct {
	Status  string
	Message string
}

// validHealth are the statuses Argo CD accepts from a script; any other turns into Unknown.
var validHealth = []string{"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

// runHealth runs a health script as Argo CD does.
func runHealth(script string, obj map[string]any) (health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage,
		lua.BaseLibName: lua.OpenBase,
		lua.TabLibName:  lua.OpenTable,
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), NRet: 0, Protect: true}, lua.LString(name)); err != nil {
			return health{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return health{}, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return health{}, fmt.Errorf("script returned %s, want a table", l.Get(-1).Type())
	}
	var h health
	var err error
	ret.ForEach(func(k, v lua.LValue) {
		s, isString := v.(lua.LString)
		switch {
		case k.String() != "status" && k.String() != "message":
			err = fmt.Errorf("unexpected key %q in the returned table", k.String())
		case !isString:
			err = fmt.Errorf("%s is a %s, want a string", k.String(), v.Type())
		case k.String() == "status":
			h.Status = string(s)
		default:
			h.Message = string(s)
		}
	})
	if err != nil {
		return health{}, err
	}
	if !slices.Contains(validHealth, h.Status) {
		return health{}, fmt.Errorf("status %q is not one Argo CD accepts", h.Status)
	}
	return h, nil
}

// toLua converts an unstructured value to Lua as Argo CD does: JSON objects and arrays become
// tables, integers and floats numbers.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

// readFixture reads a YAML object from testdata the way a client decodes it from the API
// server (integers as int64).
func readFixture(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return u
}

// checkHealth runs the script Argo CD would pick for the object.
func checkHealth(t *testing.T, scripts map[string]string, u *unstructured.Unstructured) health {
	t.Helper()
	script, ok := scripts[healthKey(u.GroupVersionKind())]
	if !ok {
		t.Fatalf("no health check for %s", u.GroupVersionKind())
	}
	h, err := runHealth(script, u.Object)
	if err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return h
}

// kstatusOf computes what kstatus (sigs.k8s.io/cli-utils, as Flux uses it) says.
func kstatusOf(t *testing.T, u *unstructured.Unstructured) status.Status {
	t.Helper()
	res, err := status.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

// kstatusFor is the kstatus status that agrees with each Argo CD health status.
var kstatusFor = map[string]status.Status{
	"Healthy":     status.CurrentStatus,
	"Progressing": status.InProgressStatus,
	"Degraded":    status.FailedStatus,
}

func TestFixtures(t *testing.T) {
	scripts := loadConfigMap(t)
	const hostKeyMsg = "host key SHA256:3f1JjUQe0Q5Zx2RkqQm0i4Jm6VbN8wqN7S0tGm5yF0A is not accepted: refusing to connect (check spec.knownHosts, or clear status.trustedHostKey to trust a new key)"
	const healthMsg = "health check GET /up on port 80 of dokuya-web-c0ffee1 (web-1) did not pass within deployTimeout: last answer 503 Service Unavailable"
	for _, tc := range []struct {
		file    string
		want    health
		kstatus status.Status // only where it differs from kstatusFor[want.Status]
		why     string        // why it differs
	}{
		{file: "server-healthy.yaml", want: health{"Healthy", "connected, Docker and proxy ready"}},
		{file: "server-progressing-new.yaml", want: health{"Progressing", "Waiting for the controller to observe generation 1"}},
		{file: "server-progressing-unreachable.yaml", want: health{"Progressing", "dial tcp 185.194.123.14:22: connect: connection refused"}},
		{file: "server-progressing-stale.yaml", want: health{"Progressing", "Waiting for the controller to observe generation 3"}},
		{file: "server-degraded-hostkey.yaml", want: health{"Degraded", hostKeyMsg}},

		{file: "deployment-healthy.yaml", want: health{"Healthy", "2f3c9a1 serves on 2 targets"}},
		{file: "deployment-progressing-rollout.yaml", want: health{"Progressing", "1 of 2 targets on 9b1e4c2"}},
		{file: "deployment-progressing-waiting.yaml", want: health{"Progressing", "waiting for Accessory dokuya-postgres to be Ready"}},
		{file: "deployment-progressing-nostatus.yaml", want: health{"Progressing", "Waiting for the controller to observe the object"},
			kstatus: status.CurrentStatus, why: "kstatus skips the generation check without status.observedGeneration; the CRD defaults it to -1, so objects read from the API server always have it"},
		{file: "deployment-degraded-healthcheck.yaml", want: health{"Degraded", healthMsg}},
		{file: "deployment-degraded-notready.yaml", want: health{"Degraded", "unreachable: web-1 (ssh: handshake failed: EOF)"},
			kstatus: status.InProgressStatus, why: "kstatus reads a lone Ready=False as in progress; the controller never writes Ready=False without Reconciling or Stalled"},
		{file: "deployment-suspended.yaml", want: health{"Suspended", "spec.suspend is true: nothing on the hosts is changed; last Ready message: 2f3c9a1 serves on 2 targets"},
			kstatus: status.InProgressStatus, why: "kstatus has no suspended state; the status of a suspended Deployment stays at the generation last reconciled"},

		{file: "accessory-healthy.yaml", want: health{"Healthy", "postgres:15 runs as dokuya-postgres on 1 servers"}},
		{file: "accessory-progressing-starting.yaml", want: health{"Progressing", "starting on web-1"}},
		{file: "accessory-progressing-pending.yaml", want: health{"Progressing", "references and placement are valid; this build does not run containers on hosts"}},
		{file: "accessory-progressing-stale.yaml", want: health{"Progressing", "Waiting for the controller to observe generation 2"}},
		{file: "accessory-degraded-secret.yaml", want: health{"Degraded", `Secret "dokuya-secrets" (spec.env[POSTGRES_PASSWORD]) not found`}},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".yaml"), func(t *testing.T) {
			u := readFixture(t, tc.file)
			if got := checkHealth(t, scripts, u); got != tc.want {
				t.Errorf("health = %+v, want %+v", got, tc.want)
			}
			want := tc.kstatus
			if want == "" {
				want = kstatusFor[tc.want.Status]
			}
			if got := kstatusOf(t, u); got != want {
				t.Errorf("kstatus = %s, want %s (%s)", got, want, tc.why)
			}
		})
	}
}

// TestEveryKindAndStatusCovered makes sure each kind has fixtures for Healthy, Progressing and
// Degraded, and that only Deployments can be Suspended (TestOnlyDeploymentsSuspend).
func TestEveryKindAndStatusCovered(t *testing.T) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, e := range entries {
		parts := strings.SplitN(strings.TrimSuffix(e.Name(), ".yaml"), "-", 3)
		if len(parts) >= 2 {
			have[parts[0]+"-"+parts[1]] = true
		}
	}
	for _, kind := range []string{"server", "deployment", "accessory"} {
		for _, st := range []string{"healthy", "progressing", "degraded"} {
			if !have[kind+"-"+st] {
				t.Errorf("no testdata/%s-%s*.yaml", kind, st)
			}
		}
	}
	if !have["deployment-suspended"] {
		t.Error("no testdata/deployment-suspended.yaml")
	}
}

// TestFixturesMatchAPI decodes every fixture strictly into the API types, so fixtures use real
// field names, and checks their condition types and reasons against those api/v1alpha1 declares.
func TestFixturesMatchAPI(t *testing.T) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	reasons, types := declaredConstants(t)
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join("testdata", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(raw, &tm); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		if tm.APIVersion != kamalv1.GroupVersion.String() {
			t.Errorf("%s: apiVersion %q", e.Name(), tm.APIVersion)
		}
		var conds []metav1.Condition
		switch tm.Kind {
		case "Server":
			var o kamalv1.Server
			err = yaml.UnmarshalStrict(raw, &o)
			conds = o.Status.Conditions
		case "Deployment":
			var o kamalv1.Deployment
			err = yaml.UnmarshalStrict(raw, &o)
			conds = o.Status.Conditions
		case "Accessory":
			var o kamalv1.Accessory
			err = yaml.UnmarshalStrict(raw, &o)
			conds = o.Status.Conditions
		default:
			t.Errorf("%s: unknown kind %q", e.Name(), tm.Kind)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
		for _, c := range conds {
			if !slices.Contains(types, c.Type) {
				t.Errorf("%s: condition type %q is not declared in the API", e.Name(), c.Type)
			}
			if !slices.Contains(reasons, c.Reason) {
				t.Errorf("%s: reason %q is not declared in the API", e.Name(), c.Reason)
			}
		}
	}
}

// declaredConstants reads the string constants named Reason* and Condition* in api/v1alpha1.
func declaredConstants(t *testing.T) (reasons, types []string) {
	t.Helper()
	files, err := filepath.Glob("../../api/v1alpha1/*_types.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no API sources: %v", err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					break
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case strings.HasPrefix(name.Name, "Reason"):
					reasons = append(reasons, v)
				case strings.HasPrefix(name.Name, "Condition"):
					types = append(types, v)
				}
			}
			return true
		})
	}
	if len(reasons) == 0 || !slices.Contains(types, "Ready") {
		t.Fatalf("found reasons %v and condition types %v in api/v1alpha1", reasons, types)
	}
	return reasons, types
}

// TestConditionSetters runs the checks against status written by the controller's own setters
// (internal/conditions), for every kind.
func TestConditionSetters(t *testing.T) {
	scripts := loadConfigMap(t)
	const gen = 3
	for _, tc := range []struct {
		name string
		set  func(*[]metav1.Condition)
		want string
	}{
		{"MarkReady", func(c *[]metav1.Condition) { conditions.MarkReady(c, gen, "Reconciled", "the message") }, "Healthy"},
		{"MarkReconciling", func(c *[]metav1.Condition) {
			conditions.MarkReconciling(c, gen, "RollingOut", "the message")
		}, "Progressing"},
		{"MarkNotReady", func(c *[]metav1.Condition) {
			conditions.MarkNotReady(c, gen, "Unreachable", "the message")
		}, "Progressing"},
		{"MarkStalled", func(c *[]metav1.Condition) {
			conditions.MarkStalled(c, gen, "SecretNotFound", "the message")
		}, "Degraded"},
		{"MarkUnknown", func(c *[]metav1.Condition) { conditions.MarkUnknown(c, gen, "Pending", "the message") }, "Progressing"},
		{"MarkStalledAfterReady", func(c *[]metav1.Condition) {
			conditions.MarkReady(c, gen, "Reconciled", "was ready")
			conditions.MarkStalled(c, gen, "HealthCheckFailed", "the message")
		}, "Degraded"},
		{"MarkReadyAfterStalled", func(c *[]metav1.Condition) {
			conditions.MarkStalled(c, gen, "HealthCheckFailed", "was stalled")
			conditions.MarkReady(c, gen, "Reconciled", "the message")
		}, "Healthy"},
	} {
		for kind := range scriptFiles {
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				var conds []metav1.Condition
				tc.set(&conds)
				u := object(t, kind, gen, gen, conds)
				want := health{tc.want, "the message"}
				if got := checkHealth(t, scripts, u); got != want {
					t.Errorf("health = %+v, want %+v", got, want)
				}
				if got := kstatusOf(t, u); got != kstatusFor[tc.want] {
					t.Errorf("kstatus = %s, want %s", got, kstatusFor[tc.want])
				}

				// The same status one generation behind the spec is in progress, whatever it says.
				u = object(t, kind, gen+1, gen, conds)
				want = health{"Progressing", "Waiting for the controller to observe generation 4"}
				if got := checkHealth(t, scripts, u); got != want {
					t.Errorf("behind: health = %+v, want %+v", got, want)
				}
				if got := kstatusOf(t, u); got != status.InProgressStatus {
					t.Errorf("behind: kstatus = %s, want InProgress", got)
				}
			})
		}
	}
}

// object builds an object of a kind with a generation, an observed generation and conditions,
// through JSON as a client would read it.
func object(t *testing.T, kind string, generation, observed int64, conds []metav1.Condition) *unstructured.Unstructured {
	t.Helper()
	meta := metav1.ObjectMeta{Name: "x", Namespace: "shop", Generation: generation}
	common := kamalv1.CommonStatus{ObservedGeneration: observed, Conditions: conds}
	tm := metav1.TypeMeta{APIVersion: kamalv1.GroupVersion.String(), Kind: kind}
	var o any
	switch kind {
	case "Server":
		o = kamalv1.Server{TypeMeta: tm, ObjectMeta: meta, Status: kamalv1.ServerStatus{CommonStatus: common}}
	case "Deployment":
		o = kamalv1.Deployment{TypeMeta: tm, ObjectMeta: meta, Status: kamalv1.DeploymentStatus{CommonStatus: common}}
	case "Accessory":
		o = kamalv1.Accessory{TypeMeta: tm, ObjectMeta: meta, Status: kamalv1.AccessoryStatus{CommonStatus: common}}
	default:
		t.Fatalf("unknown kind %s", kind)
	}
	js, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestOnlyDeploymentsSuspend: spec.suspend makes a Deployment Suspended whatever its status;
// false does nothing; Servers and Accessories have no such field and are never Suspended.
func TestOnlyDeploymentsSuspend(t *testing.T) {
	scripts := loadConfigMap(t)
	for _, tc := range []struct {
		file    string
		suspend bool
		want    string
	}{
		{"deployment-healthy.yaml", false, "Healthy"},
		{"deployment-healthy.yaml", true, "Suspended"},
		{"deployment-degraded-healthcheck.yaml", true, "Suspended"},
		{"deployment-progressing-nostatus.yaml", true, "Suspended"},
		{"server-healthy.yaml", true, "Healthy"},
		{"accessory-degraded-secret.yaml", true, "Degraded"},
	} {
		t.Run(fmt.Sprintf("%s/suspend=%v", tc.file, tc.suspend), func(t *testing.T) {
			u := readFixture(t, tc.file)
			if err := unstructured.SetNestedField(u.Object, tc.suspend, "spec", "suspend"); err != nil {
				t.Fatal(err)
			}
			h := checkHealth(t, scripts, u)
			if h.Status != tc.want {
				t.Errorf("health = %+v, want %s", h, tc.want)
			}
			if tc.want == "Suspended" && !strings.HasPrefix(h.Message, "spec.suspend is true") {
				t.Errorf("message %q does not say why", h.Message)
			}
		})
	}
}

// TestScriptsNeedNoStatusFields: scripts must not fail on objects with parts missing.
func TestScriptsNeedNoStatusFields(t *testing.T) {
	scripts := loadConfigMap(t)
	for kind := range scriptFiles {
		for name, obj := range map[string]map[string]any{
			"bare":              {"apiVersion": kamalv1.GroupVersion.String(), "kind": kind},
			"empty status":      {"apiVersion": kamalv1.GroupVersion.String(), "kind": kind, "metadata": map[string]any{"generation": int64(1)}, "status": map[string]any{}},
			"no conditions":     {"apiVersion": kamalv1.GroupVersion.String(), "kind": kind, "metadata": map[string]any{"generation": int64(1)}, "status": map[string]any{"observedGeneration": int64(1)}},
			"condition no text": {"apiVersion": kamalv1.GroupVersion.String(), "kind": kind, "metadata": map[string]any{"generation": int64(1)}, "status": map[string]any{"observedGeneration": int64(1), "conditions": []any{map[string]any{"type": "Ready", "status": "False"}}}},
		} {
			t.Run(kind+"/"+name, func(t *testing.T) {
				h, err := runHealth(scripts[healthKey(kamalv1.GroupVersion.WithKind(kind))], obj)
				if err != nil {
					t.Fatal(err)
				}
				if h.Message == "" {
					t.Errorf("health %+v has no message", h)
				}
			})
		}
	}
}
