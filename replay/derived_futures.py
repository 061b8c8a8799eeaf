"""Futures streams the replay derives: `<sym>@markPrice@1s`, `<sym>@markPrice` (every 3 s) and
`<sym>@forceOrder`.

Mark price updates come from `MarkPriceModel` (replay/mark_price.py), pushed when a recorded
quote or trade moves event time past the next push; each carries `"derived":true`, an extra key
Binance does not send and clients ignore, so that no one mistakes them for recorded data.
`forceOrder` comes from recorded trades Binance marks `X: LIQUIDATION` (the taker of such a trade
is the liquidated position's closing order), and from the simulator's own liquidations.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from replay.binance import TradeEvent
from replay.mark_price import MarkPrice, MarkPriceModel

__all__ = ["FuturesStreams", "force_order_event", "mark_price_event"]

_encode = msgspec.json.Encoder().encode
_PUSH_MS = (("@markPrice@1s", 1000), ("@markPrice", 3000))


def mark_price_event(mark: MarkPrice) -> bytes:
    """A `markPriceUpdate` as USD-M and COIN-M send it (`P`: estimated settle price)."""
    return _encode(
        {
            "e": "markPriceUpdate",
            "E": mark.event_ms,
            "s": mark.symbol,
            "p": f"{mark.mark:.8f}",
            "i": f"{mark.index:.8f}",
            "P": f"{mark.index:.8f}",
            "r": f"{mark.funding_rate:.8f}",
            "T": mark.next_funding_ms,
            "derived": True,
        }
    )


def force_order_event(
    *, symbol: str, side: str, qty: str, price: str, avg_price: str, event_ms: int, trade_ms: int
) -> bytes:
    """A `forceOrder` (liquidation order) event: an IOC limit order, filled."""
    return _encode(
        {
            "e": "forceOrder",
            "E": event_ms,
            "o": {
                "s": symbol,
                "S": side,
                "o": "LIMIT",
                "f": "IOC",
                "q": qty,
                "p": price,
                "ap": avg_price,
                "X": "FILLED",
                "l": qty,
                "z": qty,
                "T": trade_ms,
            },
        }
    )


class FuturesStreams:
    def __init__(self, model: MarkPriceModel | None = None) -> None:
        self.model = model or MarkPriceModel()
        self._next_push: dict[str, int] = {}
        """stream name -> the event time of its next push"""
        self.pushed = 0

    def on_quote(self, symbol: str, bid: float, ask: float) -> None:
        self.model.on_quote(symbol, bid, ask)

    def on_trade(self, trade: TradeEvent, wanted: Callable[[str], bool]) -> list[tuple[str, bytes]]:
        self.model.on_trade(trade.s, float(trade.p))
        if trade.X != "LIQUIDATION":
            return []
        stream = f"{trade.s.lower()}@forceOrder"
        if not wanted(stream):
            return []
        return [
            (
                stream,
                force_order_event(
                    symbol=trade.s,
                    side="SELL" if trade.m else "BUY",
                    qty=trade.q,
                    price=trade.p,
                    avg_price=trade.p,
                    event_ms=trade.E,
                    trade_ms=trade.T,
                ),
            )
        ]

    def due(
        self, symbol: str, event_ms: int, wanted: Callable[[str], bool]
    ) -> list[tuple[str, MarkPrice]]:
        """Mark prices due at `event_ms` for the streams someone wants (the caller maps their
        times onto its clock and encodes them with `mark_price_event`)."""
        out: list[tuple[str, MarkPrice]] = []
        lower = symbol.lower()
        mark: MarkPrice | None = None
        for suffix, every_ms in _PUSH_MS:
            stream = lower + suffix
            if not wanted(stream) or self._next_push.get(stream, 0) > event_ms:
                continue
            if mark is None:
                mark = self.model.mark(symbol, event_ms)
                if mark is None:
                    return out
            self._next_push[stream] = event_ms - event_ms % every_ms + every_ms
            out.append((stream, mark))
        self.pushed += len(out)
        return out
