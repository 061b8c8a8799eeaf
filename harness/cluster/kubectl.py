"""kubectl v1.34.4 (the pinned build) against a kubeconfig, with one-line errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.errors import StackError
from harness.tools import kubectl as kubectl_binary


def kubectl(
    kubeconfig: Path | None,
    *args: str,
    stdin: str | None = None,
    context: str | None = None,
    timeout_s: float = 120.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`kubectl [--kubeconfig F] [--context C] ARGS`; `kubeconfig` None for what needs no
    cluster (`kustomize`). With `check`, a failure is a StackError with kubectl's refusal."""
    argv = [kubectl_binary()]
    if kubeconfig is not None:
        argv.append(f"--kubeconfig={kubeconfig}")
    if context:
        argv.append(f"--context={context}")
    result = subprocess.run(
        [*argv, *args], input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if check and result.returncode != 0:
        raise StackError(f"kubectl {' '.join(args[:3])} failed: {result.stderr.strip()[-400:]}")
    return result
