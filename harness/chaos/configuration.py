"""The stack an experiment acts on: Chaos Toolkit hands every activity its `configuration`, and
`stormproof_run_dir` there (or $STORMPROOF_RUN_DIR) names the stack's run directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness.client import StackClient
from harness.runfile import RUN_DIR_ENV, RunDir, RunDirError
from harness.stack import Stack

RUN_DIR_KEY = "stormproof_run_dir"


def run_dir_of(configuration: dict[str, Any] | None) -> RunDir:
    run_dir = (configuration or {}).get(RUN_DIR_KEY) or os.environ.get(RUN_DIR_ENV)
    if not run_dir:
        raise ActivityFailed(
            f"no stack: set configuration {RUN_DIR_KEY!r} or the environment {RUN_DIR_ENV}"
        )
    files = RunDir(Path(run_dir).resolve())
    if not files.exists():
        raise ActivityFailed(f"no stack in {files.path}: run `stormproof stack up` first")
    return files


def client_of(configuration: dict[str, Any] | None) -> StackClient:
    """HTTP to the stack's services and the simulator."""
    try:
        return StackClient.of(run_dir_of(configuration))
    except RunDirError as exc:
        raise ActivityFailed(str(exc)) from None


def stack_of(configuration: dict[str, Any] | None) -> Stack:
    """The stack's processes (the supervisor's state, holds, Redis, Toxiproxy)."""
    return Stack(run_dir_of(configuration).path)


def service_of(client: StackClient, service: str) -> str:
    """`service`, refused when the stack has no such engine service."""
    if not client.has_service(service):
        raise ActivityFailed(f"unknown engine service {service!r}")
    return service
