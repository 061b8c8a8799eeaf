"""What the harness sees of the engine during a scenario: the sampler's timeline (readiness,
roles, trading state), the experiment's activity timestamps, the engine's journal and logs.
Pure functions of those inputs.

Two kinds of figures come from here, and the report keeps them apart:

The engine's reactions, which only the engine can show (judged as they are):
    time_to_detect_s       fault start -> the first sign the engine saw it: a service not ready,
                           a process exit, or an engine warning/error log line
    time_to_halt_s         fault start -> risk stops new entries: a trading state other than
                           ACTIVE, or entries blocked (degraded bus, stale market data)
    time_to_failover_s     fault start -> another execution instance than the one leading
                           before the fault leads and is ready (an active/standby pair only)
    rto_s                  fault start -> every engine service ready again *and* the venue has
                           received a new order after that (the venue's count: trading with state
                           restored); None when no service went down; when the stack had not
                           recovered by the end of the window, a lower bound (censored: "at least
                           the window")
    orders_stuck           journal orders still non-terminal at the end that are not resting
                           limits (SUBMITTING, UNKNOWN, PENDING: what recovery failed to resolve),
                           among those created over 5 s (IN_FLIGHT_GRACE_NS) before the end

"Engine says" (`engine_says`): the engine's own account of what the judge measures from ground
truth (`harness.truth.judge`), shown beside the truth and never judged:
    orders_lost            journal orders never sent (PENDING with no send time)
    time_to_switch_feed_s  fault start -> the feed service's first `feed_switched` log line
    max_market_data_age_s  the feed service's /status data age, worst sample
    time_to_flatten_s      flatten request -> execution's /status positions all within tolerance
    slippage_bps           journal fills against the engine's own reference price

Windows (all wall-clock ns):
    baseline  [baseline_start, fault_start)   the steady market before the experiment
    fault     [fault_start, end)              the method, the rollbacks and the settle time
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.core.messages import Fill, Side
from engine.core.orders import OrderRecord, OrderState

IN_FLIGHT_GRACE_NS = 5_000_000_000
"""An order younger than this at the end is in flight (the strategy trades on), not stuck."""


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One look at the stack by the sampler."""

    ts_ns: int
    ready: dict[str, bool]
    market_data_age_s: float | None
    trading_state: str | None
    positions: dict[str, float]
    venue_orders: int | None
    tick_to_order_ms: float | None = None
    entries_blocked: bool | None = None
    """Risk would deny any new entry now (trading state, degraded bus, stale data)."""
    roles: dict[str, str] = field(default_factory=dict)
    """Execution instance -> "leader" or "standby" (an answering instance only)."""
    venue_positions: dict[str, Decimal] | None = None
    """Ground truth: spot, each traded base asset's balance change at the venue; futures, each
    symbol's signed position at the venue (absent: flat)."""
    liquidation_distance_pct: float | None = None
    """Futures ground truth: how far the venue's mark is from the nearest liquidation price of
    our positions, in percent (None: no position, or a spot venue)."""


@dataclass(frozen=True, kw_only=True)
class Windows:
    baseline_start_ns: int
    fault_start_ns: int
    fault_end_ns: int
    end_ns: int
    intents_end_ns: int | None = None
    """Intents submitted from here on are not judged for loss in this scenario: the drain's
    cut. The engine's strategies keep trading while the harness waits for the last outcomes,
    and an intent sent a moment before the final read has had no chance to reach the venue.
    None: end_ns."""


@dataclass(kw_only=True)
class Observations:
    samples: list[Sample]
    activities: list[dict[str, Any]]
    orders: list[OrderRecord]
    fills: list[Fill]
    log_events: list[dict[str, Any]] = field(default_factory=list)
    """Engine log records (parsed JSON) with a `ts_ns` added."""


def _seconds(ns: int | None, start_ns: int) -> float | None:
    return None if ns is None else round(max(0, ns - start_ns) / 1e9, 3)


def first(samples: Iterable[Sample], after_ns: int, predicate: Any) -> int | None:
    for sample in samples:
        if sample.ts_ns >= after_ns and predicate(sample):
            return sample.ts_ns
    return None


def time_to_detect_ns(obs: Observations, start_ns: int) -> int | None:
    candidates = []
    down = first(obs.samples, start_ns, lambda s: not all(s.ready.values()))
    if down is not None:
        candidates.append(down)
    for event in obs.log_events:
        if event["ts_ns"] >= start_ns and event.get("level") in ("warning", "error", "critical"):
            candidates.append(event["ts_ns"])
            break
    return min(candidates) if candidates else None


def rto_ns(obs: Observations, start_ns: int) -> int | None:
    """Fault start to ready and trading again; None when nothing went down or it has not
    recovered by the last sample (see `rto_lower_bound_ns`)."""
    went_down = first(obs.samples, start_ns, lambda s: not all(s.ready.values()))
    if went_down is None:
        return None
    back = first(obs.samples, went_down, lambda s: bool(s.ready) and all(s.ready.values()))
    if back is None:
        return None
    orders_then = next(s.venue_orders for s in obs.samples if s.ts_ns >= back)
    trading = first(
        obs.samples,
        back,
        lambda s: (
            s.venue_orders is not None and orders_then is not None and s.venue_orders > orders_then
        ),
    )
    return None if trading is None else trading - start_ns


def rto_lower_bound_ns(obs: Observations, start_ns: int) -> int | None:
    """When something went down and had not recovered by the last sample: RTO is at least this
    (the window's length); None otherwise."""
    went_down = first(obs.samples, start_ns, lambda s: not all(s.ready.values()))
    if went_down is None or rto_ns(obs, start_ns) is not None or not obs.samples:
        return None
    return obs.samples[-1].ts_ns - start_ns


def failover_ns(samples: Sequence[Sample], start_ns: int) -> int | None:
    before = [s for s in samples if s.ts_ns < start_ns and "leader" in s.roles.values()]
    if not before:
        return None
    old = next(name for name, role in before[-1].roles.items() if role == "leader")
    return first(
        samples,
        start_ns,
        lambda s: any(
            role == "leader" and name != old and s.ready.get(name, False)
            for name, role in s.roles.items()
        ),
    )


def slippage_bps(fills: Sequence[Fill], orders: dict[str, OrderRecord]) -> float | None:
    """Quantity-weighted signed slippage against arrival mid; None without fills."""
    total_qty = Decimal(0)
    weighted = 0.0
    for fill in fills:
        order = orders.get(fill.client_order_id)
        if order is None or order.reference_price <= 0:
            continue
        sign = 1.0 if fill.side == Side.BUY else -1.0
        bps = sign * (float(fill.price) - order.reference_price) / order.reference_price * 1e4
        weighted += bps * float(fill.qty)
        total_qty += fill.qty
    return None if total_qty == 0 else round(weighted / float(total_qty), 3)


def _fills_in(fills: Sequence[Fill], start_ns: int, end_ns: int) -> list[Fill]:
    return [f for f in fills if start_ns <= f.venue_ts_ms * 1_000_000 < end_ns]


def report_measurements(fault: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """A scenario's `measurements` in report.json: the fault window's values under their own
    names, the baseline window's with a `_baseline` suffix (what the HTML report reads)."""
    return {**fault, **{f"{key}_baseline": value for key, value in baseline.items()}}


@dataclass(frozen=True, kw_only=True)
class Measured:
    fault: dict[str, Any]
    baseline: dict[str, Any]
    engine_says: dict[str, Any]
    censored: frozenset[str] = frozenset()
    """Measurements that are lower bounds: the window ended before the event."""


def measure(obs: Observations, windows: Windows) -> Measured:
    """The engine's reactions per window, and what the engine says (module docstring)."""
    start = windows.fault_start_ns
    by_id = {o.client_order_id: o for o in obs.orders}
    base_fills = _fills_in(obs.fills, windows.baseline_start_ns, start)
    fault_fills = _fills_in(obs.fills, start, windows.end_ns)
    halted = first(
        obs.samples,
        start,
        lambda s: s.trading_state not in (None, "ACTIVE") or bool(s.entries_blocked),
    )
    switch = next(
        (
            e["ts_ns"]
            for e in obs.log_events
            if e["ts_ns"] >= start and e.get("event") == "feed_switched"
        ),
        None,
    )
    # flat counts only once the flatten was asked for (a position that happened to be flat
    # earlier is not the flatten's doing), and the time runs from that request
    flatten_asked = min(
        (
            a["ts_ns"]
            for a in obs.activities
            if str(a.get("name", "")).startswith("flatten")
            and a.get("event") == "start"
            and a["ts_ns"] >= start
        ),
        default=None,
    )
    flattened = (
        None
        if flatten_asked is None
        else first(
            obs.samples,
            flatten_asked,
            lambda s: bool(s.positions) and all(abs(q) < 1e-4 for q in s.positions.values()),
        )
    )
    # the strategy keeps trading while the journal is read: an order created moments before
    # the read is in flight, not stuck
    in_flight_since = windows.end_ns - IN_FLIGHT_GRACE_NS
    stuck = [
        o
        for o in obs.orders
        if not o.state.is_terminal
        and o.state not in (OrderState.OPEN, OrderState.PARTIALLY_FILLED)
        and o.created_ts_ns < in_flight_since
    ]
    lost = [o for o in obs.orders if o.state == OrderState.PENDING and o.sent_ts_ns == 0]
    latencies = [s.tick_to_order_ms for s in obs.samples if s.ts_ns >= start and s.tick_to_order_ms]
    base_latencies = [
        s.tick_to_order_ms
        for s in obs.samples
        if windows.baseline_start_ns <= s.ts_ns < start and s.tick_to_order_ms
    ]
    ages = [
        s.market_data_age_s
        for s in obs.samples
        if s.ts_ns >= start and s.market_data_age_s is not None
    ]
    base_ages = [
        s.market_data_age_s
        for s in obs.samples
        if windows.baseline_start_ns <= s.ts_ns < start and s.market_data_age_s is not None
    ]
    distances = [
        s.liquidation_distance_pct
        for s in obs.samples
        if windows.baseline_start_ns <= s.ts_ns < windows.end_ns
        and s.liquidation_distance_pct is not None
    ]
    fault = {
        "min_liquidation_distance_pct": round(min(distances), 3) if distances else None,
        "time_to_detect_s": _seconds(time_to_detect_ns(obs, start), start),
        "time_to_halt_s": _seconds(halted, start),
        "time_to_failover_s": _seconds(failover_ns(obs.samples, start), start),
        "rto_s": None if (r := rto_ns(obs, start)) is None else round(r / 1e9, 3),
        "rto_not_before_s": None
        if (b := rto_lower_bound_ns(obs, start)) is None
        else round(b / 1e9, 3),
        "orders_stuck": len(stuck),
        "tick_to_order_ms_max": max(latencies) if latencies else None,
        "fault_duration_s": _seconds(windows.fault_end_ns, start),
    }
    baseline = {"tick_to_order_ms_max": max(base_latencies) if base_latencies else None}
    engine_says = {
        "orders_lost": len(lost),
        "time_to_switch_feed_s": _seconds(switch, start),
        "max_market_data_age_s": max(ages) if ages else None,
        "max_market_data_age_s_baseline": max(base_ages) if base_ages else None,
        "time_to_flatten_s": _seconds(flattened, flatten_asked or start),
        "slippage_bps": slippage_bps(fault_fills, by_id),
        "slippage_bps_baseline": slippage_bps(base_fills, by_id),
        "fills": len(fault_fills),
    }
    censored: frozenset[str] = frozenset()
    if fault["rto_s"] is None and fault["rto_not_before_s"] is not None:
        fault["rto_s"] = fault["rto_not_before_s"]
        censored = frozenset({"rto_s"})
    return Measured(fault=fault, baseline=baseline, engine_says=engine_says, censored=censored)
