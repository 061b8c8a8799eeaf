"""The records the judge reads: what parties other than the engine saw. Plain frozen data, so the
measurements over them are pure functions that tests feed by hand.

    IntentRecord    an intent someone submitted and what they were told (the load generator, a
                    harness client), or one that appeared on the bus (a strategy's, risk's)
    VenueOrder      an order the simulator accepted, with its fills (the venue's ground truth)
    VenueRefusal    a new-order request the simulator refused, with its Binance code
    EngineAnswer    what the engine told its clients about an intent, on the bus: a risk denial
                    or execution's IntentDone (a client-visible outcome)
    MdObservation   one market-data message seen on the bus by the harness's observer
    MidPoint        the replay's own mid at a moment (its book, not the engine's)

Times: `*_ns` are wall-clock nanoseconds, `*_ms` wall-clock milliseconds (the venue's clock is
the wall clock, the replay rebases event times onto it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

INTENT_SOURCES = ("load", "harness", "bus")


@dataclass(frozen=True, kw_only=True, slots=True)
class IntentRecord:
    intent_id: str
    source: str
    """"load" (the load generator's record), "harness" (a chaos action's), "bus" (seen only on
    the engine's intents or orders stream: a strategy's or risk's own intent)."""
    symbol: str
    side: str
    qty: Decimal
    submitted_ns: int
    """When the submitter sent it (its own clock), or when it reached the bus (Redis's clock)."""
    accepted: bool = True
    """The intake answered 202, or the intent was on the bus. A refused intent is no order."""
    status: int | None = None
    """The intake's HTTP answer (None for an intent seen on the bus only)."""
    algo: str = ""
    """An algo intent may reach the venue as several child orders; a plain one as one."""
    order_type: str = "MARKET"
    correlation_id: str = ""
    """The market event the intent was decided on (a strategy's intent names its tick)."""


def merge_intents(records: Iterable[IntentRecord]) -> list[IntentRecord]:
    """One record per intent id: a submitter's own record wins over the bus's sighting (it knows
    when it sent it and what it was told); the bus adds what only it knows (the algo, the
    correlation id)."""
    rank = {"load": 0, "harness": 1, "bus": 2}
    chosen: dict[str, IntentRecord] = {}
    sighted: dict[str, IntentRecord] = {}
    for record in records:
        if record.source == "bus":
            sighted[record.intent_id] = record
        held = chosen.get(record.intent_id)
        if held is None or rank.get(record.source, 9) < rank.get(held.source, 9):
            chosen[record.intent_id] = record
    out = []
    for intent_id, record in chosen.items():
        bus = sighted.get(intent_id)
        if bus is not None and bus is not record:
            record = replace(record, algo=bus.algo, correlation_id=bus.correlation_id)
        out.append(record)
    return sorted(out, key=lambda r: (r.submitted_ns, r.intent_id))


@dataclass(frozen=True, kw_only=True, slots=True)
class VenueFill:
    trade_id: int
    price: Decimal
    qty: Decimal
    time_ms: int


@dataclass(frozen=True, kw_only=True, slots=True)
class VenueOrder:
    client_order_id: str
    symbol: str
    side: str
    order_type: str
    orig_qty: Decimal
    executed_qty: Decimal
    status: str
    time_ms: int
    arrival_mid: float | None = None
    """The venue's own mid when the order arrived."""
    connection: str | None = None
    """The client `ip:port` of the TCP connection the venue received it on."""
    fills: tuple[VenueFill, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class VenueRefusal:
    client_order_id: str
    symbol: str
    code: int
    msg: str
    time_ms: int

    @property
    def duplicate(self) -> bool:
        """Binance's answer to a repeated clientOrderId of an open order."""
        return self.code == -2010 and "Duplicate" in self.msg


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineAnswer:
    intent_id: str
    kind: str
    """"risk_denial" or "intent_done"."""
    outcome: str
    """The IntentDone outcome ("filled", "rejected", "canceled", ...) or "denied"."""
    ts_ns: int


@dataclass(frozen=True, kw_only=True, slots=True)
class MdObservation:
    symbol: str
    kind: str = "book"
    """"trade", "quote" or "book" (the engine publishes books from its active feed only)."""
    entry_ms: int
    """When the message reached the bus (its Redis stream entry id: Redis's clock)."""
    event_ms: int | None
    """The market event time the replay stamped on it (rebased to the wall clock); None for a
    message that carries none (a quote)."""
    feed: str = ""
    correlation_id: str = ""

    @property
    def stamp_ms(self) -> int:
        """How recent the market it shows is: its event time, else its arrival on the bus."""
        return self.event_ms if self.event_ms is not None else self.entry_ms


@dataclass(frozen=True, kw_only=True, slots=True)
class MidPoint:
    symbol: str
    ts_ms: int
    mid: float


@dataclass(kw_only=True)
class Truth:
    """Everything the judge reads for one scenario."""

    intents: list[IntentRecord] = field(default_factory=list)
    orders: list[VenueOrder] = field(default_factory=list)
    refusals: list[VenueRefusal] = field(default_factory=list)
    answers: list[EngineAnswer] = field(default_factory=list)
    md: list[MdObservation] = field(default_factory=list)
    mids: list[MidPoint] = field(default_factory=list)
    liquidations: list[dict[str, Any]] | None = None
    """Futures: the venue's liquidations since the scenario began (None: a spot venue)."""
    funding: list[dict[str, Any]] | None = None
    """Futures: the funding our accounts paid since the scenario began (None: a spot venue)."""
    funding_times: list[dict[str, Any]] | None = None
    """Futures: every funding time since the scenario began, held or not: rate, mark and what
    one long contract paid (the venue's schedule)."""
    outside_orders: list[str] = field(default_factory=list)
    """Orders the harness (a close by hand) or the venue (a liquidation) placed in the account,
    left out of `orders`."""
    observer_errors: list[str] = field(default_factory=list)
    """What the observers could not see (a source that did not answer): the judge says
    inconclusive where it matters, never guesses."""
