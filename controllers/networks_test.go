package controllers

import (
	"reflect"
	"strings"
	"testing"
)

func names(cs []hostContainer) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// A host as an upgrade finds it, step by step: every container on the shared network, then
// connected to its namespace's, then (with the proxy there too) taken off the shared one.
func TestPlanNetworksMovesContainersWithoutRecreatingThem(t *testing.T) {
	app := hostContainer{ID: "1", Name: "shop-web-v1", Namespace: "shop", Networks: []string{"kamal"}}
	db := hostContainer{ID: "2", Name: "db", Namespace: "shop", Accessory: true, Networks: []string{"kamal"}}
	proxyOn := []string{"kamal"}

	p := planNetworks([]hostContainer{app, db}, nil, proxyOn)
	if !reflect.DeepEqual(p.Ensure, []string{"shop"}) || !reflect.DeepEqual(names(p.Connect), []string{"shop-web-v1", "db"}) ||
		len(p.Disconnect)+len(p.AttachProxy)+len(p.Collect) != 0 {
		t.Fatalf("first pass: %+v", p)
	}

	// Connected, the proxy not yet: nothing leaves the shared network, where the proxy still
	// reaches the app.
	app.Networks, db.Networks = []string{"kamal", "kamal-shop"}, []string{"kamal", "kamal-shop"}
	nets := []nsNetwork{{Name: "kamal-shop", Namespace: "shop"}}
	p = planNetworks([]hostContainer{app, db}, nets, proxyOn)
	if !reflect.DeepEqual(p.AttachProxy, []string{"kamal-shop"}) || len(p.Disconnect)+len(p.Connect)+len(p.Ensure) != 0 {
		t.Fatalf("second pass: %+v", p)
	}

	proxyOn = []string{"kamal", "kamal-shop"}
	p = planNetworks([]hostContainer{app, db}, nets, proxyOn)
	if !reflect.DeepEqual(names(p.Disconnect), []string{"shop-web-v1", "db"}) || len(p.Connect)+len(p.AttachProxy) != 0 {
		t.Fatalf("third pass: %+v", p)
	}

	app.Networks, db.Networks = []string{"kamal-shop"}, []string{"kamal-shop"}
	if p = planNetworks([]hostContainer{app, db}, nets, proxyOn); !p.empty() {
		t.Fatalf("moved: %+v", p)
	}
}

// A namespace leaves the shared network only when all of it has its own: an app connected
// before its accessory must still reach it by name on the shared one. Other namespaces go on.
func TestPlanNetworksWaitsForTheWholeNamespace(t *testing.T) {
	cs := []hostContainer{
		{ID: "1", Name: "shop-web-v1", Namespace: "shop", Networks: []string{"kamal", "kamal-shop"}},
		{ID: "2", Name: "db", Namespace: "shop", Accessory: true, Networks: []string{"kamal"}},
		{ID: "3", Name: "blog-web-v1", Namespace: "blog", Networks: []string{"kamal", "kamal-blog"}},
	}
	nets := []nsNetwork{{Name: "kamal-blog", Namespace: "blog"}, {Name: "kamal-shop", Namespace: "shop"}}
	p := planNetworks(cs, nets, []string{"kamal", "kamal-blog", "kamal-shop"})
	if !reflect.DeepEqual(names(p.Connect), []string{"db"}) || !reflect.DeepEqual(names(p.Disconnect), []string{"blog-web-v1"}) || len(p.Ensure) != 0 {
		t.Errorf("plan %+v", p)
	}
}

// Without a proxy on the host nothing waits for it, and nothing attaches it.
func TestPlanNetworksWithoutAProxy(t *testing.T) {
	cs := []hostContainer{{ID: "1", Name: "jobs-worker-v1", Namespace: "shop", Networks: []string{"kamal", "kamal-shop"}}}
	p := planNetworks(cs, []nsNetwork{{Name: "kamal-shop", Namespace: "shop"}}, nil)
	if !reflect.DeepEqual(names(p.Disconnect), []string{"jobs-worker-v1"}) || len(p.AttachProxy) != 0 {
		t.Errorf("plan %+v", p)
	}
}

// A namespace network with no container of its namespace left (stopped ones count) goes, and
// the proxy is not attached to it first; a network whose labels name another namespace than its
// name is not the controller's to touch.
func TestPlanNetworksCollectsEmptyNetworks(t *testing.T) {
	cs := []hostContainer{{ID: "1", Name: "shop-web-v1", Namespace: "shop", Networks: []string{"kamal-shop"}}}
	nets := []nsNetwork{
		{Name: "kamal-blog", Namespace: "blog"},
		{Name: "kamal-shop", Namespace: "shop"},
		{Name: "kamal-wiki", Namespace: "shop"},
		{Name: "kamal-old", Namespace: "old"},
	}
	p := planNetworks(cs, nets, []string{"kamal", "kamal-shop"})
	if !reflect.DeepEqual(p.Collect, []string{"blog", "old"}) || len(p.AttachProxy) != 0 || len(p.Connect)+len(p.Disconnect) != 0 {
		t.Errorf("plan %+v", p)
	}
}

// Containers on other networks only (a setup container on none, one a person attached
// elsewhere) are not moved.
func TestPlanNetworksLeavesOtherNetworksAlone(t *testing.T) {
	cs := []hostContainer{
		{ID: "1", Name: "kamal-setup-db-1a2b3c4d", Namespace: "shop", Networks: []string{"none"}},
		{ID: "2", Name: "shop-web-v1", Namespace: "shop", Networks: []string{"bridge", "kamal-shop"}},
	}
	p := planNetworks(cs, []nsNetwork{{Name: "kamal-shop", Namespace: "shop"}}, []string{"kamal", "kamal-shop"})
	if !p.empty() {
		t.Errorf("plan %+v", p)
	}
}

func TestReservedNameMessage(t *testing.T) {
	if msg := reservedNameMessage("kamal-proxy"); !strings.Contains(msg, "reserved") || !strings.Contains(msg, "spec.containerName") {
		t.Errorf("message %q", msg)
	}
}
