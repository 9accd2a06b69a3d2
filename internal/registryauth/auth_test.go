package registryauth

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func TestRegistry(t *testing.T) {
	for image, want := range map[string]string{
		"postgres:15": "docker.io", "shuirong/dokuya:1": "docker.io", "docker.io/x/y:1": "docker.io",
		"ghcr.io/a/b:1": "ghcr.io", "10.231.0.1:5000/app:v1": "10.231.0.1:5000", "localhost/app:1": "localhost",
		"index.docker.io/x/y:1": "docker.io", "GHCR.io/a/b:1": "ghcr.io",
	} {
		if got := Registry(image); got != want {
			t.Errorf("Registry(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestRepository(t *testing.T) {
	digest := "@sha256:" + strings.Repeat("a", 64)
	for image, want := range map[string]string{
		"postgres:15":                            "docker.io/library/postgres",
		"postgres" + digest:                      "docker.io/library/postgres",
		"docker.io/library/postgres:15" + digest: "docker.io/library/postgres",
		"index.docker.io/library/postgres:15":    "docker.io/library/postgres",
		"shuirong/dokuya:1":                      "docker.io/shuirong/dokuya",
		"ghcr.io/a/b/c:v1.2":                     "ghcr.io/a/b/c",
		"GHCR.io/a/b:TAG":                        "ghcr.io/a/b",
		"10.231.0.1:5000/sampleapp:v1":           "10.231.0.1:5000/sampleapp",
		"10.231.0.1:5000/sampleapp" + digest:     "10.231.0.1:5000/sampleapp",
		"localhost/app:1":                        "localhost/app",
		"localhost:5000/team/app:1":              "localhost:5000/team/app",
	} {
		if got := Repository(image); got != want {
			t.Errorf("Repository(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestFor(t *testing.T) {
	hub := []byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("me:s3cret")) + `"}}}`)
	ghcr := []byte(`{"auths":{"ghcr.io":{"username":"bot","password":"tok"}}}`)
	got, err := For("shuirong/dokuya:1", [][]byte{ghcr, hub})
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := base64.URLEncoding.DecodeString(got)
	var m map[string]string
	_ = json.Unmarshal(dec, &m)
	if m["username"] != "me" || m["password"] != "s3cret" || m["serveraddress"] != "docker.io" {
		t.Errorf("auth = %v", m)
	}
	if got, _ := For("quay.io/x:1", [][]byte{ghcr, hub}); got != "" {
		t.Errorf("unexpected auth for quay.io: %q", got)
	}
	if _, err := For("x:1", [][]byte{[]byte("nope")}); err == nil {
		t.Error("accepted a malformed config")
	}
}
