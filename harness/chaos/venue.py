"""Venue faults (the exchange simulator) and feed faults (the replay), through the replay's
control API. Venue kinds: latency, error_5xx, timeout, no_answer, reject, maintenance, ban,
rate_limit, partial_fills, user_stream_drop, user_stream_delay, reject_reduce_only (futures).
Futures: the derived mark price and funding (move_mark_price), and waiting for a position at
the venue (wait_for_venue_position). Feed kinds: stall, gap,
duplicate, reorder, malformed, drop, slow_consumer. Also the market itself: pause, resume and
the replay speed (a burst is a speed multiplier), and seeking to where the recording's market
falls (a flash crash replayed as recorded)."""

from __future__ import annotations

import time
from typing import Any

from chaoslib.exceptions import ActivityFailed

from harness.chaos.configuration import client_of

__all__ = [
    "clear_faults",
    "feed_fault",
    "move_mark_price",
    "replay_seek_to_drop",
    "replay_speed",
    "venue_fault",
    "wait_for_venue_position",
]


def _post_fault(body: dict[str, Any], configuration: dict[str, Any] | None) -> dict[str, Any]:
    client = client_of(configuration)
    code, reply = client.control("POST", "/faults", body=body)
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
    client = client_of(configuration)
    code, reply = client.control("DELETE", "/faults")
    if code != 200:
        raise ActivityFailed(f"could not clear faults ({code}): {reply}")
    return {"cleared": True}


def move_mark_price(
    mark_shift: float | None = None,
    funding_rate: float | None = None,
    premium: float | None = None,
    funding_interval_ms: int | None = None,
    back_to_formula: bool = False,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Futures: move the replay's derived mark price (docs/futures.md): mark_shift=-0.06 puts
    the mark 6% under the last price (a liquidation cascade, or a mark/last divergence),
    funding_rate=0.003 is a funding spike, funding_interval_ms=3000 compresses the funding
    schedule so that a game day sees several funding times; back_to_formula=True undoes the
    shift and the rate (a rollback; the interval stays)."""
    body: dict[str, Any] = {"mark_shift": 0.0, "funding_rate": None} if back_to_formula else {}
    for key, value in (
        ("mark_shift", mark_shift),
        ("funding_rate", funding_rate),
        ("premium", premium),
    ):
        if value is not None:
            body[key] = float(value)
    if funding_interval_ms is not None:
        body["funding_interval_ms"] = int(funding_interval_ms)
    if not body:
        raise ActivityFailed(
            "move_mark_price needs mark_shift, funding_rate, premium, funding_interval_ms or"
            " back_to_formula"
        )
    client = client_of(configuration)
    code, reply = client.control("POST", "/replay/mark-price", body=body)
    if code != 200:
        raise ActivityFailed(f"could not move the mark price ({code}): {reply}")
    result: dict[str, Any] = reply
    return result


def wait_for_venue_position(
    min_qty: float,
    timeout_s: float = 30.0,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Futures: return once the venue holds a position of at least `min_qty` (its ground truth,
    /truth/positions), with that position and its liquidation distance; fail after timeout_s
    (the experiment's setup did not happen)."""
    client = client_of(configuration)
    deadline = time.monotonic() + timeout_s
    while True:
        code, body = client.truth("/truth/positions", timeout_s=2)
        if code == 200 and isinstance(body, dict):
            for account in body.get("accounts", []):
                for position in account.get("positions", []):
                    if abs(float(position["qty"])) >= min_qty:
                        held: dict[str, Any] = position
                        return held
        if time.monotonic() > deadline:
            raise ActivityFailed(f"no venue position of {min_qty} after {timeout_s} s ({code})")
        time.sleep(0.1)


def replay_speed(speed: float | str, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Set the replay speed (a number, or "max"): 10x the speed is 10x the message rate."""
    client = client_of(configuration)
    code, reply = client.control(
        "POST",
        "/replay/speed",
        body={"speed": speed},
    )
    if code != 200:
        raise ActivityFailed(f"could not set the replay speed ({code}): {reply}")
    return {"speed": speed}


def replay_seek_to_drop(
    min_drop_pct: float = 2.0,
    within_s: float = 10.0,
    lead_s: float = 3.0,
    symbol: str | None = None,
    seek_timeout_s: float = 300.0,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Seek the replay to `lead_s` before the first fall of `min_drop_pct` within `within_s` in
    the recording's trades: the crash is then replayed as recorded. Fails when the recording
    has no such fall (a calm recording cannot stage a flash crash). The scan and the seek take
    time in proportion to the recording: `seek_timeout_s` bounds each."""
    client = client_of(configuration)
    body: dict[str, Any] = {"min_drop_pct": min_drop_pct, "within_s": within_s, "lead_s": lead_s}
    if symbol:
        body["symbol"] = symbol
    code, reply = client.control(
        "POST",
        "/replay/seek-to-drop",
        body=body,
        timeout_s=seek_timeout_s,  # the replay scans the recording first: a day-long file
    )
    if code != 200:
        raise ActivityFailed(f"could not seek to a market drop ({code}): {reply}")
    result: dict[str, Any] = reply
    # the replay rebuilds the market up to the target before it serves again: return once it
    # does, so that the crash comes `lead_s` of market after this action, at any speed
    deadline = time.monotonic() + seek_timeout_s
    while True:
        code, status = client.control("GET", "/status")
        if code == 200 and not status.get("seeking"):
            result["position_recv_ns"] = status.get("position_recv_ns")
            return result
        if time.monotonic() > deadline:
            raise ActivityFailed(f"the replay was still seeking after {seek_timeout_s} s")
        time.sleep(0.1)
