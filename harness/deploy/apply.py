"""Apply a rendered overlay to a cluster and wait until every workload is rolled out.

The overlay is rendered by kubectl's own kustomize (`kubectl kustomize`), applied server-side
(the API server owns the merge, as with any GitOps tool), and each Deployment and StatefulSet is
then awaited with `kubectl rollout status`, which reads the same conditions a user would.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from harness.cluster.kubectl import kubectl
from harness.deploy.manifests import documents, render
from harness.errors import ManifestError

FIELD_MANAGER = "stormproof"


@dataclass(frozen=True, kw_only=True)
class Target:
    """Which cluster: a kubeconfig and, optionally, one of its contexts."""

    kubeconfig: Path
    context: str | None = None

    def run(self, *args: str, stdin: str | None = None, timeout_s: float = 120.0) -> str:
        return kubectl(
            self.kubeconfig, *args, stdin=stdin, context=self.context, timeout_s=timeout_s
        ).stdout


def apply(overlay: Path, target: Target, *, rollout_timeout_s: float = 300.0) -> dict[str, float]:
    """Apply the overlay, wait for every Deployment and StatefulSet; return seconds to each
    workload's rollout, from the apply's return."""
    if not (overlay / "kustomization.yaml").is_file():
        raise ManifestError(f"{overlay} is not a kustomize directory (no kustomization.yaml)")
    objects = documents(render(overlay))
    rendered = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    target.run(
        "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts",
        "-f", "-", stdin=rendered, timeout_s=rollout_timeout_s,
    )  # fmt: skip
    applied = time.monotonic()
    timings: dict[str, float] = {}
    for item in objects:
        kind = item["kind"]
        if kind not in ("Deployment", "StatefulSet"):
            continue
        name, namespace = item["metadata"]["name"], item["metadata"].get("namespace", "default")
        target.run(
            "rollout", "status", f"{kind.lower()}/{name}", "-n", namespace,
            f"--timeout={int(rollout_timeout_s)}s", timeout_s=rollout_timeout_s + 30,
        )  # fmt: skip
        timings[f"{kind}/{name}"] = time.monotonic() - applied
    return timings
