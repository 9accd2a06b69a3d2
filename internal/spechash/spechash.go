// Package spechash hashes what shapes a container into the short value of its spec-hash label.
package spechash

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// Of is the first 16 hex digits of the HMAC-SHA256 of v's JSON, keyed with key (the object's
// UID), so a host user reading the label cannot test guesses of secret values against it.
func Of(key string, v any) string {
	b, _ := json.Marshal(v)
	m := hmac.New(sha256.New, []byte(key))
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))[:16]
}
