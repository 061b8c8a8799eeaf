"""kubectl v1.34.4 (the pinned build) against a kubeconfig, with one-line errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.errors import StackError, ToolMissingError
from harness.tools import KUBERNETES_BIN

KUBECTL = KUBERNETES_BIN / "kubectl"


def kubectl(
    kubeconfig: Path,
    *args: str,
    stdin: str | None = None,
    context: str | None = None,
    timeout_s: float = 120.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    if not KUBECTL.is_file():
        raise ToolMissingError("kubectl not found: run scripts/bootstrap.sh cluster")
    argv = [str(KUBECTL), f"--kubeconfig={kubeconfig}"]
    if context:
        argv.append(f"--context={context}")
    result = subprocess.run(
        [*argv, *args], input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if check and result.returncode != 0:
        raise StackError(f"kubectl {' '.join(args[:3])} failed: {result.stderr.strip()[-400:]}")
    return result
