"""The host programs the image builder calls, each found or named with the Debian package that
provides it, and one way to run them: captured output, a timeout, and a one-line error."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.errors import ImageBuildError, ToolMissingError

GO_FALLBACK = Path("/usr/local/go/bin/go")


def require_tool(name: str, debian_package: str) -> str:
    """The path of `name` on PATH; ToolMissingError naming the package to install."""
    found = shutil.which(name)
    if found is None:
        raise ToolMissingError(
            f"{name} not found: install the Debian package {debian_package} "
            "(scripts/bootstrap.sh image does it)"
        )
    return found


def go_tool() -> str:
    found = shutil.which("go") or (str(GO_FALLBACK) if GO_FALLBACK.is_file() else None)
    if found is None:
        raise ToolMissingError(
            "go not found: install Go >= 1.22 (https://go.dev/dl) or put it on PATH"
        )
    return found


def run(
    argv: Sequence[str],
    *,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600,
) -> str:
    """stdout of argv; ImageBuildError with `what` and the end of stderr when it fails."""
    try:
        result = subprocess.run(
            list(argv),
            cwd=cwd,
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ImageBuildError(f"{what}: no answer after {timeout_s:.0f} s") from exc
    if result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip())[-400:].replace("\n", " | ")
        raise ImageBuildError(f"{what} failed (exit {result.returncode}): {tail}")
    return result.stdout


def sha256_file(path: Path) -> str:
    """The hex SHA256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
