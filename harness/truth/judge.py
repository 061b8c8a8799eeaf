"""The judge: correctness and market SLIs from ground truth only. Pure functions of records that
parties other than the engine produced (`harness.truth.records`); the engine's journal, logs and
/status never enter here (the report shows them beside the truth as "engine says").

Definitions (docs/gamedays.md):
    orders_lost          accepted intents with no venue order of their family and no
                         client-visible outcome (a risk denial, or execution's IntentDone saying
                         rejected/canceled on the bus) by the end of the drain
    orders_duplicated    intents whose venue executed quantity exceeds their quantity, plain
                         (non-algo) intents that reached the venue as more than one order, and
                         venue orders no known intent accounts for (an id outside the rule, or
                         the family of no intent); the venue's -2010 refusals of a repeated id
                         are reported beside it (`duplicate_ids_refused`), never counted
    position_drift       sum over the union of the venue's and the current leader's symbols of
                         |leader position - venue balance change|; a symbol one side lacks is
                         drift; no leader answering is no measurement
    orders_after_halt    venue orders accepted later than `grace_ms` after the halt request
                         (the method's first `halt*` activity) and before the resume (its first
                         `resume*` activity after it), if any
    orders_on_stale_data venue orders of intents decided on a tick that was older than
                         `stale_ms` when the intent reached the bus (the intent names its tick
                         by correlation id; both times are the bus's and the replay's clocks)
    max_market_data_age_s   the oldest the market on the bus got during the window: at each
                         moment, now minus the newest event time the bus had shown, per symbol
                         and stream kind (quotes and books: trades come only when the market
                         trades, and a quiet market is not a stale one)
    time_to_switch_feed_s   fault start -> the bus shows a fresh book again (at most `fresh_ms`
                         behind, or twice the book's usual lag before the fault when that is
                         more) after the fault made it stale; 0 when it never went stale; a
                         lower bound (censored) when it never came back in the window. Books,
                         because the engine publishes them from its active feed only (trades
                         and quotes go out from whichever feed delivers first): a book that
                         stays stale is a feed that was not switched
    time_to_flatten_s    flatten request -> every venue balance change back within tolerance
    slippage_bps         quantity-weighted signed slippage of fills against the replay's mid
                         when the intent was submitted (positive = worse than mid)
    intent_to_ack_*      intent submitted -> the venue accepted its first order, from the raw
                         samples (nearest rank), with the sample count
    max_trading_gap_s    the longest time within the window in which the venue accepted no
                         order: from the window's start to the first order, between orders, and
                         from the last one to the window's end (the engine's strategies trade
                         several times a second, so a failover shows as a gap); censored when
                         no order came at all
    orders_after_lease_expiry   fencing, on Kubernetes: the deposed leader's venue orders (those
                         on the connections that carried orders while it alone led, before the
                         fault) accepted after its Lease could be taken (the API server's last
                         renewal of its term as the watcher first saw it, plus the Lease's
                         duration); no such order means it stopped sending before another could
                         lead
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from harness.truth.ids import family_of, intent_family
from harness.truth.records import (
    EngineAnswer,
    IntentRecord,
    MdObservation,
    MidPoint,
    VenueOrder,
    VenueRefusal,
)

EXCUSING_OUTCOMES = ("rejected", "canceled")
"""IntentDone outcomes that tell the client its intent will not trade (any more)."""


@dataclass(frozen=True, kw_only=True)
class Attribution:
    """Venue orders grouped by the intent whose family they carry."""

    by_intent: dict[str, list[VenueOrder]]
    unattributed: list[VenueOrder]


def attribute(intents: Iterable[IntentRecord], orders: Iterable[VenueOrder]) -> Attribution:
    families = {intent_family(i.intent_id): i.intent_id for i in intents}
    by_intent: dict[str, list[VenueOrder]] = defaultdict(list)
    unattributed: list[VenueOrder] = []
    for order in orders:
        family = family_of(order.client_order_id)
        owner = None if family is None else families.get(family)
        if owner is None:
            unattributed.append(order)
        else:
            by_intent[owner].append(order)
    return Attribution(by_intent=dict(by_intent), unattributed=unattributed)


def _visibly_refused(answers: Iterable[EngineAnswer]) -> set[str]:
    """Intents the engine answered with a risk denial or an outcome that excuses no order."""
    return {
        a.intent_id
        for a in answers
        if a.kind == "risk_denial" or (a.kind == "intent_done" and a.outcome in EXCUSING_OUTCOMES)
    }


def lost_intents(
    intents: Iterable[IntentRecord], orders: Iterable[VenueOrder], answers: Iterable[EngineAnswer]
) -> list[IntentRecord]:
    accepted = [i for i in intents if i.accepted]
    attribution = attribute(accepted, orders)
    excused = _visibly_refused(answers)
    return [
        i
        for i in accepted
        if not attribution.by_intent.get(i.intent_id) and i.intent_id not in excused
    ]


def rejected_intents(
    intents: Iterable[IntentRecord], orders: Iterable[VenueOrder], answers: Iterable[EngineAnswer]
) -> list[str]:
    """Accepted intents the engine visibly refused and that never reached the venue."""
    accepted = [i for i in intents if i.accepted]
    attribution = attribute(accepted, orders)
    refused = _visibly_refused(answers)
    return sorted(
        i.intent_id
        for i in accepted
        if i.intent_id in refused and not attribution.by_intent.get(i.intent_id)
    )


@dataclass(frozen=True, kw_only=True)
class Duplicate:
    intent_id: str | None
    """None: an order no known intent accounts for."""
    client_order_ids: tuple[str, ...]
    reason: str


def duplicates(intents: Iterable[IntentRecord], orders: Iterable[VenueOrder]) -> list[Duplicate]:
    intents = list(intents)
    by_id = {i.intent_id: i for i in intents}
    attribution = attribute(intents, orders)
    found: list[Duplicate] = []
    for intent_id, placed in sorted(attribution.by_intent.items()):
        intent = by_id[intent_id]
        ids = tuple(sorted(o.client_order_id for o in placed))
        executed = sum((o.executed_qty for o in placed), Decimal(0))
        if executed > intent.qty:
            found.append(
                Duplicate(
                    intent_id=intent_id,
                    client_order_ids=ids,
                    reason=f"executed {executed} for an intent of {intent.qty}",
                )
            )
        elif not intent.algo and len(placed) > 1:
            found.append(
                Duplicate(
                    intent_id=intent_id,
                    client_order_ids=ids,
                    reason=f"a one-order intent reached the venue as {len(placed)} orders",
                )
            )
    for order in attribution.unattributed:
        found.append(
            Duplicate(
                intent_id=None,
                client_order_ids=(order.client_order_id,),
                reason="no known intent accounts for this venue order",
            )
        )
    return found


def duplicate_ids_refused(refusals: Iterable[VenueRefusal]) -> int:
    return sum(1 for r in refusals if r.duplicate)


def position_drift(
    *,
    venue_change: Mapping[str, Decimal],
    symbol_assets: Mapping[str, tuple[str, str]],
    leader_positions: Mapping[str, Decimal] | None,
) -> dict[str, Decimal] | None:
    """Per symbol, the leader's position minus the venue's base-asset change. Symbols: the
    union of those the leader reports and those whose base asset moved at the venue (a position
    the engine forgot is drift, not absence). None when no leader answered."""
    if leader_positions is None:
        return None
    moved = {
        symbol
        for symbol, (base, _) in symbol_assets.items()
        if venue_change.get(base, Decimal(0)) != 0
    }
    drift = {}
    for symbol in sorted(moved | set(leader_positions)):
        base = symbol_assets.get(symbol, (symbol, ""))[0]
        engine = leader_positions.get(symbol, Decimal(0))
        drift[symbol] = engine - venue_change.get(base, Decimal(0))
    return drift


def total_drift(drift: Mapping[str, Decimal] | None) -> float | None:
    return None if drift is None else float(sum((abs(d) for d in drift.values()), Decimal(0)))


def orders_after(
    orders: Iterable[VenueOrder], after_ns: int, *, grace_ms: int = 1_000
) -> list[VenueOrder]:
    """Venue orders accepted later than `grace_ms` after `after_ns` (a request already on the
    wire at that moment may still land within the grace)."""
    cutoff_ms = after_ns // 1_000_000 + grace_ms
    return [o for o in orders if o.time_ms > cutoff_ms]


def stale_decisions(
    intents: Iterable[IntentRecord], md: Iterable[MdObservation], *, stale_ms: int
) -> list[tuple[IntentRecord, int]]:
    """(intent, age in ms of the tick it was decided on when it reached the bus) for every
    intent whose tick was older than `stale_ms`. An intent naming no tick the bus showed (an
    intake intent, a flatten) is not judged here."""
    ticks = {o.correlation_id: o for o in md if o.correlation_id}
    found = []
    for intent in intents:
        tick = ticks.get(intent.correlation_id) if intent.correlation_id else None
        if tick is None:
            continue
        age_ms = intent.submitted_ns // 1_000_000 - tick.stamp_ms
        if age_ms > stale_ms:
            found.append((intent, age_ms))
    return found


def orders_on_stale_data(
    intents: Iterable[IntentRecord],
    orders: Iterable[VenueOrder],
    md: Iterable[MdObservation],
    *,
    stale_ms: int,
) -> list[VenueOrder]:
    stale = [intent for intent, _ in stale_decisions(intents, md, stale_ms=stale_ms)]
    attribution = attribute(stale, orders)
    return [o for placed in attribution.by_intent.values() for o in placed]


# --- the market, as the bus showed it ----------------------------------------------------------


FRESHNESS_KINDS = ("quote", "book")
SWITCH_KINDS = ("book",)


def _by_stream(
    md: Iterable[MdObservation], kinds: Sequence[str]
) -> dict[tuple[str, str], list[MdObservation]]:
    grouped: dict[tuple[str, str], list[MdObservation]] = defaultdict(list)
    for observation in md:
        if observation.kind in kinds:
            grouped[(observation.symbol, observation.kind)].append(observation)
    for observations in grouped.values():
        observations.sort(key=lambda o: o.entry_ms)
    return grouped


USUAL_LAG_WINDOW_MS = 30_000


def _usual_lag_ms(observations: Sequence[MdObservation], t_ms: int) -> int:
    """The 95th percentile of entry minus event time over the window before `t_ms`."""
    lags = sorted(
        o.entry_ms - o.stamp_ms
        for o in observations
        if t_ms - USUAL_LAG_WINDOW_MS <= o.entry_ms < t_ms
    )
    return lags[int(0.95 * (len(lags) - 1))] if lags else 0


def _newest_before(observations: Sequence[MdObservation], t_ms: int) -> int | None:
    stamps = [o.stamp_ms for o in observations if o.entry_ms < t_ms]
    return max(stamps) if stamps else None


def max_data_age_s(
    md: Iterable[MdObservation],
    start_ms: int,
    end_ms: int,
    *,
    kinds: Sequence[str] = FRESHNESS_KINDS,
) -> float | None:
    """The oldest the market on the bus got within [start, end], worst symbol and kind; None
    when the bus showed no market before the window (nothing to be fresh against)."""
    worst: float | None = None
    for observations in _by_stream(md, kinds).values():
        newest = _newest_before(observations, start_ms)
        if newest is None:
            continue
        oldest = max(0, start_ms - newest)
        for observation in observations:
            if not start_ms <= observation.entry_ms <= end_ms:
                continue
            oldest = max(oldest, observation.entry_ms - newest)
            newest = max(newest, observation.stamp_ms)
        oldest = max(oldest, end_ms - newest)
        worst = oldest if worst is None else max(worst, oldest)
    return None if worst is None else round(worst / 1000, 3)


@dataclass(frozen=True, kw_only=True)
class SwitchTime:
    seconds: float | None
    censored: bool = False
    """The market never came back fresh in the window: `seconds` is a lower bound."""


def time_to_fresh_again(
    md: Iterable[MdObservation],
    fault_start_ms: int,
    end_ms: int,
    *,
    fresh_ms: int = 250,
    kinds: Sequence[str] = SWITCH_KINDS,
) -> SwitchTime:
    """Fault start -> fresh market data on the bus again, after the fault made it stale (per
    symbol and kind; the slowest). Never stale: 0 (a seamless switch). Stale to the end:
    censored.

    Fresh means at most `fresh_ms` behind, or twice the stream's usual lag before the fault
    when that is more (its 95th percentile over the 30 s before): on a loaded machine every
    book reaches the bus late, the switched-to feed's too, and a book as fresh as before the
    fault is a switched feed. A feed that was not switched falls behind by seconds, far past
    either bound."""
    slowest = SwitchTime(seconds=None)
    for observations in _by_stream(md, kinds).values():
        newest = _newest_before(observations, fault_start_ms)
        if newest is None:
            continue
        fresh_ms = max(fresh_ms, 2 * _usual_lag_ms(observations, fault_start_ms))
        stale_since: int | None = None
        back: int | None = None
        for observation in observations:
            if observation.entry_ms < fault_start_ms or observation.entry_ms > end_ms:
                continue
            if stale_since is None and observation.entry_ms - newest > fresh_ms:
                stale_since = newest + fresh_ms
            newest = max(newest, observation.stamp_ms)
            if stale_since is not None and observation.entry_ms - observation.stamp_ms <= fresh_ms:
                back = observation.entry_ms
                break
        if stale_since is None and end_ms - newest > fresh_ms:
            stale_since = newest + fresh_ms
        if stale_since is None:
            result = SwitchTime(seconds=0.0)
        elif back is None:
            result = SwitchTime(seconds=round((end_ms - fault_start_ms) / 1000, 3), censored=True)
        else:
            result = SwitchTime(seconds=round(max(0, back - fault_start_ms) / 1000, 3))
        slowest = _slower(slowest, result)
    return slowest


def _slower(a: SwitchTime, b: SwitchTime) -> SwitchTime:
    if a.seconds is None:
        return b
    if b.seconds is None:
        return a
    if a.censored != b.censored:
        return a if a.censored else b
    return a if a.seconds >= b.seconds else b


# --- positions, prices and latency at the venue ---------------------------------------------


def time_to_flat_s(
    samples: Sequence[tuple[int, Mapping[str, Decimal]]],
    asked_ns: int,
    *,
    tolerance: Decimal = Decimal("0.0001"),
) -> float | None:
    """Flatten request -> the first venue sample with every balance change of a traded asset
    within tolerance. `samples`: (ts_ns, base asset -> venue balance change), in time order."""
    for ts_ns, changes in samples:
        if ts_ns >= asked_ns and all(abs(q) <= tolerance for q in changes.values()):
            return round((ts_ns - asked_ns) / 1e9, 3)
    return None


def mid_at(mids: Sequence[MidPoint], symbol: str, ts_ms: int) -> float | None:
    """The replay's mid in force at ts_ms: the last point at or before it."""
    best: MidPoint | None = None
    for point in mids:
        if (
            point.symbol == symbol
            and point.ts_ms <= ts_ms
            and (best is None or point.ts_ms >= best.ts_ms)
        ):
            best = point
    return best.mid if best is not None else None


def slippage_bps(
    intents: Iterable[IntentRecord],
    orders: Iterable[VenueOrder],
    mids: Sequence[MidPoint],
    *,
    start_ns: int,
    end_ns: int,
) -> tuple[float | None, int]:
    """(quantity-weighted signed slippage in bps, fills counted) of the fills of intents
    submitted in [start, end), against the replay's mid at submission."""
    intents = [i for i in intents if start_ns <= i.submitted_ns < end_ns]
    attribution = attribute(intents, orders)
    weighted = 0.0
    quantity = 0.0
    fills = 0
    for intent in intents:
        mid = mid_at(mids, intent.symbol, intent.submitted_ns // 1_000_000)
        if mid is None or mid <= 0:
            continue
        for order in attribution.by_intent.get(intent.intent_id, []):
            sign = 1.0 if order.side == "BUY" else -1.0
            for fill in order.fills:
                bps = sign * (float(fill.price) - mid) / mid * 1e4
                weighted += bps * float(fill.qty)
                quantity += float(fill.qty)
                fills += 1
    return (None if quantity == 0 else round(weighted / quantity, 3)), fills


def ack_latencies_ms(
    intents: Iterable[IntentRecord], orders: Iterable[VenueOrder], *, source: str = "load"
) -> list[float]:
    """Raw samples: submitted -> the venue accepted the intent's first order, for the intents of
    one submitter (the load generator by default: it knows when it sent them)."""
    mine = [i for i in intents if i.source == source and i.accepted]
    attribution = attribute(mine, orders)
    samples = []
    for intent in mine:
        placed = attribution.by_intent.get(intent.intent_id)
        if placed:
            first = min(o.time_ms for o in placed)
            samples.append(max(0.0, first - intent.submitted_ns / 1e6))
    return samples


def percentile(samples: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of raw samples (no interpolation, no histogram rounding)."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(q * len(ordered)))
    return round(ordered[rank - 1], 3)


@dataclass(frozen=True, kw_only=True)
class Gap:
    seconds: float
    censored: bool
    """No order in the whole window: the gap is at least the window."""


def max_trading_gap(orders: Iterable[VenueOrder], start_ms: int, end_ms: int) -> Gap:
    times = sorted(o.time_ms for o in orders if start_ms <= o.time_ms < end_ms)
    if not times:
        return Gap(seconds=max(0, end_ms - start_ms) / 1000, censored=True)
    edges = [start_ms, *times, end_ms]
    return Gap(seconds=max(b - a for a, b in itertools.pairwise(edges)) / 1000, censored=False)


def orders_after_lease_expiry(
    orders: Iterable[VenueOrder], *, led_from_ms: int, led_until_ms: int, expiry_ms: int
) -> list[VenueOrder] | None:
    """The deposed leader's venue orders accepted after its Lease could be taken. Its orders are
    those on the connections that carried orders while it alone led ([led_from_ms,
    led_until_ms)): a TCP connection belongs to one process, proxy or not. None when no order
    came in that window (nothing to attribute)."""
    orders = list(orders)
    mine = {
        o.connection
        for o in orders
        if o.connection is not None and led_from_ms <= o.time_ms < led_until_ms
    }
    if not mine:
        return None
    return [o for o in orders if o.connection in mine and o.time_ms > expiry_ms]
