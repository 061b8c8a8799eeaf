"""Venue faults (the exchange simulator) and feed faults (the replay), through the replay's
control API. Venue kinds: latency, error_5xx, timeout, no_answer, reject, maintenance, ban,
rate_limit, partial_fills, user_stream_drop, user_stream_delay. Feed kinds: stall, gap,
duplicate, reorder, malformed, drop, slow_consumer. Also the market itself: pause, resume and
the replay speed (a burst is a speed multiplier)."""

from __future__ import annotations

from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness.chaos.stackref import control_token, control_url, http, stack_of

__all__ = ["clear_faults", "feed_fault", "replay_speed", "venue_fault"]


def _post_fault(body: dict[str, Any], configuration: dict[str, Any] | None) -> dict[str, Any]:
    stack = stack_of(configuration)
    code, reply = http(
        "POST", f"{control_url(stack)}/faults", token=control_token(stack), body=body
    )
    if code != 201:
        raise ActivityFailed(f"fault {body.get('kind')!r} refused ({code}): {reply}")
    result: dict[str, Any] = reply
    return result


def venue_fault(
    kind: str,
    duration_ms: int | None = None,
    endpoint: str | None = None,
    params: dict[str, Any] | None = None,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start a venue fault, e.g. kind="rate_limit", duration_ms=8000,
    params={"retry_after_s": 2}; kind="no_answer", endpoint="POST /api/v3/order"."""
    body: dict[str, Any] = {"kind": kind, **(params or {})}
    if duration_ms is not None:
        body["duration_ms"] = int(duration_ms)
    if endpoint is not None:
        body["endpoint"] = endpoint
    return _post_fault(body, configuration)


def feed_fault(
    kind: str,
    duration_ms: int | None = None,
    stream: str | None = None,
    count: int | None = None,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start a feed fault on the replay, e.g. kind="stall", duration_ms=5000."""
    body: dict[str, Any] = {"kind": kind}
    for key, value in (("duration_ms", duration_ms), ("stream", stream), ("count", count)):
        if value is not None:
            body[key] = value
    return _post_fault(body, configuration)


def clear_faults(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """End every venue and feed fault: a rollback that is always safe."""
    stack = stack_of(configuration)
    code, reply = http("DELETE", f"{control_url(stack)}/faults", token=control_token(stack))
    if code != 200:
        raise ActivityFailed(f"could not clear faults ({code}): {reply}")
    return {"cleared": True}


def replay_speed(speed: float | str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Set the replay speed (a number, or "max"): 10x the speed is 10x the message rate."""
    stack = stack_of(configuration)
    code, reply = http(
        "POST",
        f"{control_url(stack)}/replay/speed",
        token=control_token(stack),
        body={"speed": speed},
    )
    if code != 200:
        raise ActivityFailed(f"could not set the replay speed ({code}): {reply}")
    return {"speed": speed}
