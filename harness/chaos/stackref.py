"""Finding the stack an experiment acts on, and small HTTP helpers with clear errors."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness.stack import Stack

RUN_DIR_KEY = "stormproof_run_dir"
RUN_DIR_ENV = "STORMPROOF_RUN_DIR"
HOST = "127.0.0.1"


def stack_of(configuration: dict[str, Any] | None) -> Stack:
    run_dir = (configuration or {}).get(RUN_DIR_KEY) or os.environ.get(RUN_DIR_ENV)
    if not run_dir:
        raise ActivityFailed(
            f"no stack: set configuration {RUN_DIR_KEY!r} or the environment {RUN_DIR_ENV}"
        )
    stack = Stack(Path(run_dir))
    if not (stack.run_dir / "ports.json").exists():
        raise ActivityFailed(f"no stack in {stack.run_dir}: run `stormproof stack up` first")
    return stack


def http(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: object = None,
    timeout_s: float = 5.0,
) -> tuple[int, Any]:
    """(status, parsed JSON body or None); status 0 when nothing answered."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read()
            return int(response.status), json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return error.code, raw.decode("utf-8", "replace")[:300]
    except OSError:
        return 0, None


def control_url(stack: Stack) -> str:
    return f"http://{HOST}:{stack.ports['replay_control']}"


def control_token(stack: Stack) -> str:
    return stack.secrets["STORMPROOF_SIM_CONTROL_TOKEN"]


def ops_url(stack: Stack, service: str) -> str:
    ports = stack.ports
    key = f"ops_{service}"
    if key not in ports:
        raise ActivityFailed(f"unknown engine service {service!r}")
    return f"http://{HOST}:{ports[key]}"
