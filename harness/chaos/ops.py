"""Ops commands a desk would send during an incident: pause, resume, flatten, halt."""

from __future__ import annotations

from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness.chaos.configuration import client_of

__all__ = ["ops_command"]

COMMANDS = ("pause", "resume", "flatten", "halt")


def ops_command(
    command: str, reason: str = "chaos experiment", configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """POST /ops/<command> on the risk service with the stack's ops token."""
    if command not in COMMANDS:
        raise ActivityFailed(f"unknown ops command {command!r}; one of {COMMANDS}")
    code, reply = client_of(configuration).ops(
        "POST", "risk", f"/ops/{command}", body={"reason": reason}
    )
    if code != 202:
        raise ActivityFailed(f"ops {command} refused ({code}): {reply}")
    return {"command": command, "accepted": True}
