#!/usr/bin/env bash
# Builds pinned Kubernetes binaries from the Go module proxy, once, into
# .tools/kubernetes/<version>/bin/. No registry, no release download: the module graph is pinned
# by deploy/cluster/kubernetes/go.mod and go.sum (k8s.io/kubernetes with its staging modules
# re-pinned to their published tags).
#
#   scripts/build_kubernetes.sh kube-apiserver [kubectl ...]
#
# A binary already built for this version is kept; the first build of kube-apiserver compiles
# most of the shared dependencies and is the long one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="v1.34.4"
MODULE_DIR="$ROOT/deploy/cluster/kubernetes"
OUT="$ROOT/.tools/kubernetes/$VERSION/bin"

log() { printf 'stormproof build_kubernetes: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$#" -gt 0 ] || die "name the binaries to build (kube-apiserver, kubectl, kubelet, ...)"
go_bin="$(command -v go || true)"
[ -n "$go_bin" ] || { [ -x /usr/local/go/bin/go ] && go_bin=/usr/local/go/bin/go; }
[ -n "$go_bin" ] || die "the Go toolchain ('go') is needed to build Kubernetes $VERSION; install Go >= 1.24"

# Without these, every component reports itself as v0.0.0-master.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=34"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

mkdir -p "$OUT"
for binary in "$@"; do
  case "$binary" in
    kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kubectl | kube-proxy) ;;
    *) die "unknown Kubernetes binary '$binary'" ;;
  esac
  [ -x "$OUT/$binary" ] && continue
  log "building $binary $VERSION from the Go module proxy (once; kube-apiserver takes minutes)"
  tmp="$OUT/.$binary.partial"
  (cd "$MODULE_DIR" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false "$go_bin" build -trimpath \
    -ldflags="$ldflags" -o "$tmp" "k8s.io/kubernetes/cmd/$binary") ||
    die "could not build $binary (is the Go module proxy reachable?)"
  mv "$tmp" "$OUT/$binary"
done
