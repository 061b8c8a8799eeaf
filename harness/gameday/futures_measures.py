"""Futures SLIs from the venue's ground truth: what funding cost against what the position held
when the fault began would have cost, and how far a position went past zero while it was being
reduced. Pure: the sampler's venue positions and the simulator's funding records come in.

    funding_paid               what our accounts paid in funding during the fault window (the
                               venue's payments; negative: received), in the margin asset
    funding_if_held            what the positions held when the fault began would have paid at
                               the same funding times (the venue's schedule: each time's rate
                               and what one long contract paid)
    funding_paid_vs_held_pct   funding_paid / funding_if_held, in percent: 100 for an engine
                               that sat through the spike, near 0 for one that closed at once;
                               None when holding would have cost nothing (nothing to protect)
    position_flipped_qty       the largest position on the other side of zero from the one held
                               when the fault began, seen between the fault and the first
                               `resume` activity (while the engine reduces, nothing may cross
                               zero: a reduction sized from a stale position without reduceOnly
                               does); 0 when none crossed
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

Samples = Sequence[tuple[int, Mapping[str, Decimal]]]


def held_at(samples: Samples, ts_ns: int) -> dict[str, Decimal] | None:
    """The venue's positions at the last look at or before ts_ns (None: no look yet)."""
    held: dict[str, Decimal] | None = None
    for at_ns, positions in samples:
        if at_ns > ts_ns:
            break
        held = dict(positions)
    return held


def funding_paid(payments: Sequence[Mapping[str, Any]], lo_ms: int, hi_ms: int) -> Decimal:
    return sum(
        (Decimal(str(p["paid"])) for p in payments if lo_ms <= int(p["time_ms"]) < hi_ms),
        Decimal(0),
    )


def funding_if_held(
    held: Mapping[str, Decimal], times: Sequence[Mapping[str, Any]], lo_ms: int, hi_ms: int
) -> Decimal:
    return sum(
        (
            held.get(str(t["symbol"]), Decimal(0)) * Decimal(str(t["per_contract"]))
            for t in times
            if lo_ms <= int(t["time_ms"]) < hi_ms
        ),
        Decimal(0),
    )


def paid_vs_held_pct(paid: Decimal, if_held: Decimal) -> float | None:
    if if_held <= 0:
        return None
    return round(float(paid / if_held * 100), 3)


def flipped_qty(samples: Samples, held: Mapping[str, Decimal], lo_ns: int, hi_ns: int) -> float:
    worst = Decimal(0)
    for at_ns, positions in samples:
        if not lo_ns <= at_ns < hi_ns:
            continue
        for symbol, before in held.items():
            now = positions.get(symbol, Decimal(0))
            if before != 0 and now != 0 and (now > 0) != (before > 0):
                worst = max(worst, abs(now))
    return float(worst)
