"""Locating the binaries the local stack runs, with errors that say what to do."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.errors import ToolMissingError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = PROJECT_ROOT / ".tools" / "bin"

_HINTS = {
    "redis-server": "install the Debian package redis-server (scripts/bootstrap.sh redis does it)",
    "toxiproxy-server": (
        "run scripts/bootstrap.sh toxiproxy (builds it with Go) or put toxiproxy-server on PATH"
    ),
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


def shared_data_dir() -> Path | None:
    """../shared/data beside the project, when present (real recordings for tests)."""
    candidate = PROJECT_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None
