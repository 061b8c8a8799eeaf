"""Where the stack under load listens and the tokens to reach it, read from its run directory
(ports.json, secrets.env, engine.toml). Standard library only: locustfiles import this, and they
must not import the project's asyncio code (Locust monkey-patches the process with gevent)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


class StackInfoError(RuntimeError):
    pass


@dataclass(frozen=True)
class StackInfo:
    run_dir: Path
    ports: dict[str, int]
    secrets: dict[str, str]
    symbols: list[str]

    def url(self, port_key: str) -> str:
        return f"http://{HOST}:{self.ports[port_key]}"

    @property
    def intake_url(self) -> str:
        return self.url("ops_strategy")

    @property
    def control_url(self) -> str:
        return self.url("replay_control")

    @property
    def intake_token(self) -> str:
        return self.secrets.get("STORMPROOF_INTAKE_TOKEN", "")

    @property
    def control_token(self) -> str:
        return self.secrets.get("STORMPROOF_SIM_CONTROL_TOKEN", "")

    def ops_services(self) -> list[str]:
        return sorted(k[4:] for k in self.ports if k.startswith("ops_"))


def client_order_id(intent_id: str, child: int = 0) -> str:
    """The engine's deterministic clientOrderId for an intent's child order: a documented
    contract (engine/core/ids.py), restated here because locustfiles import nothing of the
    project (tests/architecture); tests/unit/test_load_stats.py checks the two agree."""
    digest = hashlib.sha256(intent_id.encode()).digest()
    return f"sp{base64.b32encode(digest).decode().rstrip('=').lower()[:26]}-{child}"


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = value
    return out


def load_stack_info(run_dir: str | os.PathLike[str] | None = None) -> StackInfo:
    raw = run_dir or os.environ.get("STORMPROOF_RUN_DIR")
    if not raw:
        raise StackInfoError("set STORMPROOF_RUN_DIR to the run directory of a running stack")
    path = Path(raw)
    try:
        ports = json.loads((path / "ports.json").read_text())
        secrets = _env_file(path / "secrets.env")
        engine = tomllib.loads((path / "engine.toml").read_text())
    except (OSError, ValueError) as exc:
        raise StackInfoError(f"no readable stack in {path}: {exc}") from exc
    return StackInfo(
        run_dir=path, ports=ports, secrets=secrets, symbols=list(engine["venue"]["symbols"])
    )
