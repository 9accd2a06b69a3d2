// Package spechash hashes what shapes a container into the short value of its spec-hash label.
//
// A running container is replaced when its label differs from the hash of its desired spec, so
// the hash must change when the container would be different, and only then. In particular it
// must not change when the controller is upgraded. So each kind hashes an explicit, versioned
// projection of its spec (release's and accessory's hashInputV1, built from this package's
// Options and Logging), never its internal structs or the API types: a field added to either
// would otherwise change every hash and recreate every container, restart every database.
//
// The rule for every projection type: a new field must be omitempty and absent from today's
// specs. That is:
//   - append it after the existing fields, with an explicit JSON name and omitempty;
//   - give it a type that omitempty drops when unset: pointer, slice, map, string, bool or number,
//     never a struct value (encoding/json keeps those; use a pointer);
//   - unset must mean "as before": a spec that does not set it must describe exactly the container
//     it described before the field existed;
//   - never rename, reorder, retype or remove an existing field, nor change how a value is encoded
//     (a nil list encodes as null and an empty one as []; both are kept as they are).
//
// A setting added to the API types that shapes the container must be added to the projection
// under that rule; the tests fail until it is. Changing the hash of existing specs on purpose
// is a new version (hashInputV2) and recreates every container on upgrade: never by accident.
// CheckProjection enforces the rule in each kind's tests.
package spechash

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Of is the first 16 hex digits of the HMAC-SHA256 of v's JSON, keyed with key (the object's
// UID), so a host user reading the label cannot test guesses of secret values against it. v is
// a projection (see the package doc); its JSON is encoding/json's, whose maps are sorted by key.
func Of(key string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("spec hash: encoding %T: %w", v, err)
	}
	m := hmac.New(sha256.New, []byte(key))
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))[:16], nil
}

// Must is Of for a projection made of strings, numbers, bools, lists, maps and this package's
// types, which always encodes; an error is a programming error, so it panics rather than give
// a hash of nothing (which would leave a changed container running, or recreate an unchanged
// one).
func Must(key string, v any) string {
	h, err := Of(key, v)
	if err != nil {
		panic(err)
	}
	return h
}
