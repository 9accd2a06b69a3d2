package metrics

import "testing"

func TestOperation(t *testing.T) {
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/_ping", "GET /_ping"},
		{"HEAD", "/_ping", "HEAD /_ping"},
		{"GET", "/v1.41/version", "GET /version"},
		{"GET", "/v1.47/info", "GET /info"},
		{"GET", "/v1.41/events", "GET /events"},
		{"GET", "/v1.41/containers/json", "GET /containers/json"},
		{"POST", "/v1.41/containers/create", "POST /containers/create"},
		{"POST", "/v1.41/containers/0123456789abcdef/start", "POST /containers/{id}/start"},
		{"POST", "/v1.41/containers/web-1-v2/stop", "POST /containers/{id}/stop"},
		{"GET", "/v1.41/containers/0123456789abcdef/json", "GET /containers/{id}/json"},
		{"DELETE", "/v1.41/containers/0123456789abcdef", "DELETE /containers/{id}"},
		{"PUT", "/v1.41/containers/abc/archive", "PUT /containers/{id}/archive"},
		{"POST", "/v1.41/containers/abc/frobnicate", "POST /containers/{id}/other"},
		{"POST", "/v1.41/containers/abc/x/y", "POST /containers/{id}/other"},
		{"POST", "/v1.41/exec/deadbeef/start", "POST /exec/{id}/start"},
		{"POST", "/v1.41/networks/create", "POST /networks/create"},
		{"POST", "/v1.41/networks/kamal-ns1/connect", "POST /networks/{id}/connect"},
		{"GET", "/v1.41/networks/kamal-ns1", "GET /networks/{id}"},
		{"POST", "/v1.41/images/create", "POST /images/create"},
		{"GET", "/v1.41/images/json", "GET /images/json"},
		{"GET", "/v1.41/images/10.0.0.1:5000/team/app:v2/json", "GET /images/{name}/json"},
		{"GET", "/v1.41/images/app/json", "GET /images/{name}/json"},
		{"DELETE", "/v1.41/images/10.0.0.1:5000/team/app:v2", "DELETE /images/{name}"},
		{"POST", "/v1.41/images/registry.example.com/app/push", "POST /images/{name}/push"},
		{"GET", "/v1.41/distribution/docker.io/library/nginx:1/json", "GET /distribution/{name}/json"},
		{"POST", "/v1.41/build", "POST /build"},
		{"POST", "/v1.41/build/prune", "POST /build/prune"},
		{"GET", "/v1.41/system/df", "GET /system/df"},
		{"GET", "/v1.41/something/else/entirely", "GET /other"},
		{"GET", "/", "GET /"},
		{"PROPFIND", "/v1.41/containers/json", "OTHER /containers/json"},
	} {
		if got := Operation(tc.method, tc.path); got != tc.want {
			t.Errorf("Operation(%s, %s) = %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}

// Operations stay a bounded set whatever the ids and names: random ones map to the same few.
func TestOperationBounded(t *testing.T) {
	seen := map[string]bool{}
	for i := range 500 {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + "/x" + string(rune('0'+i%10))
		for _, p := range []string{"/v1.41/containers/" + id + "/start", "/v1.41/images/" + id + "/json", "/v1.41/images/" + id, "/v1.41/networks/" + id} {
			seen[Operation("POST", p)] = true
		}
	}
	if len(seen) > 6 {
		t.Errorf("%d operations for random ids: %v", len(seen), seen)
	}
}

func TestStatusClass(t *testing.T) {
	for code, want := range map[int]string{200: "2xx", 204: "2xx", 304: "3xx", 404: "4xx", 409: "4xx", 500: "5xx", 0: "other", 600: "other"} {
		if got := statusClass(code); got != want {
			t.Errorf("statusClass(%d) = %q, want %q", code, got, want)
		}
	}
}
