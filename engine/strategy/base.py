"""The Strategy API.

A strategy reacts to market data and to its own fills and emits intents through its context. It
performs no I/O: the strategy service feeds it and publishes what it emitted, so the same
strategy runs live, in replay and in tests with a test clock.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any, ClassVar

import msgspec

from engine.core.clock import Clock
from engine.core.futures import FundingTally
from engine.core.messages import (
    BookTop,
    ExecutionReport,
    Fill,
    Intent,
    IntentDone,
    MarkPrice,
    OrderType,
    Quote,
    Side,
    TimeInForce,
    Trade,
)
from engine.core.positions import PositionBook


class StrategyContext:
    """What a strategy can see and do. Intents are buffered until the callback returns."""

    def __init__(
        self, *, name: str, venue: str, clock: Clock, instance: str, contracts: bool = False
    ) -> None:
        self.name = name
        self.venue = venue
        self.clock = clock
        self._instance = instance
        self._seq = 0
        self.positions = PositionBook(contracts=contracts)
        self.quotes: dict[str, Quote] = {}
        self.books: dict[str, BookTop] = {}
        self.marks: dict[str, MarkPrice] = {}
        """Futures: the latest mark price and funding rate per symbol."""
        self.funding = FundingTally()
        """Futures: the funding our positions settled (once per venue record)."""
        self.emitted: list[Intent] = []
        self._correlation_id = ""
        self._tick_recv_ns = 0

    def set_trigger(self, *, correlation_id: str, tick_recv_ns: int) -> None:
        """The market event being handled: intents emitted now carry its ids and timestamp."""
        self._correlation_id = correlation_id
        self._tick_recv_ns = tick_recv_ns

    def position(self, symbol: str) -> Decimal:
        return self.positions.get(self.venue, symbol).qty

    def funding_rate(self, symbol: str) -> float | None:
        """Futures: the current funding rate (positive: longs pay shorts), None before any."""
        mark = self.marks.get(symbol)
        return None if mark is None else mark.funding_rate

    def funding_income(self, symbol: str) -> Decimal:
        """Futures: what funding brought on `symbol` so far (negative: it cost)."""
        return self.funding.income(symbol)

    def mid(self, symbol: str) -> float | None:
        quote = self.quotes.get(symbol)
        if quote is None or quote.bid_price <= 0 or quote.ask_price <= 0:
            return None
        return (quote.bid_price + quote.ask_price) / 2

    def _next_intent_id(self) -> str:
        self._seq += 1
        return f"{self.name}.{self._instance}.{self._seq}"

    def submit(
        self,
        *,
        symbol: str,
        side: Side,
        qty: Decimal,
        order_type: OrderType = OrderType.MARKET,
        limit_price: Decimal | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        reduce_only: bool = False,
    ) -> str:
        intent_id = self._next_intent_id()
        mid = self.mid(symbol)
        self.emitted.append(
            Intent(
                correlation_id=self._correlation_id or intent_id,
                intent_id=intent_id,
                source=self.name,
                venue=self.venue,
                symbol=symbol,
                side=side,
                qty=qty,
                order_type=order_type,
                limit_price=limit_price,
                time_in_force=time_in_force,
                reduce_only=reduce_only,
                created_ts_ns=self.clock.time_ns(),
                tick_recv_ts_ns=self._tick_recv_ns,
                reference_price=mid or 0.0,
            )
        )
        return intent_id

    def cancel(self, symbol: str, intent_id: str) -> str:
        cancel_id = self._next_intent_id()
        self.emitted.append(
            Intent(
                correlation_id=self._correlation_id or cancel_id,
                intent_id=cancel_id,
                source=self.name,
                venue=self.venue,
                symbol=symbol,
                action="cancel",
                cancel_intent_id=intent_id,
                created_ts_ns=self.clock.time_ns(),
                tick_recv_ts_ns=self._tick_recv_ns,
            )
        )
        return cancel_id

    def drain(self) -> list[Intent]:
        out, self.emitted = self.emitted, []
        return out


def quantize(value: float | Decimal, step: Decimal, rounding: str = ROUND_DOWN) -> Decimal:
    """Round to a multiple of step (tick size or lot size)."""
    units = (Decimal(repr(value)) / step).quantize(Decimal(1), rounding=rounding)
    return (units * step).normalize()


class Strategy:
    kind: ClassVar[str] = "base"
    Params: ClassVar[type[msgspec.Struct]]

    def __init__(self, ctx: StrategyContext, params: Any) -> None:
        self.ctx = ctx
        self.params = params

    def on_start(self) -> None:
        """Called once the strategy is subscribed."""

    def on_trade(self, trade: Trade) -> None:
        """A public trade."""

    def on_quote(self, quote: Quote) -> None:
        """Best bid/offer changed."""

    def on_book(self, book: BookTop) -> None:
        """The synchronised book changed (top levels)."""

    def on_fill(self, fill: Fill) -> None:
        """One of our orders traded (already applied to ctx.positions)."""

    def on_order(self, report: ExecutionReport) -> None:
        """One of our child orders changed state (at start, also every report still on the
        bus, so a strategy can adopt orders it placed after its last checkpoint)."""

    def on_intent_done(self, done: IntentDone) -> None:
        """Execution finished working one of our intents (every child order is terminal)."""

    def on_denied(self, intent_id: str, reason: str) -> None:
        """Risk refused one of our intents."""

    def on_timer(self, now_ns: int) -> None:
        """Called periodically (strategy.timer_interval_ms)."""

    def snapshot(self) -> dict[str, Any]:
        """State to checkpoint (JSON-able); restored with restore() after a restart. The
        service writes it to the bus every timer tick when it changed, and at stop."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint taken by snapshot()."""
