package accessory

import (
	"strings"
	"testing"
)

// Accessory container names are as they were (changing them is a later issue); this records
// how. The container is named Spec.ContainerName exactly (the controller fills it from
// spec.containerName, else the Accessory's name; the API holds both to DNS labels of at most
// 63 characters), and its setup container that plus "-setup". No namespace, version or hash
// is added, so the name stays across spec changes (apps reach the accessory by it), and two
// namespaces' accessories of the same name would want the same name on a shared host.
func TestContainerNamesAsToday(t *testing.T) {
	a := pg()
	b := pg()
	b.Namespace, b.Image, b.Env = "other-shop", "postgres:16", []string{"POSTGRES_PASSWORD=x"}
	for _, s := range []*Spec{a, b} {
		opts, err := s.CreateOptions(s.Hash("uid"))
		if err != nil {
			t.Fatal(err)
		}
		if opts.Name != "db" || s.SetupOptions().Name != "db-setup" {
			t.Errorf("%s: container %q, setup %q", s.Namespace, opts.Name, s.SetupOptions().Name)
		}
	}
	long := pg()
	long.ContainerName = strings.Repeat("p", 63)
	opts, err := long.CreateOptions(long.Hash("uid"))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Name != long.ContainerName {
		t.Errorf("container %q", opts.Name)
	}
	// The setup container is never on a network (NetworkMode none), so its 69 characters are
	// no DNS name anyone resolves.
	if setup := long.SetupOptions(); setup.Name != long.ContainerName+"-setup" || len(setup.Name) != 69 || setup.HostConfig.NetworkMode != "none" {
		t.Errorf("setup %q on %q", setup.Name, setup.HostConfig.NetworkMode)
	}
	// A container of the accessory under another name is removed; the one with the name is
	// the current one, whatever its hash.
	p := PlanHost([]Observed{{ID: "1", Name: "db", Hash: "h0", Running: true}, {ID: "2", Name: "db-old", Hash: "h1"}}, "db", "h1")
	if p.Current == nil || p.Current.ID != "1" || p.Action != ActionRecreate || len(p.Remove) != 1 || p.Remove[0].ID != "2" {
		t.Errorf("plan %+v", p)
	}
}
