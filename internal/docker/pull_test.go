package docker

import "testing"

func TestPullNeeded(t *testing.T) {
	for _, c := range []struct {
		name    string
		pull    Pull
		present bool
		want    bool
	}{
		{"public, on the host: used as it is", Pull{}, true, false},
		{"public, missing: pulled", Pull{}, false, true},
		{"private, on the host, object without credentials: pulled (the registry refuses it)", Pull{Private: true}, true, true},
		{"private, on the host, object with credentials: pulled with them", Pull{Auth: "a", Private: true}, true, true},
		{"credentials, on the host: pulled with them", Pull{Auth: "a"}, true, true},
		{"private, missing: pulled", Pull{Private: true}, false, true},
	} {
		if got := c.pull.Needed(c.present); got != c.want {
			t.Errorf("%s: Needed = %v, want %v", c.name, got, c.want)
		}
	}
}
