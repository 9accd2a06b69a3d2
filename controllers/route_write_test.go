package controllers

import (
	"testing"

	"github.com/kamal-operator/kamal-operator/internal/proxy"
)

func TestPlanRouteWrite(t *testing.T) {
	want := proxy.Route{Hosts: []string{"app.test"}, Upstream: "app-web-v2:80", ResponseTimeout: "30s", Owner: "ns/app"}
	same := want
	old := want
	old.Upstream = "app-web-v1:80"
	other := old
	other.ResponseTimeout = "45s"
	for _, c := range []struct {
		name   string
		cur    *proxy.Route
		legacy bool
		want   routeWrite
	}{
		{"none yet", nil, false, routePut},
		{"under its legacy id", nil, true, routePut},
		{"as wanted", &same, false, routeAsIs},
		{"the deploy's switch", &old, false, routeUpstream},
		{"settings changed with the switch", &other, false, routePut},
	} {
		if got := planRouteWrite(c.cur, c.legacy, want); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
