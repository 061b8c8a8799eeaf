#!/usr/bin/env bash
# Installs everything stormproof needs, idempotently, on a Debian-like machine:
#   - .venv with the pinned Python dependencies (requirements/lock.txt) and the project itself,
#     whose C extensions need a C compiler and the OpenSSL headers (Debian package libssl-dev,
#     installed when missing)
#   - redis-server (Debian package) when it is not on PATH
#   - toxiproxy-server: the one on PATH, else built with `go install` into .tools/bin
#   - PostgreSQL server binaries (initdb, postgres, pg_ctl; Debian package postgresql) for the
#     journal tests, which run their own throwaway cluster; the system cluster is left stopped
#   - chromium (Debian package) when neither chromium nor chromium-browser is on PATH: the
#     game-day report test renders report.html in a real headless browser
#   - target `kubernetes` (not in `all`; `make test` asks for it): a Kubernetes API server for the
#     lease tests, etcd (Debian package etcd-server; the system instance is left stopped) and
#     kube-apiserver v1.34.4 built from the Go module proxy into .tools/kubernetes
#     (scripts/build_kubernetes.sh; minutes, once), and kubectl of the same version, which
#     renders and validates the manifests of deploy/kubernetes
#   - target `promtool` (not in `all`; `make test` asks for it): Prometheus' promtool, which
#     checks and unit-tests the alert rules of deploy/kubernetes/monitoring, built from the Go
#     module proxy into .tools/bin, pinned by deploy/monitoring-tools/go.mod (minutes, once)
# A second run only checks stamps and PATH, so it takes well under a second.
#   - target `cluster` (not in `all`): the local Kubernetes cluster's Debian packages (containerd,
#     runc, containernetworking-plugins, iptables, conntrack), every Kubernetes binary and CoreDNS
#   - target `podman` (not in `all`): Podman (Debian package) for testcontainers; the harness runs
#     its Docker-compatible service with a configuration of its own (harness/containers/podman.py)
# Usage: scripts/bootstrap.sh [python|redis|toxiproxy|postgres|chromium|kubernetes|promtool|cluster|podman|all]...
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TOOLS_BIN="$ROOT/.tools/bin"
TOXIPROXY_VERSION="v2.12.0"
PROMETHEUS_VERSION="3.16.0"           # the release; its Go module is v0.316.0
PROMETHEUS_MODULE_VERSION="v0.316.0"

die() { echo "stormproof bootstrap: $*" >&2; exit 1; }
log() { echo "stormproof bootstrap: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
  else return 1
  fi
}

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

ensure_python() {
  local stamp="$VENV/.stormproof-stamp" want
  want="$(cat "$ROOT/requirements/lock.txt" "$ROOT/pyproject.toml" "$ROOT/setup.py" "$ROOT/replay/lane/_speedups.c" "$ROOT/replay/exchange/_http_head.c" "$ROOT/replay/exchange/_signed.c" | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ] &&
     compgen -G "$ROOT/replay/lane/_speedups*.so" >/dev/null &&
     compgen -G "$ROOT/replay/exchange/_http_head*.so" >/dev/null &&
     compgen -G "$ROOT/replay/exchange/_signed*.so" >/dev/null; then
    return 0
  fi
  local py
  py="$(find_python)" || die "missing prerequisite: Python >= 3.11 (install python3 >= 3.11 or set PYTHON=/path/to/python3.11)"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv in .venv with $py"
    "$py" -m venv "$VENV" || die "could not create a virtualenv: install the python3-venv package"
  fi
  log "installing pinned Python dependencies (requirements/lock.txt)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements/lock.txt"
  # also builds the compiled parts (setup.py: replay/lane/_speedups.c, replay/exchange/_http_head.c, _signed.c)
  command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 ||
    die "missing prerequisite: a C compiler for the compiled parts in setup.py (install the Debian package gcc)"
  ensure_openssl_headers
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT" ||
    die "could not install the project (building its C extensions needs gcc and the Python headers: python3-dev)"
  echo "$want" > "$stamp"
}

# _signed.c hashes with OpenSSL's SHA-256: its headers and libcrypto.so to link against
ensure_openssl_headers() {
  local cc_cmd
  cc_cmd="$(command -v cc || command -v gcc)"
  echo '#include <openssl/sha.h>' | "$cc_cmd" -E -x c - >/dev/null 2>&1 && return 0
  log "OpenSSL headers missing: installing the Debian package libssl-dev"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libssl-dev >/dev/null 2>&1; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null 2>&1 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libssl-dev >/dev/null 2>&1 ||
      die "missing prerequisite: OpenSSL headers (could not install the Debian package; run 'apt-get install libssl-dev' as root)"
  fi
}

ensure_redis() {
  command -v redis-server >/dev/null 2>&1 && return 0
  log "redis-server not on PATH: installing the Debian package redis-server"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server >/dev/null 2>&1; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null 2>&1 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server >/dev/null 2>&1 ||
      die "missing prerequisite: redis-server (could not install the Debian package; run 'apt-get install redis-server' as root)"
  fi
  # The package may start a system-wide instance; our stacks run their own on free ports.
  as_root service redis-server stop >/dev/null 2>&1 || true
  command -v redis-server >/dev/null 2>&1 || die "missing prerequisite: redis-server is still not on PATH after installing it"
}

ensure_toxiproxy() {
  command -v toxiproxy-server >/dev/null 2>&1 && return 0
  [ -x "$TOOLS_BIN/toxiproxy-server" ] && return 0
  local go_bin
  go_bin="$(command -v go || true)"
  [ -n "$go_bin" ] || { [ -x /usr/local/go/bin/go ] && go_bin=/usr/local/go/bin/go; }
  [ -n "$go_bin" ] || die "missing prerequisite: toxiproxy-server is not on PATH and the Go toolchain ('go') is not installed to build it; install Go >= 1.22 or put toxiproxy-server on PATH"
  log "building toxiproxy-server $TOXIPROXY_VERSION with go install (once)"
  local build
  build="$(mktemp -d)"
  GOBIN="$build" GOFLAGS=-buildvcs=false "$go_bin" install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" >&2 ||
    die "could not build toxiproxy-server with 'go install' (is the Go module proxy reachable?)"
  mkdir -p "$TOOLS_BIN"
  mv "$build/server" "$TOOLS_BIN/toxiproxy-server"
  rm -rf "$build"
}

# The same search as tests/postgres.py: pg_config --bindir, the newest /usr/lib/postgresql/*/bin,
# then initdb's directory on PATH.
find_postgres_bindir() {
  local dir candidates=()
  if command -v pg_config >/dev/null 2>&1; then
    candidates+=("$(pg_config --bindir 2>/dev/null || true)")
  fi
  while IFS= read -r dir; do candidates+=("$dir"); done < <(
    find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V -r)
  if command -v initdb >/dev/null 2>&1; then
    candidates+=("$(dirname "$(readlink -f "$(command -v initdb)")")")
  fi
  for dir in "${candidates[@]}"; do
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && [ -x "$dir/pg_ctl" ] &&
      { echo "$dir"; return 0; }
  done
  return 1
}

ensure_postgres() {
  find_postgres_bindir >/dev/null && return 0
  log "PostgreSQL server not found: installing the Debian package postgresql"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >/dev/null 2>&1; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null 2>&1 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >/dev/null 2>&1 ||
      die "missing prerequisite: PostgreSQL server (could not install the Debian package; run 'apt-get install postgresql' as root)"
  fi
  # The package may start a system-wide cluster; the tests run their own on free ports.
  as_root service postgresql stop >/dev/null 2>&1 || true
  find_postgres_bindir >/dev/null || die "missing prerequisite: PostgreSQL server (initdb, postgres, pg_ctl) still not found after installing the Debian package postgresql"
}

find_chromium() {
  command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null
}

ensure_chromium() {
  find_chromium >/dev/null && return 0
  log "chromium not on PATH: installing the Debian package chromium"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null 2>&1 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 ||
      die "missing prerequisite: chromium (could not install the Debian package; run 'apt-get install chromium' as root)"
  fi
  find_chromium >/dev/null || die "missing prerequisite: chromium is still not on PATH after installing the Debian package chromium"
}

ensure_kubernetes() {
  if ! command -v etcd >/dev/null 2>&1; then
    log "etcd not on PATH: installing the Debian package etcd-server"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server >/dev/null 2>&1; then
      as_root env DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null 2>&1 || true
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server >/dev/null 2>&1 ||
        die "missing prerequisite: etcd (could not install the Debian package; run 'apt-get install etcd-server' as root)"
    fi
    # The package may start a system-wide instance on 2379; our API servers run their own.
    as_root service etcd stop >/dev/null 2>&1 || true
    command -v etcd >/dev/null 2>&1 || die "missing prerequisite: etcd is still not on PATH after installing etcd-server"
  fi
  "$ROOT/scripts/build_kubernetes.sh" kube-apiserver kubectl
}

find_go() {
  command -v go 2>/dev/null || { [ -x /usr/local/go/bin/go ] && echo /usr/local/go/bin/go; }
}

ensure_promtool() {
  local bin="$TOOLS_BIN/promtool"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "version $PROMETHEUS_VERSION "; then
    return 0
  fi
  local go_bin
  go_bin="$(find_go)" || die "missing prerequisite: the Go toolchain ('go' >= 1.26.7) to build promtool $PROMETHEUS_VERSION"
  log "building promtool $PROMETHEUS_VERSION from the Go module proxy (once; a few minutes)"
  local pkg="github.com/prometheus/common/version" ldflags="-s -w"
  ldflags+=" -X $pkg.Version=$PROMETHEUS_VERSION -X $pkg.Revision=$PROMETHEUS_MODULE_VERSION"
  ldflags+=" -X $pkg.Branch=$PROMETHEUS_MODULE_VERSION -X $pkg.BuildUser=stormproof"
  ldflags+=" -X $pkg.BuildDate=19700101-00:00:00"
  mkdir -p "$TOOLS_BIN"
  (cd "$ROOT/deploy/monitoring-tools" && CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" \
    "$go_bin" build -trimpath -ldflags="$ldflags" -o "$bin.partial" \
    github.com/prometheus/prometheus/cmd/promtool) ||
    die "could not build promtool (is the Go module proxy reachable? Go >= 1.26.7?)"
  mv "$bin.partial" "$bin"
}

# The local cluster (harness/cluster): Debian's containerd, runc and CNI plugins, iptables and
# conntrack; every Kubernetes binary and CoreDNS built from the Go module proxy. Installing
# containerd may start its system service: it is stopped, the cluster runs its own.
ensure_podman() {
  command -v podman >/dev/null 2>&1 && return 0
  log "podman not on PATH: installing the Debian package podman (testcontainers' engine here)"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends podman >/dev/null 2>&1; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null 2>&1 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends podman >/dev/null 2>&1 ||
      die "missing prerequisite: podman (could not install the Debian package; run 'apt-get install podman' as root)"
  fi
  command -v podman >/dev/null 2>&1 || die "missing prerequisite: podman is still not on PATH after installing it"
}

ensure_cluster() {
  ensure_kubernetes
  local packages=() binary package
  for pair in containerd:containerd ctr:containerd runc:runc iptables:iptables conntrack:conntrack; do
    binary="${pair%%:*}"; package="${pair##*:}"
    command -v "$binary" >/dev/null 2>&1 || packages+=("$package")
  done
  [ -x /usr/lib/cni/bridge ] || packages+=(containernetworking-plugins)
  if [ ${#packages[@]} -gt 0 ]; then
    log "installing Debian packages for the local cluster: ${packages[*]}"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null 2>&1; then
      as_root env DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null 2>&1 || true
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null 2>&1 ||
        die "missing prerequisite: ${packages[*]} (could not install the Debian packages; run 'apt-get install ${packages[*]}' as root)"
    fi
    as_root service containerd stop >/dev/null 2>&1 || true
  fi
  "$ROOT/scripts/build_kubernetes.sh" kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy
  "$ROOT/scripts/build_coredns.sh"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(all)
for target in "${targets[@]}"; do
  case "$target" in
    python) ensure_python ;;
    redis) ensure_redis ;;
    toxiproxy) ensure_toxiproxy ;;
    postgres) ensure_postgres ;;
    chromium) ensure_chromium ;;
    kubernetes) ensure_kubernetes ;;
    promtool) ensure_promtool ;;
    cluster) ensure_cluster ;;
    podman) ensure_podman ;;
    all) ensure_python; ensure_redis; ensure_toxiproxy; ensure_postgres; ensure_chromium ;;
    *) die "unknown target '$target' (python, redis, toxiproxy, postgres, chromium, kubernetes, promtool, cluster, podman, all)" ;;
  esac
done
