"""Probes: what the steady-state hypotheses and the measurements look at. Each returns a plain
JSON-able value; tolerances in experiments compare against it."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

import redis
from chaoslib.exceptions import ActivityFailed

from harness.chaos.configuration import client_of, service_of, stack_of
from harness.client import StackClient, sample_sum
from harness.truth.ids import family_of
from harness.truth.judge import position_drift as drift_of
from harness.truth.venue import TruthUnavailable, base_changes, venue_balances

__all__ = [
    "all_ready",
    "bus_market_data_age_s",
    "execution_leaders",
    "leader_positions",
    "market_data_age_s",
    "metric_value",
    "position_drift",
    "positions_match_venue",
    "service_ready",
    "trading_state",
    "unattributable_venue_orders",
    "wait_until_ready",
]


def service_ready(service: str, configuration: dict[str, Any] | None = None) -> bool:
    """The service's /readyz answers 200."""
    client = client_of(configuration)
    return client.ready(service_of(client, service))


def all_ready(configuration: dict[str, Any] | None = None) -> bool:
    """Every engine service of the stack answers /readyz with 200."""
    return client_of(configuration).all_ready()


def wait_until_ready(
    timeout_s: float = 30.0,
    stable_s: float = 1.0,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Wait (bounded) until every engine service is ready and has stayed ready for `stable_s`
    (a thawed process answers at once, then catches up on its backlog and may say not ready for a
    moment); how long it took. Ends a method so that the steady state is judged after recovery,
    not during it."""
    started = time.monotonic()
    ready_since: float | None = None
    while True:
        now = time.monotonic()
        if all_ready(configuration):
            ready_since = now if ready_since is None else ready_since
            if now - ready_since >= stable_s:
                return {"ready": True, "waited_s": round(now - started, 3)}
        else:
            ready_since = None
        if now - started > timeout_s:
            return {"ready": False, "waited_s": round(now - started, 3)}
        time.sleep(0.1)


def _status(service: str, configuration: dict[str, Any] | None) -> dict[str, Any]:
    client = client_of(configuration)
    body = client.status(service_of(client, service))
    if body is None:
        raise ActivityFailed(f"{service} /status did not answer")
    return body


def market_data_age_s(
    symbol: str = "BTCUSDT", configuration: dict[str, Any] | None = None
) -> float:
    """Age of the freshest market data the feed service holds for the symbol (any feed), in s;
    a very large number when it has none. The feed's own word: `bus_market_data_age_s` is what
    the bus shows."""
    age_ms = StackClient.freshest_data_age_ms(
        _status("feed", configuration), symbol=symbol, connected_only=False
    )
    return 1e9 if age_ms is None else round(age_ms / 1000, 3)


def bus_market_data_age_s(
    symbol: str = "BTCUSDT", configuration: dict[str, Any] | None = None
) -> float:
    """How old the market on the bus is now, in s: now minus the market time the replay stamped
    on the newest message of md.{venue}.{symbol}, read straight from Redis (the engine's word
    plays no part); a very large number when the stream is empty."""
    stack = stack_of(configuration)
    venue = stack.files.venue()
    client: Any = stack.redis_client(socket_timeout=2)
    try:
        newest = client.xrevrange(f"md.{venue}.{symbol.upper()}", count=10)
    except redis.RedisError as exc:
        raise ActivityFailed(f"redis did not answer: {exc}") from exc
    finally:
        client.close()
    stamps = []
    for entry_id, fields in newest:
        event = re.search(rb'"exchange_ts_ms":(\d+)', fields.get(b"m", b""))
        stamps.append(int(event.group(1)) if event else int(entry_id.split(b"-")[0]))
    if not stamps:
        return 1e9
    return round(max(0, time.time_ns() // 1_000_000 - max(stamps)) / 1000, 3)


def execution_leaders(configuration: dict[str, Any] | None = None) -> int:
    """How many execution instances say they lead: 1 is healthy, 2 is a split brain, 0 is
    nobody sending orders."""
    return list(client_of(configuration).roles().values()).count("leader")


def trading_state(configuration: dict[str, Any] | None = None) -> str:
    """ACTIVE, REDUCING or HALTED, from the risk service."""
    return str(_status("risk", configuration)["trading_state"])


def leader_positions(configuration: dict[str, Any] | None = None) -> dict[str, str] | None:
    """The positions of the execution instance that leads now (what it says), None when no
    instance says it leads (a lone instance leads)."""
    client = client_of(configuration)
    for service in client.executions():
        body = client.status(service)
        if body is not None and body.get("role") == "leader":
            return {str(k): str(v) for k, v in (body.get("positions") or {}).items()}
    return None


def position_drift(configuration: dict[str, Any] | None = None) -> dict[str, str]:
    """Per symbol, the leading execution instance's position minus the venue's balance change
    (ground truth), over the union of both sides' symbols: a position the engine forgot is
    drift. An error when no instance leads."""
    client = client_of(configuration)
    positions = leader_positions(configuration)
    if positions is None:
        raise ActivityFailed("no execution instance leads: no position to compare")
    try:
        change, symbols = venue_balances(client.truth)
    except TruthUnavailable as exc:
        raise ActivityFailed(f"simulator ground truth did not answer: {exc}") from exc
    drift = drift_of(
        venue_change=base_changes(change, symbols),
        symbol_assets=symbols,
        leader_positions={k: Decimal(v) for k, v in positions.items()},
    )
    return {symbol: str(d) for symbol, d in (drift or {}).items()}


def positions_match_venue(
    tolerance_qty: float = 0.0, configuration: dict[str, Any] | None = None
) -> bool:
    """Execution's positions equal the venue's balance changes within tolerance_qty."""
    drift = position_drift(configuration)
    return all(abs(Decimal(d)) <= Decimal(str(tolerance_qty)) for d in drift.values())


def unattributable_venue_orders(configuration: dict[str, Any] | None = None) -> int:
    """Venue orders (ground truth) whose clientOrderId does not follow the engine's documented
    id rule: orders no intent can account for (a resend under a made-up id). The game day's
    judge goes further (over-executed intents, orders of no known intent); a steady-state
    probe has no intent ledger."""
    code, body = client_of(configuration).truth("/truth/orders")
    if code != 200:
        raise ActivityFailed(f"simulator ground truth did not answer ({code})")
    return sum(1 for o in body["orders"] if family_of(o["client_order_id"]) is None)


def metric_value(
    service: str,
    name: str,
    labels: dict[str, str] | None = None,
    configuration: dict[str, Any] | None = None,
) -> float:
    """The value of one Prometheus sample on the service's /metrics (summed over the samples
    whose labels include `labels`); an error when no sample matches."""
    client = client_of(configuration)
    text = client.metrics(service_of(client, service))
    if text is None:
        raise ActivityFailed(f"{service} /metrics did not answer")
    value = sample_sum(text, name, labels)
    if value is None:
        raise ActivityFailed(f"no sample {name}{labels or ''} on {service}")
    return value
