"""Locating the binaries the local stack runs, with errors that say what to do."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
from pathlib import Path

from harness.errors import ToolMissingError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = PROJECT_ROOT / ".tools" / "bin"
KUBERNETES_VERSION = "v1.34.4"
KUBERNETES_BIN = PROJECT_ROOT / ".tools" / "kubernetes" / KUBERNETES_VERSION / "bin"

_KUBERNETES_HINT = (
    f"run scripts/bootstrap.sh kubernetes (builds Kubernetes {KUBERNETES_VERSION} with Go)"
)
_HINTS = {
    "redis-server": "install the Debian package redis-server (scripts/bootstrap.sh redis does it)",
    "toxiproxy-server": (
        "run scripts/bootstrap.sh toxiproxy (builds it with Go) or put toxiproxy-server on PATH"
    ),
    "etcd": "install the Debian package etcd-server (scripts/bootstrap.sh kubernetes does it)",
    "kube-apiserver": _KUBERNETES_HINT,
    "kubectl": _KUBERNETES_HINT,
    "promtool": "run scripts/bootstrap.sh promtool (builds Prometheus' promtool with Go)",
}


def find_tool(name: str, env_var: str) -> str:
    """The binary named by env_var if set, else on PATH, else in .tools/bin."""
    override = os.environ.get(env_var)
    if override:
        if Path(override).is_file() and os.access(override, os.X_OK):
            return override
        raise ToolMissingError(f"{name} not found at {override} (from ${env_var})")
    found = shutil.which(name) or (str(TOOLS_BIN / name) if (TOOLS_BIN / name).is_file() else None)
    if found is None:
        raise ToolMissingError(f"{name} not found: {_HINTS.get(name, 'install it')}")
    return found


def redis_server() -> str:
    return find_tool("redis-server", "STORMPROOF_REDIS_SERVER")


def toxiproxy_server() -> str:
    return find_tool("toxiproxy-server", "STORMPROOF_TOXIPROXY_SERVER")


def die_with_parent() -> None:
    """For `preexec_fn`: the child gets SIGTERM when the thread that started it ends (with its
    process, or before it), so a killed harness leaves no server behind."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def etcd() -> str:
    return find_tool("etcd", "STORMPROOF_ETCD")


def _pinned(name: str, env_var: str, built: Path) -> str:
    """A pinned build of ours, never another version found on PATH; `env_var` overrides."""
    if os.environ.get(env_var):
        return find_tool(name, env_var)
    if not (built.is_file() and os.access(built, os.X_OK)):
        raise ToolMissingError(f"{name} not found: {_HINTS[name]}")
    return str(built)


def kube_apiserver() -> str:
    """The pinned build (scripts/build_kubernetes.sh)."""
    return _pinned("kube-apiserver", "STORMPROOF_KUBE_APISERVER", KUBERNETES_BIN / "kube-apiserver")


def kubectl() -> str:
    """The pinned build (scripts/build_kubernetes.sh): its kustomize is the one validated."""
    return _pinned("kubectl", "STORMPROOF_KUBECTL", KUBERNETES_BIN / "kubectl")


def promtool() -> str:
    """The pinned build of deploy/monitoring-tools (scripts/bootstrap.sh promtool)."""
    return _pinned("promtool", "STORMPROOF_PROMTOOL", TOOLS_BIN / "promtool")


def shared_data_dir() -> Path | None:
    """../shared/data beside the project, when present (real recordings for tests)."""
    candidate = PROJECT_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None
