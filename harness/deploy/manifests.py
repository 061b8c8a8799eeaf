"""Rendering the kustomize overlays and validating what they render, offline.

    render(overlay)           `kubectl kustomize` of deploy/kubernetes/<overlay> (kubectl
                              v1.34.4, the pinned build of scripts/build_kubernetes.sh)
    server_dry_run(...)       `kubectl apply --dry-run=server --validate=strict`: the API
                              server checks every object against its own 1.34 schemas and runs
                              admission, and persists nothing
    validate_deployment(...)  both overlays and the monitoring kustomization, rendered from a
                              copy of deploy/kubernetes (the local overlay's secrets written into
                              the copy, never into the tree), dry-run against a throwaway
                              kube-apiserver with its etcd (harness/kube_apiserver.py)

Unknown fields (strict validation) and wrong types are refused by the server, not by a schema
copy of ours: that is what makes the check the real one.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.cluster.kubectl import kubectl
from harness.deploy.config import DEPLOY_ROOT
from harness.deploy.secrets import write_local_secrets
from harness.errors import ManifestError
from harness.kube_apiserver import KubeApiServer, kube_apiserver

OVERLAYS = ("overlays/local", "overlays/production")
MONITORING = "monitoring"
MONITORING_NAMESPACE = "monitoring"
LOCAL_SECRETS = Path("overlays/local/secrets")


def _kubectl(*args: str, stdin: str | None = None, timeout_s: float = 120) -> tuple[str, str]:
    """kubectl's stdout and stderr (its warnings), or a ManifestError with its refusal."""
    result = kubectl(None, *args, stdin=stdin, timeout_s=timeout_s, check=False)
    if result.returncode != 0:
        shown = [a for i, a in enumerate(args) if "--kubeconfig" not in args[max(0, i - 1) : i + 1]]
        command = " ".join(shown[:3])
        raise ManifestError(f"kubectl {command}: {result.stderr.strip()[-3000:]}")
    return result.stdout, result.stderr


def render(directory: Path) -> str:
    """The YAML stream a kustomization renders."""
    return _kubectl("kustomize", str(directory))[0]


def documents(stream: str) -> list[dict[str, Any]]:
    """The objects of a YAML stream (empty documents skipped)."""
    return [doc for doc in yaml.safe_load_all(stream) if doc]


def server_dry_run(kubeconfig: Path, stream: str) -> str:
    """Every object of `stream` applied with --dry-run=server --validate=strict: the API
    server's answer (one line per object), or a ManifestError with its refusal. A warning is a
    refusal too: the API server warns of what it accepts but would not run as asked (a pod
    that breaks its namespace's Pod Security level, a deprecated field)."""
    out, err = _kubectl(
        "--kubeconfig",
        str(kubeconfig),
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        stdin=stream,
    )
    warnings = [line for line in err.splitlines() if line.strip()]
    if warnings:
        raise ManifestError("the API server warns: " + "; ".join(warnings)[-3000:])
    return out


def apply(kubeconfig: Path, stream: str) -> str:
    """Create or update the objects of `stream` for real (the namespaces a dry run needs)."""
    return _kubectl("--kubeconfig", str(kubeconfig), "apply", "-f", "-", stdin=stream)[0]


def namespaces(stream: str) -> str:
    """The Namespace objects of a rendered stream, as a stream of their own."""
    found = [d for d in documents(stream) if d.get("kind") == "Namespace"]
    return str(yaml.safe_dump_all(found))


@contextmanager
def deployment_copy(root: Path = DEPLOY_ROOT) -> Iterator[Path]:
    """A throwaway copy of deploy/kubernetes with the local overlay's secrets written into it
    (kustomize's secretGenerator reads them), for rendering without touching the tree."""
    with tempfile.TemporaryDirectory(prefix="stormproof-deploy-") as tmp:
        copy = Path(tmp) / "kubernetes"
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns("secrets"))
        write_local_secrets(copy / LOCAL_SECRETS)
        yield copy


@dataclass(frozen=True)
class Validated:
    kustomization: str
    objects: int
    answer: str


def prepare_namespaces(api: KubeApiServer, copy: Path) -> None:
    """Create the deployment's namespace as the local overlay declares it (its Pod Security
    labels included, so that admission judges the pods by them) and `monitoring`: a dry run
    of namespaced objects needs their namespace to exist, and creates none."""
    apply(api.kubeconfig, namespaces(render(copy / OVERLAYS[0])))
    _kubectl("--kubeconfig", str(api.kubeconfig), "create", "namespace", MONITORING_NAMESPACE)


def validate_rendered(api: KubeApiServer, copy: Path) -> list[Validated]:
    """Both overlays and the monitoring kustomization of `copy`, dry-run against `api` (after
    `prepare_namespaces`)."""
    out = []
    for name in (*OVERLAYS, MONITORING):
        stream = render(copy / name)
        answer = server_dry_run(api.kubeconfig, stream)
        out.append(Validated(name, len(documents(stream)), answer))
    return out


def validate_deployment(work_dir: Path, root: Path = DEPLOY_ROOT) -> list[Validated]:
    """Render and validate everything under `root` against a kube-apiserver of our own."""
    with kube_apiserver(work_dir) as api, deployment_copy(root) as copy:
        prepare_namespaces(api, copy)
        return validate_rendered(api, copy)
