"""Momentum taker: buy when the last trades moved up more than a threshold, sell when down."""

from __future__ import annotations

from collections import deque
from decimal import Decimal

import msgspec

from engine.config import Millis, MillisOrZero, NonNegativeFloat, Qty
from engine.core.messages import OrderType, Side, Trade
from engine.strategy.base import Strategy


class MomentumParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Checked field by field by `parse_config` (engine.config's constrained types): a NaN
    threshold would never trade and never say why, an infinite size would be an order risk must
    catch, a zero window would hold one trade and never see a move."""

    window_ms: Millis = 2_000
    threshold_bps: NonNegativeFloat = 2.0
    """0: any move in the window triggers; a huge threshold (1e9) never does."""
    order_qty: Qty = Decimal("0.002")
    max_position: Qty = Decimal("0.02")
    cooldown_ms: MillisOrZero = 1_500
    """0: no pause between orders on a symbol."""


class MomentumTaker(Strategy):
    kind = "momentum"
    Params = MomentumParams

    def __init__(self, ctx, params: MomentumParams) -> None:  # type: ignore[no-untyped-def]
        super().__init__(ctx, params)
        self.params: MomentumParams = params
        self._window: dict[str, deque[tuple[int, float]]] = {}
        self._last_order_ms: dict[str, int] = {}

    def on_trade(self, trade: Trade) -> None:
        window = self._window.setdefault(trade.symbol, deque())
        window.append((trade.exchange_ts_ms, trade.price))
        horizon = trade.exchange_ts_ms - self.params.window_ms
        while window and window[0][0] < horizon:
            window.popleft()
        if len(window) < 2:
            return
        if (
            trade.exchange_ts_ms - self._last_order_ms.get(trade.symbol, -(10**15))
            < self.params.cooldown_ms
        ):
            return
        first = window[0][1]
        move_bps = (trade.price - first) / first * 10_000
        position = self.ctx.position(trade.symbol)
        qty = self.params.order_qty
        if move_bps >= self.params.threshold_bps and position + qty <= self.params.max_position:
            side = Side.BUY
        elif move_bps <= -self.params.threshold_bps and position - qty >= -self.params.max_position:
            side = Side.SELL
        else:
            return
        self._last_order_ms[trade.symbol] = trade.exchange_ts_ms
        self.ctx.submit(symbol=trade.symbol, side=side, qty=qty, order_type=OrderType.MARKET)

    def snapshot(self) -> dict[str, object]:
        return {"last_order_ms": dict(self._last_order_ms)}

    def restore(self, state: dict[str, object]) -> None:
        last = state.get("last_order_ms", {})
        if isinstance(last, dict):
            self._last_order_ms = {str(k): int(v) for k, v in last.items()}
