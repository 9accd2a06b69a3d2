package proxy

import (
	"testing"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
	"github.com/kamal-operator/kamal-operator/internal/docker"
)

// Every name the proxy uses is reserved, so no accessory can take it first.
func TestProxyNamesAreReserved(t *testing.T) {
	for _, n := range []string{ContainerName, AsideName, FailedName} {
		if !docker.ReservedName(n) {
			t.Errorf("%s is not reserved", n)
		}
	}
}

// Only a container with the proxy's labels is treated as the proxy.
func TestIsProxy(t *testing.T) {
	opts, err := SettingsFor(kamalv1.ServerProxy{}, "kamal-proxy:test").CreateOptions()
	if err != nil {
		t.Fatal(err)
	}
	if !IsProxy(opts.Config.Labels) {
		t.Errorf("the proxy's own labels %v are not the proxy's", opts.Config.Labels)
	}
	for _, labels := range []map[string]string{
		nil,
		{labelProxy: "true"}, // not the controller's
		{kamalv1.LabelManagedBy: kamalv1.ManagerName, kamalv1.LabelNamespace: "shop", kamalv1.LabelAccessory: "kamal-proxy"},
	} {
		if IsProxy(labels) {
			t.Errorf("%v taken for the proxy", labels)
		}
	}
	if err := checkProxy(nil); err == nil {
		t.Error("a container without labels passed as the proxy")
	}
}
