"""Streams derived from replayed trades: `<sym>@ticker`, `<sym>@miniTicker`, `<sym>@aggTrade`.

Recordings rarely carry the 24-hour ticker streams, but clients ask for them (ccxt.pro's
watch_ticker subscribes to `@ticker`). We compute them from the trades being replayed: rolling
24-hour statistics, pushed at most once per second of event time, with the window advancing in
one-second steps (the exchange's window slides per trade; ours keeps memory bounded).
aggTrade is emitted one per trade (aggregate id = trade id); Binance may aggregate several fills
of one taker order into one event, which the recording cannot tell us.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from replay.binance import TradeEvent
from replay.lane.state import LaneState
from replay.stream_messages import decode_quote

DAY_MS = 86_400_000
_encode = msgspec.json.Encoder().encode


def _fmt(value: float) -> str:
    return f"{value:.8f}"


@dataclass
class _Bucket:
    """One second of trades."""

    second: int
    open: float
    high: float
    low: float
    volume: float = 0.0
    quote_volume: float = 0.0
    count: int = 0
    first_id: int = 0
    last_id: int = 0


@dataclass
class _Rolling:
    """24-hour statistics over one-second buckets: memory is bounded by the window (86,400
    buckets per symbol), not by the number of trades or the length of the recording."""

    buckets: deque[_Bucket] = field(default_factory=deque)
    highs: deque[tuple[int, float]] = field(default_factory=deque)
    lows: deque[tuple[int, float]] = field(default_factory=deque)
    volume: float = 0.0
    quote_volume: float = 0.0
    count: int = 0
    before_window: float | None = None
    last_qty: float = 0.0
    next_push_ms: int = 0
    evicted_at_s: int = -1
    """The second of the latest eviction (an older or equal second cannot evict more)."""

    def add(self, time_ms: int, price: float, qty: float, trade_id: int) -> None:
        # every trade of a replay passes here: comparisons instead of max()/min() calls, and the
        # window is evicted only when a new second starts (the horizon moves only then)
        second = time_ms // 1000
        buckets = self.buckets
        bucket = buckets[-1] if buckets else None
        if bucket is None or bucket.second != second:
            bucket = _Bucket(second, price, price, price, first_id=trade_id)
            buckets.append(bucket)
        if price > bucket.high:
            bucket.high = price
        if price < bucket.low:
            bucket.low = price
        bucket.volume += qty
        bucket.quote_volume += qty * price
        bucket.count += 1
        bucket.last_id = trade_id
        self.volume += qty
        self.quote_volume += qty * price
        self.count += 1
        self.last_qty = qty
        highs = self.highs
        while highs and highs[-1][1] <= price:
            highs.pop()
        highs.append((second, price))
        lows = self.lows
        while lows and lows[-1][1] >= price:
            lows.pop()
        lows.append((second, price))
        if second > self.evicted_at_s:
            self.evicted_at_s = second
            self._evict(second - DAY_MS // 1000)

    def _evict(self, horizon_s: int) -> None:
        while self.buckets and self.buckets[0].second < horizon_s:
            old = self.buckets.popleft()
            self.volume -= old.volume
            self.quote_volume -= old.quote_volume
            self.count -= old.count
            self.before_window = old.open
        while self.highs and self.highs[0][0] < horizon_s:
            self.highs.popleft()
        while self.lows and self.lows[0][0] < horizon_s:
            self.lows.popleft()


@functools.lru_cache(maxsize=1024)
def _stream_names(symbol: str) -> tuple[str, str, str]:
    """aggTrade, ticker and miniTicker stream names: formatted once per symbol, not per trade."""
    lower = symbol.lower()
    return f"{lower}@aggTrade", f"{lower}@ticker", f"{lower}@miniTicker"


class DerivedStreams:
    def __init__(self, push_interval_ms: int = 1000) -> None:
        self.push_interval_ms = push_interval_ms
        self._rolling: dict[str, _Rolling] = {}
        self._quotes: dict[str, bytes] = {}
        """The latest bookTicker data per symbol, decoded only when a ticker is pushed."""

    def on_quote(self, symbol: str, data: bytes) -> None:
        self._quotes[symbol] = data

    def share_with_lane(self, state: LaneState) -> None:
        """The compiled lane stores quotes and adds trades to the 24h statistics in place; a
        trade whose aggTrade stream is wanted is the Python path's (after the feed shared its
        subscriptions)."""
        state.quotes = self._quotes
        state.rolling = self._rolling
        state.busy.update(s for s in self._rolling if self.agg_trade_stream(s) in state.subscribed)

    def quotes(self) -> dict[str, bytes]:
        return self._quotes

    def rolling_by_symbol(self) -> dict[str, _Rolling]:
        return self._rolling

    @staticmethod
    def agg_trade_stream(symbol: str) -> str:
        return _stream_names(symbol)[0]

    def on_trade(self, trade: TradeEvent, wanted: Callable[[str], bool]) -> list[tuple[str, bytes]]:
        symbol = trade.s
        rolling = self._rolling.get(symbol)
        if rolling is None:
            rolling = self._rolling[symbol] = _Rolling()
        names = _stream_names(symbol)
        rolling.add(trade.T, float(trade.p), float(trade.q), trade.t)
        agg_trade = names[0]
        due = rolling.next_push_ms <= trade.E
        if not due and not wanted(agg_trade):
            return []
        out: list[tuple[str, bytes]] = []
        if wanted(agg_trade):
            out.append(
                (
                    agg_trade,
                    _encode(
                        {
                            "e": "aggTrade",
                            "E": trade.E,
                            "s": symbol,
                            "a": trade.t,
                            "p": trade.p,
                            "q": trade.q,
                            "f": trade.t,
                            "l": trade.t,
                            "T": trade.T,
                            "m": trade.m,
                            "M": True,
                        }
                    ),
                )
            )
        if due:
            rolling.next_push_ms = trade.E + self.push_interval_ms
            price = float(trade.p)
            if wanted(names[1]):
                out.append((names[1], self._ticker(symbol, trade.E, price, rolling)))
            if wanted(names[2]):
                out.append((names[2], self._mini(symbol, trade.E, price, rolling)))
        return out

    def _ticker(self, symbol: str, event_ms: int, last: float, rolling: _Rolling) -> bytes:
        first = rolling.buckets[0]
        first_time, open_price, first_id = first.second * 1000, first.open, first.first_id
        raw_quote = self._quotes.get(symbol)
        quote = None
        if raw_quote:
            try:
                quote = decode_quote(raw_quote)
            except (msgspec.DecodeError, msgspec.ValidationError):
                quote = None  # quotes are stored undecoded: a malformed one means no quote
        change = last - open_price
        weighted = rolling.quote_volume / rolling.volume if rolling.volume > 0 else last
        return _encode(
            {
                "e": "24hrTicker",
                "E": event_ms,
                "s": symbol,
                "p": _fmt(change),
                "P": f"{change / open_price * 100:.3f}",
                "w": _fmt(weighted),
                "x": _fmt(rolling.before_window or open_price),
                "c": _fmt(last),
                "Q": _fmt(rolling.last_qty),
                "b": quote.b if quote else _fmt(last),
                "B": quote.B if quote else _fmt(0.0),
                "a": quote.a if quote else _fmt(last),
                "A": quote.A if quote else _fmt(0.0),
                "o": _fmt(open_price),
                "h": _fmt(rolling.highs[0][1]),
                "l": _fmt(rolling.lows[0][1]),
                "v": _fmt(rolling.volume),
                "q": _fmt(rolling.quote_volume),
                "O": max(first_time, event_ms - DAY_MS),
                "C": event_ms,
                "F": first_id,
                "L": rolling.buckets[-1].last_id,
                "n": rolling.count,
            }
        )

    def _mini(self, symbol: str, event_ms: int, last: float, rolling: _Rolling) -> bytes:
        return _encode(
            {
                "e": "24hrMiniTicker",
                "E": event_ms,
                "s": symbol,
                "c": _fmt(last),
                "o": _fmt(rolling.buckets[0].open),
                "h": _fmt(rolling.highs[0][1]),
                "l": _fmt(rolling.lows[0][1]),
                "v": _fmt(rolling.volume),
                "q": _fmt(rolling.quote_volume),
            }
        )
