#!/usr/bin/env bash
# Builds CoreDNS from the Go module proxy, once, into .tools/coredns/<version>/coredns: the local
# cluster's DNS (harness/cluster). `go install module@version` uses CoreDNS's own go.mod and
# go.sum, so the build is pinned by the version alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="v1.12.4"
OUT="$ROOT/.tools/coredns/$VERSION"

[ -x "$OUT/coredns" ] && exit 0
go_bin="$(command -v go || true)"
[ -n "$go_bin" ] || { [ -x /usr/local/go/bin/go ] && go_bin=/usr/local/go/bin/go; }
[ -n "$go_bin" ] || { echo "stormproof build_coredns: the Go toolchain ('go') is needed to build CoreDNS $VERSION" >&2; exit 1; }
echo "stormproof build_coredns: building coredns $VERSION from the Go module proxy (once; a minute or two)" >&2
mkdir -p "$OUT"
GOBIN="$OUT/.partial" CGO_ENABLED=0 GOFLAGS=-buildvcs=false "$go_bin" install -trimpath -ldflags="-s -w" \
  "github.com/coredns/coredns@$VERSION" ||
  { echo "stormproof build_coredns: could not build coredns (is the Go module proxy reachable?)" >&2; exit 1; }
mv "$OUT/.partial/coredns" "$OUT/coredns"
rmdir "$OUT/.partial"
