"""Maker-style quoter: rest a limit buy at the best bid and a limit sell at the best ask, keep
them near the touch (cancel when the market moves away or they get old), lean out of the side
that would grow the position past its limit."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import msgspec

from engine.config import Millis, MillisOrZero, Qty
from engine.core.messages import BookTop, ExecutionReport, IntentDone, OrderType, Side
from engine.strategy.base import Strategy, quantize

_TERMINAL = {"FILLED", "CANCELED", "REJECTED", "EXPIRED"}


class QuoterParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Checked field by field by `parse_config` (engine.config's constrained types): a zero tick
    size would divide by zero on the first book, a NaN size would quote nonsense."""

    order_qty: Qty = Decimal("0.001")
    max_position: Qty = Decimal("0.01")
    tick_size: Qty = Decimal("0.01")
    requote_ticks: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 50
    max_quote_age_ms: Millis = 10_000
    min_quote_interval_ms: MillisOrZero = 1_000
    """At most one new quote per side per interval: the venue counts every order. 0: no pacing."""


class _Working(msgspec.Struct, kw_only=True):
    intent_id: str
    side: Side
    price: Decimal
    placed_ns: int
    cancel_sent: bool = False


class MakerQuoter(Strategy):
    kind = "quoter"
    Params = QuoterParams

    def __init__(self, ctx, params: QuoterParams) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ctx, params)
        self.params: QuoterParams = params
        self._working: dict[tuple[str, Side], _Working] = {}
        self._last_quote_ns: dict[tuple[str, Side], int] = {}

    def on_book(self, book: BookTop) -> None:
        if not book.bids or not book.asks:
            return
        touch = {Side.BUY: book.bids[0][0], Side.SELL: book.asks[0][0]}
        now = self.ctx.clock.time_ns()
        position = self.ctx.position(book.symbol)
        for side in (Side.BUY, Side.SELL):
            working = self._working.get((book.symbol, side))
            price = quantize(touch[side], self.params.tick_size)
            if working is not None:
                drift = abs(working.price - price) / self.params.tick_size
                too_old = now - working.placed_ns > self.params.max_quote_age_ms * 1_000_000
                if (drift > self.params.requote_ticks or too_old) and not working.cancel_sent:
                    working.cancel_sent = True
                    self.ctx.cancel(book.symbol, working.intent_id)
                continue
            last = self._last_quote_ns.get((book.symbol, side))
            if last is not None and now - last < self.params.min_quote_interval_ms * 1_000_000:
                continue
            after = position + (
                self.params.order_qty if side is Side.BUY else -self.params.order_qty
            )
            if abs(after) > self.params.max_position and abs(after) > abs(position):
                continue
            intent_id = self.ctx.submit(
                symbol=book.symbol,
                side=side,
                qty=self.params.order_qty,
                order_type=OrderType.LIMIT,
                limit_price=price,
            )
            self._working[(book.symbol, side)] = _Working(
                intent_id=intent_id, side=side, price=price, placed_ns=now
            )
            self._last_quote_ns[(book.symbol, side)] = now

    def on_order(self, report: ExecutionReport) -> None:
        key = (report.symbol, report.side)
        working = self._working.get(key)
        if report.state in _TERMINAL:
            if working is not None and working.intent_id == report.intent_id:
                del self._working[key]
        elif working is None and report.limit_price is not None:
            # placed after the last checkpoint (or by a previous run): ours to manage again
            self._working[key] = _Working(
                intent_id=report.intent_id,
                side=report.side,
                price=report.limit_price,
                placed_ns=report.ts_ns,
            )

    def on_intent_done(self, done: IntentDone) -> None:
        key = (done.symbol, done.side)
        working = self._working.get(key)
        if working is not None and working.intent_id == done.intent_id:
            del self._working[key]

    def snapshot(self) -> dict[str, Any]:
        return {
            "working": [
                {
                    "symbol": symbol,
                    "intent_id": w.intent_id,
                    "side": w.side.value,
                    "price": str(w.price),
                    "placed_ns": w.placed_ns,
                    "cancel_sent": w.cancel_sent,
                }
                for (symbol, _), w in sorted(self._working.items())
            ],
            "last_quote_ns": [
                [symbol, side.value, ns]
                for (symbol, side), ns in sorted(self._last_quote_ns.items())
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._working = {
            (w["symbol"], Side(w["side"])): _Working(
                intent_id=w["intent_id"],
                side=Side(w["side"]),
                price=Decimal(w["price"]),
                placed_ns=int(w["placed_ns"]),
                cancel_sent=bool(w["cancel_sent"]),
            )
            for w in state.get("working", [])
        }
        self._last_quote_ns = {
            (symbol, Side(side)): int(ns) for symbol, side, ns in state.get("last_quote_ns", [])
        }

    def on_denied(self, intent_id: str, reason: str) -> None:
        for key, working in list(self._working.items()):
            if working.intent_id == intent_id:
                del self._working[key]
