# kamal-operator

IMG ?= kamal-operator:latest
KUBE_VERSION ?= 1.37.2
ETCD_VERSION ?= 3.7.3
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.1

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
KUBE_ASSETS ?= $(LOCALBIN)/k8s/$(KUBE_VERSION)-$(shell go env GOOS)-$(shell go env GOARCH)
export KUBEBUILDER_ASSETS = $(KUBE_ASSETS)

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the API types and markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: verify
verify: manifests generate ## Fail when generated files are stale or code is not gofmt-clean.
	@test -z "$$(gofmt -l api controllers cmd internal test)" || { echo "gofmt needed:"; gofmt -l api controllers cmd internal test; exit 1; }
	@git diff --exit-code -- config api || { echo "generated files are stale: run make manifests generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- config api)" || { echo "untracked generated files:"; git status --porcelain -- config api; exit 1; }

.PHONY: test
test: verify vet unit envtest e2e ## Everything CI runs: generated-file check, vet, unit, envtest and end-to-end suites.

.PHONY: unit
unit: ## Unit tests of pure functions (no servers), the proxy's module in an in-process Caddy on its fixed config, and the ACME client against Pebble on loopback; race detector on.
	go test -race ./api/... ./internal/... ./controllers/... ./test/apps/... ./test/images/... ./test/argocd/... ./test/acme/...
	cd images/kamal-proxy && GOWORK=off GOFLAGS=-mod=readonly go test -race ./...

.PHONY: envtest
envtest: kube-binaries ## Tests against a real kube-apiserver, etcd and kubectl; race detector on.
	go test -race -count=1 ./test/envtest/... -v -timeout 20m

.PHONY: e2e
e2e: kube-binaries ## End-to-end: real hosts (netns + sshd + dockerd), registry, Caddy, control plane. Needs root.
	KAMAL_E2E=1 go test -race -count=1 -p 1 ./test/hosts/... ./test/e2e/... -v -timeout 45m

.PHONY: bench
bench: kube-binaries ## Benchmarks against real hosts (connection setup, API calls, steady state).
	KAMAL_E2E=1 go test -count=1 -run '^$$' -bench 'Connect|Engine' -benchtime 20x ./test/e2e/ -timeout 30m
	KAMAL_E2E=1 go test -count=1 -run '^$$' -bench 'SteadyState|Deployment|PluginBuild' -benchtime 1x ./test/e2e/ -timeout 30m

SCALE_HOSTS ?= 100 1000 5000

.PHONY: bench-scale
bench-scale: kube-binaries ## Scale run on simulated hosts (SCALE_HOSTS="100 1000 5000"; SCALE_IDLE, SCALE_PLOT=docs/images/bench-scale.svg): results in bin/bench-scale, see docs/scale.md.
	go build -o bin/fleetsim ./test/fleetsim/cmd/fleetsim
	go build -o bin/manager ./cmd
	go build -o bin/bench-scale/scalebench ./test/scalebench
	SCALE_HOSTS="$(SCALE_HOSTS)" bin/bench-scale/scalebench

.PHONY: kube-binaries
kube-binaries: ## Build kube-apiserver, kubectl and etcd from their Go modules (cached in bin/k8s).
	KUBE_VERSION=$(KUBE_VERSION) ETCD_VERSION=$(ETCD_VERSION) KUBE_ASSETS_DIR=$(KUBE_ASSETS) hack/build-kube-binaries.sh

##@ Build

.PHONY: build
build: ## Build the manager binary.
	go build -o bin/manager ./cmd

.PHONY: plugin
plugin: ## Build the kubectl plugin as bin/kubectl-kamal (put bin/ on PATH for `kubectl kamal`).
	go build -trimpath -ldflags "-s -w" -o bin/kubectl-kamal ./cmd/kubectl-kamal

.PHONY: run
run: manifests generate ## Run the controller against the cluster in ~/.kube/config.
	go run ./cmd

.PHONY: docker-build
docker-build: ## Build the controller image.
	docker build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the controller image.
	docker push $(IMG)

PROXY_IMG ?= kamal-proxy:caddy-2.11.9

.PHONY: proxy-image-build
proxy-image-build: ## Build the proxy image (Caddy with kamal-operator's module) as PROXY_IMG.
	docker build -f images/kamal-proxy/Dockerfile -t $(PROXY_IMG) images/kamal-proxy

.PHONY: proxy-image-push
proxy-image-push: ## Push the proxy image.
	docker push $(PROXY_IMG)

##@ Deployment

.PHONY: install
install: manifests kustomize ## Install the CRDs into the cluster in ~/.kube/config.
	$(KUSTOMIZE) build config/crd | kubectl apply --server-side -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Remove the CRDs (and every object of them) from the cluster.
	$(KUSTOMIZE) build config/crd | kubectl delete --ignore-not-found -f -

# config/default grants the controller its rules cluster-wide; config/namespaced (edit its list)
# grants them in some namespaces only and makes it watch only those.
DEPLOY_DIR ?= config/default

.PHONY: deploy
deploy: manifests kustomize ## Deploy the controller with image IMG, running proxy image PROXY_IMG on the Servers (from DEPLOY_DIR).
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build $(DEPLOY_DIR) | sed 's|--proxy-image=.*|--proxy-image=$(PROXY_IMG)|' | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Remove the controller.
	$(KUSTOMIZE) build $(DEPLOY_DIR) | kubectl delete --ignore-not-found -f -

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) GOFLAGS= go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $@

.PHONY: kustomize
kustomize: $(KUSTOMIZE)
$(KUSTOMIZE):
	mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) GOFLAGS= go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(LOCALBIN)/kustomize $@

##@ Demo

DEMO_FLAGS ?=

.PHONY: demo
demo: kube-binaries ## Run config/samples on 2 local test hosts with a local control plane and the controller; left running (as root). DEMO_FLAGS=-skip-accessory: no Postgres.
	@mkdir -p bin/demo
	@PROGRESS_PREFIX=demo hack/with-progress.sh "building the demo tool" go build -o bin/demo/kamal-demo ./hack/demo
	@bin/demo/kamal-demo up $(DEMO_FLAGS)

.PHONY: demo-down
demo-down: ## Stop the demo: the controller, the control plane and the test hosts.
	@mkdir -p bin/demo
	@go build -o bin/demo/kamal-demo ./hack/demo
	@bin/demo/kamal-demo down
