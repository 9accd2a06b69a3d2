package acme

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func TestKeyRoundTrip(t *testing.T) {
	key, err := NewAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	p, err := EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKey(p)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(back) {
		t.Error("PKCS #8 round trip changed the key")
	}
	sec1, _ := x509.MarshalECPrivateKey(key)
	back, err = ParseKey(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))
	if err != nil || !back.(*ecdsa.PrivateKey).Equal(key) {
		t.Errorf("SEC 1: %v", err)
	}
}

func TestParseKeyErrorsDoNotQuoteTheKey(t *testing.T) {
	bad := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("SECRETSECRETSECRET")})
	_, err := ParseKey(bad)
	if err == nil || strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "U0VDUkVU") {
		t.Errorf("ParseKey error %v", err)
	}
	if _, err := ParseKey([]byte("nothing")); err == nil {
		t.Error("no PEM accepted")
	}
}
