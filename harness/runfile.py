"""The run directory of a stack: the one contract between the harness that writes it and every
reader (the supervisor, Chaos Toolkit probes, the game-day runner, locustfiles).

    ports.json      name -> loopback port: every server of the stack, its proxies and each
                    engine service's ops port (`ops_<service>`, `ops_execution-b` for a standby)
    secrets.env     KEY=value lines, mode 0600: API key and secret, ops, control and intake
                    tokens, the Redis users' passwords, the journal DSN
    engine.toml     the engine's config (engine-b.toml: a standby execution instance's), written
                    from `engine.config` structs by `engine.config.dump_config`
    stack.json      the processes, for the supervisor (`harness.supervisor.StackSpec`)
    state.json      the supervisor's picture of every process; events.jsonl what happened to it
    supervisor.pid  the supervisor daemon

Everything listens on 127.0.0.1. Standard library only (and `harness.errors`): locustfiles read
their stack through this module, and they must not import the project's asyncio code (Locust
monkey-patches the process with gevent); tests/architecture holds it to that.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import StackNotRunningError

HOST = "127.0.0.1"
RUN_DIR_ENV = "STORMPROOF_RUN_DIR"

PORTS = "ports.json"
SECRETS = "secrets.env"
ENGINE_CONFIG = "engine.toml"
STANDBY_ENGINE_CONFIG = "engine-b.toml"
STACK_SPEC = "stack.json"
STATE = "state.json"
EVENTS = "events.jsonl"
SUPERVISOR_PID = "supervisor.pid"

OPS_PREFIX = "ops_"
"""ports.json names an engine service's ops port `ops_<service>`."""

CONTROL_TOKEN = "STORMPROOF_SIM_CONTROL_TOKEN"
INTAKE_TOKEN = "STORMPROOF_INTAKE_TOKEN"


class RunDirError(StackNotRunningError):
    """The run directory holds no readable stack."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, blank lines and `#` comments skipped (secrets are kept out of stack.json
    and out of argv); none when the file does not exist."""
    if not path.exists():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = value
    return out


def _write_private(path: Path, text: str) -> None:
    """Created 0600 before anything is written into it."""
    path.touch(mode=0o600)
    os.chmod(path, 0o600)
    path.write_text(text)


@dataclass(frozen=True)
class RunDir:
    """Where each file of a stack's run directory is, and how it is written and read."""

    path: Path

    @classmethod
    def from_environment(cls, run_dir: str | os.PathLike[str] | None = None) -> RunDir:
        """`run_dir`, else $STORMPROOF_RUN_DIR."""
        raw = run_dir or os.environ.get(RUN_DIR_ENV)
        if not raw:
            raise RunDirError(f"set {RUN_DIR_ENV} to the run directory of a running stack")
        return cls(Path(raw))

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return self.file(PORTS).exists()

    # --- writing ------------------------------------------------------------------------------

    def write_ports(self, ports: Mapping[str, int]) -> None:
        self.file(PORTS).write_text(json.dumps(dict(ports), indent=2))

    def write_secrets(self, values: Mapping[str, str]) -> None:
        _write_private(self.file(SECRETS), "".join(f"{k}={v}\n" for k, v in values.items()))

    def write_engine_config(self, toml: bytes, *, standby: bool = False) -> Path:
        path = self.file(STANDBY_ENGINE_CONFIG if standby else ENGINE_CONFIG)
        path.write_bytes(toml)
        return path

    def write_private(self, path: Path, text: str) -> None:
        """A file of secrets (or of what is derived from them) inside the run directory."""
        _write_private(path, text)

    # --- reading ------------------------------------------------------------------------------

    def ports(self) -> dict[str, int]:
        try:
            data: dict[str, int] = json.loads(self.file(PORTS).read_text())
        except (OSError, ValueError) as exc:
            raise RunDirError(f"no stack in {self.path}: {exc}") from None
        return data

    def secrets(self) -> dict[str, str]:
        try:
            return read_env_file(self.file(SECRETS))
        except OSError as exc:
            raise RunDirError(f"no stack in {self.path}: {exc}") from None

    def engine_config(self) -> dict[str, Any]:
        """engine.toml as TOML tables (readers that may not import the engine's config)."""
        import tomllib

        try:
            data: dict[str, Any] = tomllib.loads(self.file(ENGINE_CONFIG).read_text())
        except (OSError, ValueError) as exc:
            raise RunDirError(f"no stack in {self.path}: {exc}") from None
        return data

    def venue(self) -> str:
        return str(self.engine_config()["venue"]["name"])

    def symbols(self) -> list[str]:
        return [str(s) for s in self.engine_config()["venue"]["symbols"]]


@dataclass(frozen=True)
class Endpoints:
    """The URLs and tokens of a stack, from its ports.json and secrets.env."""

    run_dir: RunDir
    ports: dict[str, int]
    secrets: dict[str, str]

    @classmethod
    def read(cls, run_dir: RunDir) -> Endpoints:
        return cls(run_dir=run_dir, ports=run_dir.ports(), secrets=run_dir.secrets())

    def url(self, port_key: str) -> str:
        return f"http://{HOST}:{self.ports[port_key]}"

    def ops_services(self) -> list[str]:
        """Every engine service with an ops port: feed, strategy, ... (or `all`'s), execution-b."""
        return sorted(k[len(OPS_PREFIX) :] for k in self.ports if k.startswith(OPS_PREFIX))

    def has_service(self, service: str) -> bool:
        return f"{OPS_PREFIX}{service}" in self.ports

    def ops_url(self, service: str) -> str:
        return self.url(f"{OPS_PREFIX}{service}")

    @property
    def control_url(self) -> str:
        return self.url("replay_control")

    @property
    def intake_url(self) -> str:
        """The strategy service's ops server takes order intents (`POST /intents`)."""
        return self.ops_url("strategy")

    @property
    def control_token(self) -> str:
        return self.secrets.get(CONTROL_TOKEN, "")

    @property
    def intake_token(self) -> str:
        return self.secrets.get(INTAKE_TOKEN, "")
