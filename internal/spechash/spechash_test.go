package spechash

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

func TestOf(t *testing.T) {
	type spec struct{ Env []string }
	a := Must("uid-1", spec{Env: []string{"A=1"}})
	if len(a) != 16 || Must("uid-1", spec{Env: []string{"A=1"}}) != a {
		t.Fatalf("hash %q is not a stable 16-digit value", a)
	}
	if Must("uid-2", spec{Env: []string{"A=1"}}) == a {
		t.Error("the key does not change the hash")
	}
	if Must("uid-1", spec{Env: []string{"A=2"}}) == a {
		t.Error("a value does not change the hash")
	}
}

func TestOfReportsAnEncodingError(t *testing.T) {
	bad := struct{ F func() }{F: func() {}}
	if h, err := Of("uid", bad); err == nil || h != "" {
		t.Fatalf("Of = %q, %v; want an error", h, err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Must returned a hash of a value it could not encode")
		}
	}()
	Must("uid", bad)
}

// fill sets every field reachable from v to a distinct non-zero value, so a test sees each one.
func fill(v reflect.Value, n *int) {
	next := func() int { *n++; return *n }
	switch v.Interface().(type) {
	case resource.Quantity:
		v.Set(reflect.ValueOf(resource.MustParse(fmt.Sprintf("%d500m", next()))))
		return
	case metav1.Duration:
		v.Set(reflect.ValueOf(metav1.Duration{Duration: time.Duration(next()) * 1500 * time.Millisecond}))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(v.Index(0), n)
		fill(v.Index(1), n)
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, n)
			fill(e, n)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d<&>", next()))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(next()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(next()))
	default:
		panic("fill: " + v.Type().String())
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Version 1 hashed the API types' own JSON; the projection must encode every setting they hold
// exactly as they do. When the API gains a setting, this fails until the projection has it.
func TestProjectionEncodesEverySettingAsTheAPIDid(t *testing.T) {
	n := 0
	var o kamalv1.ContainerOptions
	fill(reflect.ValueOf(&o).Elem(), &n)
	if got, want := mustJSON(t, FromOptions(&o)), mustJSON(t, &o); got != want {
		t.Errorf("options project to\n %s\nbut the API encodes\n %s\n"+
			"add the missing setting to spechash.Options (omitempty, see the package doc)", got, want)
	}
	var l kamalv1.Logging
	fill(reflect.ValueOf(&l).Elem(), &n)
	if got, want := mustJSON(t, FromLogging(&l)), mustJSON(t, &l); got != want {
		t.Errorf("logging projects to\n %s\nbut the API encodes\n %s", got, want)
	}
	// Unset, empty and nil are encoded as the API types encode them too.
	for _, o := range []*kamalv1.ContainerOptions{nil, {}, {Resources: &kamalv1.Resources{}, Ulimits: []kamalv1.Ulimit{},
		Healthcheck: &kamalv1.ContainerHealthcheck{Command: []string{}}, Sysctls: map[string]string{}}, {Healthcheck: &kamalv1.ContainerHealthcheck{}}} {
		if got, want := mustJSON(t, FromOptions(o)), mustJSON(t, o); got != want {
			t.Errorf("options project to %s, the API encodes %s", got, want)
		}
	}
	for _, l := range []*kamalv1.Logging{nil, {}, {Options: map[string]string{}}} {
		if got, want := mustJSON(t, FromLogging(l)), mustJSON(t, l); got != want {
			t.Errorf("logging projects to %s, the API encodes %s", got, want)
		}
	}
}

func TestProjectionsFollowTheRule(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[Options](), reflect.TypeFor[Logging]()} {
		if err := CheckProjection(typ); err != nil {
			t.Error(err)
		}
	}
}

type apiInside struct {
	Options *kamalv1.ContainerOptions `json:"options,omitempty"`
}
type unsetKept struct {
	A string `json:"a"`
	B string `json:"b"`
}
type structValue struct {
	A string  `json:"a"`
	S Logging `json:"s,omitempty"`
}
type noName struct {
	A string
}
type ownEncoding struct {
	Q *resource.Quantity `json:"q,omitempty"`
}

func TestCheckProjectionRefuses(t *testing.T) {
	for _, c := range []struct {
		typ        reflect.Type
		versionOne []string
		want       string
	}{
		{reflect.TypeFor[apiInside](), nil, "belongs to package"},
		{reflect.TypeFor[unsetKept](), []string{"spechash.unsetKept.A"}, "unsetKept.B: a field added after version 1 must be omitempty"},
		{reflect.TypeFor[structValue](), []string{"spechash.structValue.A"}, "structValue.S: a field added after version 1 must be omitempty"},
		{reflect.TypeFor[noName](), nil, "no explicit JSON name"},
		{reflect.TypeFor[ownEncoding](), nil, "belongs to package"},
		{reflect.TypeFor[unsetKept](), []string{"spechash.unsetKept.A", "spechash.unsetKept.B", "spechash.unsetKept.C"}, "no such field"},
	} {
		err := CheckProjection(c.typ, c.versionOne...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.typ, err, c.want)
		}
	}
}

// A field added under the rule leaves the encoding, hence every hash, as it was while unset:
// here Options as it would be with settings appended to it and to its health check.
func TestANewUnsetFieldKeepsTheHash(t *testing.T) {
	type healthcheckV2 struct {
		Command       []string `json:"command"`
		Interval      string   `json:"interval,omitempty"`
		Timeout       string   `json:"timeout,omitempty"`
		Retries       int32    `json:"retries,omitempty"`
		StartPeriod   string   `json:"startPeriod,omitempty"`
		StartInterval string   `json:"startInterval,omitempty"`
	}
	type optionsV2 struct {
		Resources              *Resources        `json:"resources,omitempty"`
		RestartPolicy          string            `json:"restartPolicy,omitempty"`
		RestartMaxRetries      *int32            `json:"restartMaxRetries,omitempty"`
		ExtraHosts             []string          `json:"extraHosts,omitempty"`
		Ulimits                []Ulimit          `json:"ulimits,omitempty"`
		User                   string            `json:"user,omitempty"`
		WorkingDir             string            `json:"workingDir,omitempty"`
		ShmSize                string            `json:"shmSize,omitempty"`
		CapAdd                 []string          `json:"capAdd,omitempty"`
		CapDrop                []string          `json:"capDrop,omitempty"`
		Privileged             bool              `json:"privileged,omitempty"`
		ReadOnlyRootFilesystem bool              `json:"readOnlyRootFilesystem,omitempty"`
		Init                   bool              `json:"init,omitempty"`
		StopSignal             string            `json:"stopSignal,omitempty"`
		Tmpfs                  []string          `json:"tmpfs,omitempty"`
		Devices                []string          `json:"devices,omitempty"`
		DNS                    []string          `json:"dns,omitempty"`
		Sysctls                map[string]string `json:"sysctls,omitempty"`
		Healthcheck            *healthcheckV2    `json:"healthcheck,omitempty"`
		CPUShares              *int64            `json:"cpuShares,omitempty"`
		GroupAdd               []string          `json:"groupAdd,omitempty"`
		Annotations            map[string]string `json:"annotations,omitempty"`
		OomKillDisable         bool              `json:"oomKillDisable,omitempty"`
	}
	if err := CheckProjection(reflect.TypeFor[optionsV2](), "spechash.healthcheckV2.Command"); err != nil {
		t.Fatalf("the example breaks the rule: %v", err)
	}
	n := 0
	var o kamalv1.ContainerOptions
	fill(reflect.ValueOf(&o).Elem(), &n)
	p := FromOptions(&o)
	h := p.Healthcheck
	v2 := optionsV2{
		Resources: p.Resources, RestartPolicy: p.RestartPolicy, RestartMaxRetries: p.RestartMaxRetries, ExtraHosts: p.ExtraHosts,
		Ulimits: p.Ulimits, User: p.User, WorkingDir: p.WorkingDir, ShmSize: p.ShmSize, CapAdd: p.CapAdd, CapDrop: p.CapDrop,
		Privileged: p.Privileged, ReadOnlyRootFilesystem: p.ReadOnlyRootFilesystem, Init: p.Init, StopSignal: p.StopSignal,
		Tmpfs: p.Tmpfs, Devices: p.Devices, DNS: p.DNS, Sysctls: p.Sysctls,
		Healthcheck: &healthcheckV2{Command: h.Command, Interval: h.Interval, Timeout: h.Timeout, Retries: h.Retries, StartPeriod: h.StartPeriod},
	}
	if got, want := mustJSON(t, v2), mustJSON(t, p); got != want {
		t.Fatalf("unset new fields changed the encoding:\n %s\n %s", got, want)
	}
	if Must("uid", v2) != Must("uid", p) {
		t.Fatal("unset new fields changed the hash")
	}
	v2.CPUShares = new(int64)
	if Must("uid", v2) == Must("uid", p) {
		t.Fatal("a set new field does not change the hash")
	}
}
