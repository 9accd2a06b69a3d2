package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kamal-operator/kamal-operator/test/hosts"
)

// Images of the test registry that the overlay puts in place of the samples' Docker Hub ones.
var (
	appImage       = hosts.RegistryAddress + "/sampleapp:v1"
	appImageNext   = hosts.RegistryAddress + "/sampleapp:v2"
	appImageBroken = hosts.RegistryAddress + "/sampleapp:broken"
	postgresImage  = hosts.RegistryAddress + "/postgres:15"
)

// The names the samples use (config/samples).
const (
	sampleDeployment = "dokuya"
	sampleAccessory  = "dokuya-postgres"
	sampleKeySecret  = "deploy-key"
)

// demoHost is one test host as a sample Server.
type demoHost struct {
	Server     string `json:"server"` // web-1
	Name       string `json:"name"`   // h1
	Address    string `json:"address"`
	HostKey    string `json:"hostKey"`
	DockerHost string `json:"dockerHost"`
}

// q quotes s as a YAML (JSON) string.
func q(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// writeOverlay writes bin/demo/overlay: a kustomization on top of config/samples that points the
// Servers at the test hosts (addresses, pinned host keys, the hosts' client key) and the
// Deployment and Accessory at images of the test registry. The sample app (test/apps/sampleapp)
// stands in for dokuya: it listens on port 80 and runs with the command "worker" in the jobs role.
func writeOverlay(p paths, hs []demoHost, clientKey []byte, o upOpts) error {
	if err := os.MkdirAll(p.overlay, 0o755); err != nil {
		return err
	}
	base, err := filepath.Rel(p.overlay, filepath.Join(p.root, "config", "samples"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p.overlay, "ssh-privatekey"), clientKey, 0o600); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by the demo (hack/demo): config/samples on this machine's test hosts.
# Apply it again with: kubectl apply -k %s
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- %s
generatorOptions:
  disableNameSuffixHash: true
secretGenerator:
# The key every test host authorizes for root (test/hosts makes it).
- name: %s
  behavior: replace
  type: kubernetes.io/ssh-auth
  files:
  - ssh-privatekey
patches:
`, p.overlay, base, sampleKeySecret)
	for _, h := range hs {
		fmt.Fprintf(&b, `- target: {group: kamal.operator.dev, kind: Server, name: %s}
  patch: |-
    - {op: replace, path: /spec/address, value: %s}
    - {op: replace, path: /spec/knownHosts, value: [%s]}
`, h.Server, q(h.Address), q(h.HostKey))
	}
	fmt.Fprintf(&b, `- target: {group: kamal.operator.dev, kind: Deployment, name: %s}
  patch: |-
    - {op: replace, path: /spec/image, value: %s}
    - {op: remove, path: /spec/imagePullSecrets}
    - {op: replace, path: /spec/roles/jobs/cmd, value: ["worker"]}
    - {op: replace, path: /spec/proxy/hosts, value: [%s]}
    - {op: replace, path: /spec/proxy/appPort, value: 80}
`, sampleDeployment, q(appImage), q(o.hostName))
	if o.skipAccessory {
		fmt.Fprintf(&b, `    - {op: remove, path: /spec/dependsOn}
# -skip-accessory: no Postgres.
- patch: |-
    $patch: delete
    apiVersion: kamal.operator.dev/v1alpha1
    kind: Accessory
    metadata:
      name: %s
`, sampleAccessory)
	} else {
		fmt.Fprintf(&b, `- target: {group: kamal.operator.dev, kind: Accessory, name: %s}
  patch: |-
    - {op: replace, path: /spec/image, value: %s}
`, sampleAccessory, q(postgresImage))
	}
	return os.WriteFile(filepath.Join(p.overlay, "kustomization.yaml"), []byte(b.String()), 0o644)
}
