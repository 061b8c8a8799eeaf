"""One scenario's SLIs from ground truth (`harness.truth.judge` over a `Truth`), per window,
with the detail the report shows (which intents were lost, which orders doubled).

Windows (wall-clock ns): the scenario runs [baseline_start, end); the baseline window is
[baseline_start, fault_start) and the fault window [fault_start, end). Correctness is judged
over the whole scenario (an intent sent during the baseline and lost to the crash is lost) for
the intents submitted before the drain's cut (`intents_end_ns`): the harness waited for each of
those to reach an outcome, while one sent after the cut may still be on its way; latency,
slippage and freshness per window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from harness.gameday import futures_measures as futures
from harness.gameday.measure import Windows
from harness.truth import judge
from harness.truth.records import Truth, VenueOrder

DEFAULT_HALT_GRACE_MS = 1_000
"""A request already on the wire when the halt was asked may still land within this."""
STALE_DECISION_MS = 3_000
"""A decision on a tick older than this is a decision on stale data: the engine's own limit
(strategy max_tick_age_ms, 2 s by default) plus a second for a loaded machine."""


@dataclass(kw_only=True)
class TruthSlis:
    fault: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    censored: set[str] = field(default_factory=set)


def first_activity_ns(
    activities: Sequence[Mapping[str, Any]], prefix: str, after_ns: int
) -> int | None:
    """When the first activity whose name starts with `prefix` began (a halt, a flatten)."""
    return min(
        (
            int(a["ts_ns"])
            for a in activities
            if str(a.get("name", "")).startswith(prefix)
            and a.get("event") == "start"
            and int(a["ts_ns"]) >= after_ns
        ),
        default=None,
    )


def measure_truth(
    truth: Truth,
    windows: Windows,
    *,
    activities: Sequence[Mapping[str, Any]] = (),
    venue_positions: Sequence[tuple[int, Mapping[str, Decimal]]] = (),
    refused_before: Mapping[int, int] | None = None,
    refused_after: Mapping[int, int] | None = None,
    halt_grace_ms: int = DEFAULT_HALT_GRACE_MS,
) -> TruthSlis:
    out = TruthSlis()
    start, fault, end = windows.baseline_start_ns, windows.fault_start_ns, windows.end_ns
    judged_until = end if windows.intents_end_ns is None else min(end, windows.intents_end_ns)
    scenario = [i for i in truth.intents if start <= i.submitted_ns < judged_until]
    # a duplicate needs no outcome to wait for: every intent of the window counts there
    in_scenario = {i.intent_id for i in truth.intents if start <= i.submitted_ns < end}

    lost = judge.lost_intents(scenario, truth.orders, truth.answers)
    out.fault["orders_lost"] = len(lost)
    out.fault["intents_judged"] = sum(1 for i in scenario if i.accepted)
    out.fault["intents_rejected"] = len(
        judge.rejected_intents(scenario, truth.orders, truth.answers)
    )
    out.detail["lost_intents"] = [i.intent_id for i in lost]

    doubled = [
        d
        for d in judge.duplicates(truth.intents, truth.orders)
        if (d.intent_id in in_scenario)
        or (d.intent_id is None and _placed_between(truth.orders, d.client_order_ids, start, end))
    ]
    out.fault["orders_duplicated"] = len(doubled)
    out.detail["duplicates"] = [
        {"intent_id": d.intent_id, "client_order_ids": list(d.client_order_ids), "reason": d.reason}
        for d in doubled
    ]
    refused = [r for r in truth.refusals if start // 1_000_000 <= r.time_ms < end // 1_000_000]
    out.fault["duplicate_ids_refused"] = judge.duplicate_ids_refused(refused)

    halt_ns = first_activity_ns(activities, "halt", fault)
    if halt_ns is not None:
        resume_ns = first_activity_ns(activities, "resume", halt_ns) or end
        after = judge.orders_after(
            [o for o in truth.orders if halt_ns <= o.time_ms * 1_000_000 < resume_ns],
            halt_ns,
            grace_ms=halt_grace_ms,
        )
        out.fault["orders_after_halt"] = len(after)
        out.detail["orders_after_halt"] = [o.client_order_id for o in after]

    stale = judge.stale_decisions(scenario, truth.md, stale_ms=STALE_DECISION_MS)
    on_stale = judge.orders_on_stale_data(
        scenario, truth.orders, truth.md, stale_ms=STALE_DECISION_MS
    )
    out.fault["orders_on_stale_data"] = len(on_stale)
    out.detail["stale_decisions"] = [
        {"intent_id": intent.intent_id, "tick_age_ms": age} for intent, age in stale
    ]

    start_ms, fault_ms, end_ms = start // 10**6, fault // 10**6, end // 10**6
    out.fault["max_market_data_age_s"] = judge.max_data_age_s(truth.md, fault_ms, end_ms)
    out.baseline["max_market_data_age_s"] = judge.max_data_age_s(truth.md, start_ms, fault_ms)
    switch = judge.time_to_fresh_again(truth.md, fault_ms, end_ms)
    out.fault["time_to_switch_feed_s"] = switch.seconds
    if switch.censored:
        out.censored.add("time_to_switch_feed_s")

    flatten_ns = first_activity_ns(activities, "flatten", fault)
    out.fault["time_to_flatten_s"] = (
        None if flatten_ns is None else judge.time_to_flat_s(list(venue_positions), flatten_ns)
    )

    for window, (lo, hi) in (("fault", (fault, end)), ("baseline", (start, fault))):
        values = out.fault if window == "fault" else out.baseline
        gap = judge.max_trading_gap(
            truth.orders, lo // 10**6, (judged_until if window == "fault" else hi) // 10**6
        )
        values["max_trading_gap_s"] = gap.seconds
        if gap.censored and window == "fault":
            out.censored.add("max_trading_gap_s")
        bps, fills = judge.slippage_bps(
            truth.intents, truth.orders, truth.mids, start_ns=lo, end_ns=hi
        )
        values["slippage_bps"] = bps
        values["fills"] = fills
        samples = judge.ack_latencies_ms(
            [i for i in truth.intents if lo <= i.submitted_ns < hi], truth.orders
        )
        values["intent_to_ack_samples"] = len(samples)
        for q in (50, 95, 99):
            values[f"intent_to_ack_p{q}_ms"] = judge.percentile(samples, q / 100)
        values["execution_slippage_bps"] = _arrival_slippage(
            [o for o in truth.orders if lo // 10**6 <= o.time_ms < hi // 10**6]
        )

    if truth.liquidations is not None:  # futures: the venue closed positions it had to
        out.fault["liquidations"] = sum(
            1 for x in truth.liquidations if start // 10**6 <= int(x["time_ms"]) < end // 10**6
        )
        out.detail["liquidations"] = truth.liquidations

    if truth.liquidations is not None:
        _futures_slis(truth, out, activities, venue_positions, fault, end)

    if refused_before is not None and refused_after is not None:
        for status, name in ((429, "venue_429_answers"), (418, "venue_418_answers")):
            out.fault[name] = refused_after.get(status, 0) - refused_before.get(status, 0)
    out.detail["observer_errors"] = list(truth.observer_errors)
    if truth.outside_orders:
        out.detail["orders_not_the_engines"] = list(truth.outside_orders)
    return out


def _futures_slis(
    truth: Truth,
    out: TruthSlis,
    activities: Sequence[Mapping[str, Any]],
    venue_positions: Sequence[tuple[int, Mapping[str, Decimal]]],
    fault_ns: int,
    end_ns: int,
) -> None:
    """Funding against holding, and positions past zero (harness.gameday.futures_measures)."""
    held = futures.held_at(venue_positions, fault_ns)
    lo_ms, hi_ms = fault_ns // 10**6, end_ns // 10**6
    if truth.funding is not None and truth.funding_times is not None:
        paid = futures.funding_paid(truth.funding, lo_ms, hi_ms)
        out.fault["funding_paid"] = float(paid)
        if held is not None:
            if_held = futures.funding_if_held(held, truth.funding_times, lo_ms, hi_ms)
            out.fault["funding_if_held"] = float(if_held)
            out.fault["funding_paid_vs_held_pct"] = futures.paid_vs_held_pct(paid, if_held)
        out.detail["funding_times"] = [
            t for t in truth.funding_times if lo_ms <= int(t["time_ms"]) < hi_ms
        ]
    if held is not None:
        until = first_activity_ns(activities, "resume", fault_ns) or end_ns
        out.fault["position_flipped_qty"] = futures.flipped_qty(
            venue_positions, held, fault_ns, until
        )
        out.detail["held_at_fault"] = {s: str(q) for s, q in held.items()}


def _placed_between(
    orders: Sequence[VenueOrder], ids: Sequence[str], lo_ns: int, hi_ns: int
) -> bool:
    wanted = set(ids)
    return any(
        o.client_order_id in wanted and lo_ns // 10**6 <= o.time_ms < hi_ns // 10**6 for o in orders
    )


def _arrival_slippage(orders: Sequence[VenueOrder]) -> float | None:
    """Against the venue's own mid when each order arrived (what the engine's speed cost, as
    opposed to what the market did before the order was sent)."""
    weighted = quantity = 0.0
    for order in orders:
        mid = order.arrival_mid
        if not mid or mid <= 0:
            continue
        sign = 1.0 if order.side == "BUY" else -1.0
        for fill in order.fills:
            weighted += sign * (float(fill.price) - mid) / mid * 1e4 * float(fill.qty)
            quantity += float(fill.qty)
    return None if quantity == 0 else round(weighted / quantity, 3)
