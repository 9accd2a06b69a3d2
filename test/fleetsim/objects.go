package fleetsim

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	kamalv1 "github.com/kamal-operator/kamal-operator/api/v1alpha1"
)

// The objects the simulated-fleet runs (TestSimulatedFleet, make bench-scale) apply: one
// Server per simulated host, labelled FleetLabel, and AppName's Deployment on all of them.
const (
	FleetLabel = "fleet"
	AppName    = "simapp"
)

// AppImage is the app's image at version (v1, v2, …); the simulator pulls any image.
func AppImage(version string) string { return "registry.sim.test/" + AppName + ":" + version }

// ServerObject is the Server of the simulated host name at address:port, its host key pinned
// (hostKey in authorized_keys form) and its SSH key in Secret keySecret.
func ServerObject(namespace, name, address string, port int, hostKey, keySecret string) *kamalv1.Server {
	return &kamalv1.Server{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{FleetLabel: "sim"}},
		Spec: kamalv1.ServerSpec{
			Address: address, Port: int32(port), User: "root",
			SSHKeySecretRef: corev1.LocalObjectReference{Name: keySecret},
			KnownHosts:      []string{hostKey},
		},
	}
}

// AppDeployment is the app at v1: role web on every simulated Server, behind the proxy, in
// batches of maxParallel (such as "25%").
func AppDeployment(namespace, maxParallel string) *kamalv1.Deployment {
	batch := intstr.Parse(maxParallel)
	return &kamalv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: AppName},
		Spec: kamalv1.DeploymentSpec{
			Image: AppImage("v1"),
			Roles: map[string]kamalv1.Role{
				"web": {Servers: kamalv1.ServerSelector{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{FleetLabel: "sim"}}}},
			},
			Proxy:   &kamalv1.Proxy{Hosts: []string{AppName + ".test"}},
			Rollout: kamalv1.Rollout{MaxParallel: &batch},
		},
	}
}
