"""The stack's parts as testcontainers of the project's images: Redis (the bus) from
`stormproof.local/redis`, the staging venue (replay + exchange simulator) from the app image
`stormproof.local/stormproof`. Each container shares the host's network and its server binds
127.0.0.1 on the port given (the stack's own rule: loopback only; no published ports, no
bridge). testcontainers' Ryuk reaper is off: its image comes from Docker Hub, and the harness
stops what it starts (`with part:`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONTAINER_RECORDING = "/recording"
"""Where a venue container sees its recording (mounted read-only)."""


def _container(ref: str, docker_host: str) -> Any:
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer

    testcontainers_config.ryuk_disabled = True
    client = {"environment": {"DOCKER_HOST": docker_host}}  # docker.from_env reads it
    return DockerContainer(ref, docker_client_kw=client).with_kwargs(network_mode="host")


def redis_part(ref: str, *, docker_host: str, port: int) -> Any:
    """Redis on 127.0.0.1:`port`, nothing persisted (a test's bus)."""
    return _container(ref, docker_host).with_command(
        ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    )


def venue_part(
    ref: str,
    *,
    docker_host: str,
    recording: Path,
    ws_port: int,
    rest_port: int,
    control_port: int,
    env: dict[str, str],
    speed: str = "1",
    balances: tuple[str, ...] = ("USDT=100000", "BTC=1"),
) -> Any:
    """`replay serve` of a recording (a file or a folder) on loopback ports; `env` carries the
    simulator's key, secret and control token (STORMPROOF_SIM_*)."""
    target = f"{CONTAINER_RECORDING}/{recording.name}"
    command = [
        "replay", "serve", "-r", target, "--speed", speed,
        "--ws-port", str(ws_port), "--rest-port", str(rest_port),
        "--control-port", str(control_port),
    ]  # fmt: skip
    for balance in balances:
        command += ["--balance", balance]
    container = _container(ref, docker_host).with_command(command)
    container = container.with_volume_mapping(str(recording.resolve()), target, "ro")
    for key, value in env.items():
        container = container.with_env(key, value)
    return container
