"""Execution algos: pure, restart-safe state machines that turn one intent into child orders.

    intent, start_ns, instrument, params ──► make_algo ──► algo (immutable, no memory)
                                                             │
    journal: this intent's OrderRecords ──┐                  ▼
    now_ns, MarketView ───────────────────┴──► algo.step() ──► [PlaceChild|CancelChild|Finished]
          ▲                                                              │
          │  the caller journals a new child (PENDING) before sending,   │
          └─ sends / cancels by clientOrderId, records the venue's truth ◄┘

Restart safety is the point. An algo decides from (intent, start_ns, instrument, params), the
clock and market view it is given, and the children passed in (the journal's OrderRecords of
this intent, in any state), never from memory of earlier steps. A restarted execution service
that rebuilds the algo from the journal therefore makes the same decisions, and calling `step`
twice with the same inputs returns the same actions. Actions are *desired effects*: the caller
makes them idempotent (a PlaceChild's clientOrderId is `client_order_id(intent_id,
child_index)`, so journaling it twice is a no-op; a CancelChild is re-emitted on every step until
the journal shows the child terminal, so the caller throttles cancels per clientOrderId).

Rules shared by every algo:

* filled = sum(child.filled_qty); a non-terminal child (PENDING, SUBMITTING, UNKNOWN, OPEN,
  PARTIALLY_FILLED) counts its remaining qty as in flight: it may still fill, so nothing is ever
  placed over it. remaining = intent.qty - filled - in_flight. Over-fill is impossible by
  construction: a new child is never larger than `remaining`.
* a new child's index is max(existing) + 1 (0 first); quantities are quantized DOWN to the lot.
* Finished(complete=True) when filled == qty. Finished(complete=False) when what is left can
  never be placed: below min_qty, below min_notional at the price that would be used, the
  max_children cap (default 200), or max_rejects (default 3) consecutive venue rejections
  (a REJECTED LIMIT_MAKER child that "would take" is a post-only miss, not a rejection).
  Finished is only emitted when no child is live, so the parent's fills are final; to give up
  with children live, the algo first emits CancelChild for them.
* intent.limit_price, when set, is a hard cap: a buy never above it, a sell never below it.
  A MARKET child under a cap becomes LIMIT IOC at the cap (quantized to the tick, inwards).
* an uncapped MARKET child chosen by an algo (maker_first's cross, twap's slices) needs the far
  touch (the ask for a buy, the bid for a sell): with no market data the algo waits instead of
  sending a blind market order. Direct and split send the intent's own order type unchanged.
  The caller passes bid/ask None when its view is stale.

The algos:

* "" (Direct): one child, index 0, exactly the intent's order type, price and time in force
  (what the execution service always did); finished when that child ends.
* "maker_first" (timeout_ms=5000, requote_ticks=1, urgency="normal", cross_retry_ms=1000):
  one post-only LIMIT_MAKER child at the touch (best bid for a buy, best ask for a sell, capped).
  When the touch moves away from our resting price by requote_ticks or more, cancel it; once no
  child is live, quote again at the new touch. A maker child REJECTED because it would have taken
  is re-quoted at the touch (once the view is newer than the rejection, or the price differs).
  After timeout_ms (at once when urgency="urgent"): cancel a live maker child and, once nothing
  is live, cross the remainder: MARKET, or LIMIT IOC at the cap when there is one (not while the
  far touch is beyond the cap; no sooner than cross_retry_ms after the last cross child ended).
  No market data: wait before the timeout; after it, cross only at a cap.
* "split" (max_child_qty required, max_concurrent=1): children of at most max_child_qty, up to
  max_concurrent live at once, each with the intent's order type, price and time in force.
* "twap" (duration_ms required, slices=10): slice k is due at start_ns + k*duration/slices and
  by then the cumulative target is qty*(k+1)/slices (quantized); a child (MARKET, or LIMIT IOC at
  the cap) for target - filled - in_flight is placed when that is at least the minimum, at most
  one child per slice period (a child created at or after slice k's due time ends slice k), so a
  rejected or expired slice is caught up by the next one. After the duration the target is the
  whole qty and catch-up periods continue at the slice interval.

Every algo also takes max_children and max_rejects. Unknown or invalid params raise
AlgoParamsError with a one-line message naming the param.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Protocol

import msgspec

from engine.core.errors import AlgoParamsError
from engine.core.ids import client_order_id
from engine.core.messages import Intent, OrderType, Side, TimeInForce
from engine.core.orders import OrderRecord, OrderState

DEFAULT_MAX_CHILDREN = 200
DEFAULT_MAX_REJECTS = 3
MAX_CHILD_INDEX = 99_999
"""engine.core.ids accepts child indexes below 100 000."""

_ZERO = Decimal(0)
_WOULD_TAKE_MARKERS = (
    "immediately match",
    "would take",
    "orderimmediatelyfillable",
    "post-only",
    "post only",
)


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """The venue's trading rules for one symbol (Binance PRICE_FILTER, LOT_SIZE, NOTIONAL)."""

    tick_size: Decimal
    lot_size: Decimal
    min_qty: Decimal = _ZERO
    min_notional: Decimal = _ZERO


class MarketView(msgspec.Struct, frozen=True, kw_only=True):
    """The top of the book as the caller sees it; None when unknown or stale."""

    bid: Decimal | None
    ask: Decimal | None
    ts_ns: int = 0


class PlaceChild(msgspec.Struct, frozen=True, kw_only=True):
    child_index: int
    order_type: OrderType
    qty: Decimal
    limit_price: Decimal | None
    time_in_force: TimeInForce
    reason: str


class CancelChild(msgspec.Struct, frozen=True, kw_only=True):
    client_order_id: str
    reason: str


class Finished(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    complete: bool


Action = PlaceChild | CancelChild | Finished


class Algo(Protocol):
    def step(
        self, *, now_ns: int, market: MarketView, children: Sequence[OrderRecord]
    ) -> list[Action]:
        """What to do now, given this intent's children as the journal knows them."""
        ...

    def cancel(self, children: Sequence[OrderRecord]) -> list[Action]:
        """The parent is canceled: cancel every live child, then Finished."""
        ...


def child_order(intent: Intent, place: PlaceChild, *, now_ns: int) -> OrderRecord:
    """The PENDING OrderRecord to journal for a PlaceChild, before anything is sent."""
    return OrderRecord(
        client_order_id=client_order_id(intent.intent_id, place.child_index),
        intent_id=intent.intent_id,
        child_index=place.child_index,
        venue=intent.venue,
        symbol=intent.symbol,
        side=intent.side,
        order_type=place.order_type,
        qty=place.qty,
        limit_price=place.limit_price,
        time_in_force=place.time_in_force,
        reason=place.reason,
        correlation_id=intent.correlation_id,
        created_ts_ns=now_ns,
        updated_ts_ns=now_ns,
        tick_recv_ts_ns=intent.tick_recv_ts_ns,
        reference_price=intent.reference_price,
    )


def is_post_only_miss(child: OrderRecord) -> bool:
    """A LIMIT_MAKER child the venue rejected because it would have taken liquidity.

    An empty reason counts as such a miss; a reason that names something else (no funds, a
    filter) is a real rejection."""
    if child.order_type is not OrderType.LIMIT_MAKER or child.state is not OrderState.REJECTED:
        return False
    reason = child.reason.lower()
    return not reason or any(marker in reason for marker in _WOULD_TAKE_MARKERS)


# --- quantization ---------------------------------------------------------------------------


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    """The largest multiple of step not above value (0 for a non-positive value)."""
    if value <= 0:
        return _ZERO
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def ceil_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def _inward(side: Side, price: Decimal, tick: Decimal) -> Decimal:
    """A price on the tick that is never worse for us: down for a buy, up for a sell."""
    return floor_to(price, tick) if side is Side.BUY else ceil_to(price, tick)


def _beyond(side: Side, price: Decimal, cap: Decimal) -> bool:
    """True when trading at price would break the cap."""
    return price > cap if side is Side.BUY else price < cap


def _capped(side: Side, price: Decimal, cap: Decimal | None) -> Decimal:
    if cap is None:
        return price
    return min(price, cap) if side is Side.BUY else max(price, cap)


# --- the journal's view of one parent -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tally:
    """What the children of one intent add up to."""

    children: tuple[OrderRecord, ...]
    """This intent's children, by child index."""
    live: tuple[OrderRecord, ...]
    filled: Decimal
    in_flight: Decimal
    remaining: Decimal
    next_index: int
    rejects: int
    """Consecutive venue rejections at the end of the child list (post-only misses skipped)."""

    @classmethod
    def of(cls, intent: Intent, children: Sequence[OrderRecord]) -> Tally:
        mine = tuple(
            sorted(
                (c for c in children if c.intent_id == intent.intent_id),
                key=lambda c: c.child_index,
            )
        )
        live = tuple(c for c in mine if not c.state.is_terminal)
        filled = sum((c.filled_qty for c in mine), _ZERO)
        in_flight = sum((max(c.qty - c.filled_qty, _ZERO) for c in live), _ZERO)
        rejects = 0
        for child in reversed(mine):
            if child.state is not OrderState.REJECTED:
                break
            if not is_post_only_miss(child):
                rejects += 1
        return cls(
            children=mine,
            live=live,
            filled=filled,
            in_flight=in_flight,
            remaining=intent.qty - filled - in_flight,
            next_index=mine[-1].child_index + 1 if mine else 0,
            rejects=rejects,
        )


# --- params ---------------------------------------------------------------------------------


class _Params:
    """Reads an intent's algo_params; every accessor names the param in its error."""

    def __init__(self, algo: str, params: Mapping[str, float | int | str], known: set[str]):
        self.algo = algo
        self.params = params
        unknown = sorted(set(params) - known)
        if unknown:
            raise AlgoParamsError(
                f"{algo}: unknown param {unknown[0]!r} (known: {', '.join(sorted(known)) or '-'})"
            )

    def _raw(self, name: str) -> float | int | str | None:
        value = self.params.get(name)
        if isinstance(value, bool):
            raise AlgoParamsError(f"{self.algo}: param {name!r} must be a number, got {value!r}")
        return value

    def decimal(self, name: str, default: Decimal | None = None) -> Decimal:
        value = self._raw(name)
        if value is None:
            if default is None:
                raise AlgoParamsError(f"{self.algo}: param {name!r} is required")
            return default
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise AlgoParamsError(
                f"{self.algo}: param {name!r} must be a number, got {value!r}"
            ) from None
        if not number.is_finite() or number <= 0:
            raise AlgoParamsError(
                f"{self.algo}: param {name!r} must be a positive number, got {value!r}"
            )
        return number

    def integer(self, name: str, default: int | None, *, minimum: int, maximum: int) -> int:
        value = self._raw(name)
        if value is None:
            if default is None:
                raise AlgoParamsError(f"{self.algo}: param {name!r} is required")
            return default
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite() or number != number.to_integral_value():
            raise AlgoParamsError(f"{self.algo}: param {name!r} must be an integer, got {value!r}")
        if not minimum <= number <= maximum:
            raise AlgoParamsError(
                f"{self.algo}: param {name!r} must be between {minimum} and {maximum},"
                f" got {value!r}"
            )
        return int(number)

    def choice(self, name: str, default: str, options: tuple[str, ...]) -> str:
        value = self.params.get(name, default)
        if value not in options:
            raise AlgoParamsError(
                f"{self.algo}: param {name!r} must be one of {', '.join(options)}, got {value!r}"
            )
        return str(value)


_COMMON = {"max_children", "max_rejects"}


# --- the algos ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Base:
    intent: Intent
    start_ns: int
    instrument: Instrument
    max_children: int
    max_rejects: int

    # -- shared decisions

    @property
    def side(self) -> Side:
        return self.intent.side

    @property
    def cap(self) -> Decimal | None:
        """intent.limit_price on the tick, inwards (never a worse price than the intent's)."""
        if self.intent.limit_price is None:
            return None
        return _inward(self.side, self.intent.limit_price, self.instrument.tick_size)

    def tally(self, children: Sequence[OrderRecord]) -> Tally:
        return Tally.of(self.intent, children)

    def cancel(self, children: Sequence[OrderRecord]) -> list[Action]:
        tally = self.tally(children)
        actions: list[Action] = [
            CancelChild(client_order_id=c.client_order_id, reason="parent canceled")
            for c in tally.live
        ]
        complete = tally.filled >= self.intent.qty
        actions.append(Finished(reason="parent canceled", complete=complete))
        return actions

    def _prelude(self, tally: Tally) -> list[Action] | None:
        """The decisions every algo makes first: done, or giving up."""
        if tally.filled >= self.intent.qty:
            return [Finished(reason=f"filled {tally.filled} of {self.intent.qty}", complete=True)]
        if tally.rejects >= self.max_rejects:
            return self._give_up(tally, f"{tally.rejects} consecutive venue rejections")
        return None

    def _give_up(self, tally: Tally, reason: str) -> list[Action]:
        if tally.live:
            return [
                CancelChild(client_order_id=c.client_order_id, reason=f"giving up: {reason}")
                for c in tally.live
            ]
        return [Finished(reason=reason, complete=False)]

    def _stop(self, tally: Tally, reason: str) -> list[Action]:
        """Nothing more can be placed: wait for live children, then finish incomplete."""
        if tally.live:
            return []
        return [
            Finished(reason=f"{reason}; filled {tally.filled} of {self.intent.qty}", complete=False)
        ]

    def _room(self, tally: Tally, placed: int = 0) -> str | None:
        """Why no further child may be placed, or None."""
        if len(tally.children) + placed >= self.max_children:
            return f"max_children ({self.max_children}) reached"
        if tally.next_index + placed > MAX_CHILD_INDEX:
            return "child index space exhausted"
        return None

    def _too_small(self, qty: Decimal, price: Decimal | None) -> str | None:
        """Why qty cannot be a child at price (None when it can); price None: not checked."""
        inst = self.instrument
        if qty <= 0 or qty < inst.min_qty:
            return f"remainder {qty} below min_qty {inst.min_qty}"
        if price is not None and inst.min_notional > 0 and qty * price < inst.min_notional:
            return f"remainder {qty} at {price} below min_notional {inst.min_notional}"
        return None

    def _reference_price(self, market: MarketView, limit: Decimal | None) -> Decimal | None:
        """The price a child would trade at, for the min_notional check."""
        if limit is not None:
            return limit
        far = market.ask if self.side is Side.BUY else market.bid
        if far is not None:
            return far
        if self.intent.limit_price is not None:
            return self.intent.limit_price
        if self.intent.reference_price > 0:
            return Decimal(str(self.intent.reference_price))
        return None

    def _far(self, market: MarketView) -> Decimal | None:
        return market.ask if self.side is Side.BUY else market.bid

    def _near(self, market: MarketView) -> Decimal | None:
        return market.bid if self.side is Side.BUY else market.ask

    def _taker_terms(self) -> tuple[OrderType, Decimal | None, TimeInForce]:
        """How an algo takes liquidity: MARKET, or LIMIT IOC at the cap."""
        cap = self.cap
        if cap is None:
            return OrderType.MARKET, None, TimeInForce.GTC
        return OrderType.LIMIT, cap, TimeInForce.IOC

    def _intent_terms(self) -> tuple[OrderType, Decimal | None, TimeInForce]:
        """The intent's own order type, price and tif; a MARKET intent with a limit_price is a
        marketable limit (LIMIT IOC at the cap), so the cap holds."""
        intent = self.intent
        if intent.order_type is OrderType.MARKET:
            if intent.limit_price is None:
                return OrderType.MARKET, None, intent.time_in_force
            return self._taker_terms()
        return intent.order_type, intent.limit_price, intent.time_in_force


@dataclass(frozen=True, slots=True)
class Direct(_Base):
    """One child, index 0, exactly the intent's order; finished when it ends."""

    def step(
        self, *, now_ns: int, market: MarketView, children: Sequence[OrderRecord]
    ) -> list[Action]:
        tally = self.tally(children)
        if not tally.children:
            order_type, price, tif = self._intent_terms()
            qty = floor_to(self.intent.qty, self.instrument.lot_size)
            small = self._too_small(qty, self._reference_price(market, price))
            if small is not None:
                return [Finished(reason=small, complete=False)]
            return [
                PlaceChild(
                    child_index=0,
                    order_type=order_type,
                    qty=qty,
                    limit_price=price,
                    time_in_force=tif,
                    reason="direct",
                )
            ]
        if tally.filled >= self.intent.qty:
            return [Finished(reason=f"filled {tally.filled} of {self.intent.qty}", complete=True)]
        if tally.live:
            return []
        last = tally.children[-1]
        return [
            Finished(
                reason=f"child {last.child_index} ended {last.state.value}"
                f" with {tally.filled} of {self.intent.qty} filled",
                complete=False,
            )
        ]


@dataclass(frozen=True, slots=True)
class Split(_Base):
    """Children of at most max_child_qty, up to max_concurrent live at once."""

    max_child_qty: Decimal
    max_concurrent: int

    def step(
        self, *, now_ns: int, market: MarketView, children: Sequence[OrderRecord]
    ) -> list[Action]:
        tally = self.tally(children)
        done = self._prelude(tally)
        if done is not None:
            return done
        order_type, price, tif = self._intent_terms()
        ref = self._reference_price(market, price)
        actions: list[Action] = []
        remaining = tally.remaining
        stop: str | None = None
        while len(tally.live) + len(actions) < self.max_concurrent:
            stop = self._room(tally, len(actions))
            if stop is not None:
                break
            qty = floor_to(min(self.max_child_qty, remaining), self.instrument.lot_size)
            stop = self._too_small(qty, ref)
            if stop is not None:
                break
            actions.append(
                PlaceChild(
                    child_index=tally.next_index + len(actions),
                    order_type=order_type,
                    qty=qty,
                    limit_price=price,
                    time_in_force=tif,
                    reason=f"split child of {qty}",
                )
            )
            remaining -= qty
        if actions or stop is None:
            return actions
        return self._stop(tally, stop)


@dataclass(frozen=True, slots=True)
class MakerFirst(_Base):
    """Post-only at the touch, re-quoted as the touch moves; cross after the timeout."""

    timeout_ns: int
    requote_ticks: int
    urgent: bool
    cross_retry_ns: int

    def step(
        self, *, now_ns: int, market: MarketView, children: Sequence[OrderRecord]
    ) -> list[Action]:
        tally = self.tally(children)
        done = self._prelude(tally)
        if done is not None:
            return done
        if self.urgent or now_ns >= self.start_ns + self.timeout_ns:
            return self._cross(tally, now_ns=now_ns, market=market)
        return self._quote(tally, market=market)

    def _quote(self, tally: Tally, *, market: MarketView) -> list[Action]:
        near = self._near(market)
        if near is None:
            return []  # no view of the touch: wait (the timeout still runs)
        tick = self.instrument.tick_size
        price = _capped(self.side, _inward(self.side, near, tick), self.cap)
        far = self._far(market)
        if tally.live:
            return [
                CancelChild(client_order_id=c.client_order_id, reason=f"requote to {price}")
                for c in tally.live
                if c.order_type is OrderType.LIMIT_MAKER
                and c.state in (OrderState.OPEN, OrderState.PARTIALLY_FILLED)
                and c.limit_price is not None
                and c.limit_price != price
                and self._moved_away(c.limit_price, near)
            ]
        if far is not None and not _beyond(self.side, far, price):
            return []  # a locked or crossed view: the quote would take; wait for the market
        last = tally.children[-1] if tally.children else None
        if (
            last is not None
            and is_post_only_miss(last)
            and last.limit_price == price
            and market.ts_ns <= last.updated_ts_ns
        ):
            return []  # rejected at this very price and the view is no newer: wait
        stop = self._room(tally)
        if stop is not None:
            return self._stop(tally, stop)
        qty = floor_to(tally.remaining, self.instrument.lot_size)
        small = self._too_small(qty, price)
        if small is not None:
            return self._stop(tally, small)
        return [
            PlaceChild(
                child_index=tally.next_index,
                order_type=OrderType.LIMIT_MAKER,
                qty=qty,
                limit_price=price,
                time_in_force=TimeInForce.GTC,
                reason=f"maker at touch {price}",
            )
        ]

    def _moved_away(self, ours: Decimal, near: Decimal) -> bool:
        distance = near - ours if self.side is Side.BUY else ours - near
        return distance >= self.requote_ticks * self.instrument.tick_size

    def _cross(self, tally: Tally, *, now_ns: int, market: MarketView) -> list[Action]:
        if tally.live:
            return [
                CancelChild(client_order_id=c.client_order_id, reason="maker timeout: cross")
                for c in tally.live
                if c.order_type is OrderType.LIMIT_MAKER
            ]
        order_type, price, tif = self._taker_terms()
        far = self._far(market)
        if price is None and far is None:
            return []  # no market data and no cap: never a blind market order
        if price is not None and far is not None and _beyond(self.side, far, price):
            return []  # the market is beyond the cap: an IOC would die; wait
        last_cross = next(
            (c for c in reversed(tally.children) if c.order_type is not OrderType.LIMIT_MAKER),
            None,
        )
        if last_cross is not None and now_ns < last_cross.updated_ts_ns + self.cross_retry_ns:
            return []
        stop = self._room(tally)
        if stop is not None:
            return self._stop(tally, stop)
        qty = floor_to(tally.remaining, self.instrument.lot_size)
        small = self._too_small(qty, self._reference_price(market, price))
        if small is not None:
            return self._stop(tally, small)
        why = "urgent" if self.urgent else "maker timeout"
        return [
            PlaceChild(
                child_index=tally.next_index,
                order_type=order_type,
                qty=qty,
                limit_price=price,
                time_in_force=tif,
                reason=f"{why}: cross",
            )
        ]


@dataclass(frozen=True, slots=True)
class Twap(_Base):
    """Equal slices over duration_ms; a missed slice is caught up by the next."""

    duration_ns: int
    slices: int

    def due_ns(self, k: int) -> int:
        return self.start_ns + k * self.duration_ns // self.slices

    def slice_at(self, now_ns: int) -> int:
        """The latest slice (or catch-up period) due at now_ns; -1 before the start."""
        elapsed = now_ns - self.start_ns
        if elapsed < 0:
            return -1
        k = elapsed * self.slices // self.duration_ns
        while self.due_ns(k + 1) <= now_ns:
            k += 1
        return k

    def target(self, k: int) -> Decimal:
        share = self.intent.qty * min(k + 1, self.slices) / self.slices
        return floor_to(share, self.instrument.lot_size)

    def step(
        self, *, now_ns: int, market: MarketView, children: Sequence[OrderRecord]
    ) -> list[Action]:
        tally = self.tally(children)
        done = self._prelude(tally)
        if done is not None:
            return done
        lot = self.instrument.lot_size
        order_type, price, tif = self._taker_terms()
        ref = self._reference_price(market, price)
        small = self._too_small(floor_to(self.intent.qty - tally.filled, lot), ref)
        if small is not None:
            return self._stop(tally, small)  # nothing left that the venue would take
        k = self.slice_at(now_ns)
        if k < 0:
            return []
        last = tally.children[-1] if tally.children else None
        if last is not None and last.created_ts_ns >= self.due_ns(k):
            return []  # this slice already has its child
        if price is None and self._far(market) is None:
            return []  # no market data and no cap: never a blind market order
        qty = floor_to(self.target(k) - tally.filled - tally.in_flight, lot)
        if self._too_small(qty, ref) is not None:
            return []  # ahead of schedule, or the shortfall is not worth an order yet
        stop = self._room(tally)
        if stop is not None:
            return self._stop(tally, stop)
        label = f"slice {k + 1}/{self.slices}" if k < self.slices else "catch-up"
        return [
            PlaceChild(
                child_index=tally.next_index,
                order_type=order_type,
                qty=qty,
                limit_price=price,
                time_in_force=tif,
                reason=f"twap {label}",
            )
        ]


# --- construction ---------------------------------------------------------------------------


def _check_instrument(instrument: Instrument) -> None:
    for name in ("tick_size", "lot_size"):
        value: Decimal = getattr(instrument, name)
        if not value.is_finite() or value <= 0:
            raise AlgoParamsError(f"instrument {name} must be positive, got {value}")
    for name in ("min_qty", "min_notional"):
        value = getattr(instrument, name)
        if not value.is_finite() or value < 0:
            raise AlgoParamsError(f"instrument {name} must not be negative, got {value}")


def make_algo(intent: Intent, *, start_ns: int, instrument: Instrument) -> Algo:
    """The algo of an intent (dispatching on intent.algo); raises AlgoParamsError."""
    _check_instrument(instrument)
    name = intent.algo or "direct"
    if intent.action != "new":
        raise AlgoParamsError(f"{name}: only a new-order intent has an algo, got {intent.action}")
    if not intent.qty.is_finite() or intent.qty <= 0:
        raise AlgoParamsError(f"{name}: intent qty must be positive, got {intent.qty}")
    if intent.limit_price is not None and (
        not intent.limit_price.is_finite() or intent.limit_price <= 0
    ):
        raise AlgoParamsError(
            f"{name}: intent limit_price must be positive, got {intent.limit_price}"
        )
    needs_price = intent.order_type in (OrderType.LIMIT, OrderType.LIMIT_MAKER)
    if intent.algo in ("", "split") and needs_price and intent.limit_price is None:
        raise AlgoParamsError(f"{name}: a {intent.order_type} intent needs limit_price")

    known: set[str] = set() if intent.algo == "" else set(_COMMON)
    extra = {
        "": set[str](),
        "split": {"max_child_qty", "max_concurrent"},
        "maker_first": {"timeout_ms", "requote_ticks", "urgency", "cross_retry_ms"},
        "twap": {"duration_ms", "slices"},
    }.get(intent.algo)
    if extra is None:
        raise AlgoParamsError(f"unknown algo {intent.algo!r}")
    params = _Params(name, intent.algo_params, known | extra)
    max_children = params.integer(
        "max_children", DEFAULT_MAX_CHILDREN, minimum=1, maximum=MAX_CHILD_INDEX + 1
    )
    max_rejects = params.integer(
        "max_rejects", DEFAULT_MAX_REJECTS, minimum=1, maximum=MAX_CHILD_INDEX + 1
    )
    common = (intent, start_ns, instrument, max_children, max_rejects)
    if intent.algo == "":
        return Direct(*common)
    if intent.algo == "split":
        max_child_qty = floor_to(params.decimal("max_child_qty"), instrument.lot_size)
        if max_child_qty <= 0 or max_child_qty < instrument.min_qty:
            raise AlgoParamsError(
                f"split: param 'max_child_qty' on the lot ({max_child_qty}) is below the"
                f" instrument's min_qty {instrument.min_qty} / lot_size {instrument.lot_size}"
            )
        max_concurrent = params.integer("max_concurrent", 1, minimum=1, maximum=1_000)
        return Split(*common, max_child_qty=max_child_qty, max_concurrent=max_concurrent)
    if intent.algo == "maker_first":
        ms = 1_000_000
        return MakerFirst(
            *common,
            timeout_ns=params.integer("timeout_ms", 5_000, minimum=0, maximum=86_400_000) * ms,
            requote_ticks=params.integer("requote_ticks", 1, minimum=1, maximum=1_000_000),
            urgent=params.choice("urgency", "normal", ("normal", "urgent")) == "urgent",
            cross_retry_ns=params.integer("cross_retry_ms", 1_000, minimum=0, maximum=3_600_000)
            * ms,
        )
    duration_ms = params.integer("duration_ms", None, minimum=1, maximum=7 * 86_400_000)
    slices = params.integer("slices", 10, minimum=1, maximum=10_000)
    return Twap(*common, duration_ns=duration_ms * 1_000_000, slices=slices)


__all__ = [
    "DEFAULT_MAX_CHILDREN",
    "DEFAULT_MAX_REJECTS",
    "Action",
    "Algo",
    "CancelChild",
    "Direct",
    "Finished",
    "Instrument",
    "MakerFirst",
    "MarketView",
    "PlaceChild",
    "Split",
    "Tally",
    "Twap",
    "child_order",
    "floor_to",
    "is_post_only_miss",
    "make_algo",
]
