package spechash

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// frozen are the fields of this package's types that version 1 encodes even when unset.
var frozen = []string{"spechash.Ulimit.Name", "spechash.Ulimit.Soft", "spechash.Ulimit.Hard", "spechash.Healthcheck.Command"}

var marshaler = reflect.TypeFor[json.Marshaler]()

// CheckProjection reports how projection type t breaks the rule of the package doc; each kind's
// tests call it. versionOne lists the fields, as "pkg.Type.Field", that version 1 encodes even
// when unset (those of this package's types are known here). It refuses:
//   - any other field that is not omitempty, or is of a kind omitempty keeps (a struct value);
//   - a field without an explicit JSON name, an embedded or unexported field;
//   - a type from another package than t's and this one (the API types among them: their new
//     fields would reach the hash unseen), an interface, a type with its own JSON encoding, a
//     map whose keys are not strings.
func CheckProjection(t reflect.Type, versionOne ...string) error {
	known := map[string]bool{}
	for _, f := range append(append([]string(nil), frozen...), versionOne...) {
		known[f] = true
	}
	own := map[string]bool{t.PkgPath(): true, reflect.TypeFor[Options]().PkgPath(): true}
	var problems []string
	seen := map[reflect.Type]bool{}
	fields := map[string]bool{}
	var walk func(t reflect.Type, where string)
	walk = func(t reflect.Type, where string) {
		if seen[t] {
			return
		}
		seen[t] = true
		if t.PkgPath() != "" && !own[t.PkgPath()] {
			problems = append(problems, fmt.Sprintf("%s: type %s belongs to package %s; project it into a type of its own", where, t, t.PkgPath()))
			return
		}
		if t.Implements(marshaler) || reflect.PointerTo(t).Implements(marshaler) {
			problems = append(problems, fmt.Sprintf("%s: type %s has its own JSON encoding", where, t))
		}
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice:
			walk(t.Elem(), where)
		case reflect.Map:
			if t.Key().Kind() != reflect.String {
				problems = append(problems, fmt.Sprintf("%s: map keys of %s are not strings", where, t))
			}
			walk(t.Elem(), where)
		case reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128, reflect.Array:
			problems = append(problems, fmt.Sprintf("%s: %s cannot be in a projection", where, t))
		case reflect.Struct:
			for i := range t.NumField() {
				f := t.Field(i)
				name := t.String() + "." + f.Name
				fields[name] = true
				tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				switch {
				case f.Anonymous || !f.IsExported():
					problems = append(problems, name+": embedded or unexported")
					continue
				case tag == "" || tag == "-":
					problems = append(problems, name+": no explicit JSON name")
					continue
				}
				if !known[name] {
					omit := false
					for _, o := range strings.Split(opts, ",") {
						omit = omit || o == "omitempty"
					}
					switch f.Type.Kind() {
					case reflect.Pointer, reflect.Slice, reflect.Map, reflect.String, reflect.Bool,
						reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
						reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
					default:
						omit = false
					}
					if !omit {
						problems = append(problems, name+": a field added after version 1 must be omitempty, of a kind omitempty drops (a pointer, not a struct)")
					}
				}
				walk(f.Type, name)
			}
		}
	}
	walk(t, t.String())
	for _, f := range versionOne {
		if !fields[f] {
			problems = append(problems, f+": listed as a field of version 1, but there is no such field")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("projection %s breaks the rule of package spechash:\n  %s", t, strings.Join(problems, "\n  "))
	}
	return nil
}
