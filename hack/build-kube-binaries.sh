#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from their Go modules into a cached folder that envtest
# reads through KUBEBUILDER_ASSETS. Nothing is downloaded but Go modules; a second run with the
# binaries present does nothing and prints only the folder.
#
# A first build downloads a few hundred MB of Go modules and compiles for many minutes. While it
# runs it says on stderr what it builds and, every $PROGRESS_EVERY seconds (20), how long the
# current step and the whole build have taken: a line at least every 30 s even when a loaded
# machine delays one by several seconds. Stdout is only the folder.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-1.37.2}
ETCD_VERSION=${ETCD_VERSION:-3.7.3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${KUBE_ASSETS_DIR:-$ROOT/bin/k8s/$KUBE_VERSION-$(go env GOOS)-$(go env GOARCH)}

if [[ -x $OUT/kube-apiserver && -x $OUT/kubectl && -x $OUT/etcd ]]; then
  echo "$OUT"
  exit 0
fi

PROGRESS_PREFIX=kube-binaries
# shellcheck source=hack/progress.sh
source "$ROOT/hack/progress.sh"

say "building kube-apiserver, kubectl v$KUBE_VERSION and etcd v$ETCD_VERSION into $OUT" \
  "(first build: Go modules and a long compile; progress every ${PROGRESS_EVERY}s)"
mkdir -p "$OUT"
work=$(mktemp -d)
# The go command's own temporary files go in $work too: a go build stopped by Ctrl-C leaves its
# work folder (GBs for kube-apiserver) behind, and the exit trap removes $work.
mkdir "$work/tmp"
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0 GOTMPDIR=$work/tmp

# k8s.io/kubernetes points its staging repos at ./staging, which its module zip does not
# contain: replace each with the published tag of the same release.
minor=${KUBE_VERSION#*.}; minor=${minor%%.*}
mkdir -p "$work/kube" && cd "$work/kube"
go mod init kubebins.local >/dev/null 2>&1
go mod edit -go=1.26 -require=k8s.io/kubernetes@v$KUBE_VERSION
step "downloading the Go module k8s.io/kubernetes v$KUBE_VERSION" \
  go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" >"$work/kube.json" ||
  { cat "$work/kube.json" >&2; exit 1; }
kdir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' "$work/kube.json")
for repo in $(sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$kdir/go.mod"); do
  go mod edit -replace="$repo=$repo@v0.$minor.${KUBE_VERSION##*.}"
done
step "downloading the Go modules of kube-apiserver and kubectl v$KUBE_VERSION" \
  go get "k8s.io/kubernetes/cmd/kube-apiserver@v$KUBE_VERSION" "k8s.io/kubernetes/cmd/kubectl@v$KUBE_VERSION" >/dev/null
ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ld="$ld -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
step "compiling kube-apiserver v$KUBE_VERSION" \
  go build -trimpath -ldflags "$ld" -o "$OUT/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
step "compiling kubectl v$KUBE_VERSION" \
  go build -trimpath -ldflags "$ld" -o "$OUT/kubectl" k8s.io/kubernetes/cmd/kubectl

# etcd's own go.mod replaces its sibling modules with local paths; a scratch module resolves
# them to the same release.
mkdir -p "$work/etcd" && cd "$work/etcd"
go mod init etcdbins.local >/dev/null 2>&1
go mod edit -go=1.26
for m in api/v3 client/pkg/v3 client/v3 pkg/v3 server/v3; do
  go mod edit -require="go.etcd.io/etcd/$m@v$ETCD_VERSION"
done
step "downloading the Go modules of etcd v$ETCD_VERSION" \
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null
step "compiling etcd v$ETCD_VERSION" \
  go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3

dur d $(($(now) - start))
say "built kube-apiserver, kubectl and etcd in $d"
echo "$OUT"
