"""Where a market falls: the first time a symbol's trade price drops by a given share below its
highest price of the seconds before. A flash-crash experiment seeks the replay to just before it,
so the crash is replayed where the recording has it instead of being imitated with a speed-up.

Pure: prices come in as (receive time ns, price), in receive-time order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import msgspec

from replay.recording import Record
from replay.stream_messages import classify

__all__ = ["Drop", "find_drop", "trade_prices"]


@dataclass(frozen=True, kw_only=True)
class Drop:
    high_ns: int
    """When the price stood at the high of the window the fall is measured from."""
    start_ns: int
    """When the fall began: the last price within a quarter of the threshold of the high."""
    low_ns: int
    """When the fall first reached the threshold."""
    high: float
    low: float

    @property
    def pct(self) -> float:
        return 100.0 * (self.high - self.low) / self.high

    def as_dict(self) -> dict[str, float | int]:
        return {
            "high_ns": self.high_ns,
            "start_ns": self.start_ns,
            "low_ns": self.low_ns,
            "high": self.high,
            "low": self.low,
            "drop_pct": round(self.pct, 4),
        }


def find_drop(
    prices: Iterable[tuple[int, float]], *, min_drop_pct: float, within_ns: int
) -> Drop | None:
    """The first point whose price is at least `min_drop_pct` below the highest price of the
    preceding `within_ns` (a sliding-window maximum), or None. Its start is the last point of
    that window still within a quarter of the threshold of the high: a market that drifts
    near its high and then gaps down starts falling where the gap does."""
    if not 0 < min_drop_pct < 100:
        raise ValueError("min_drop_pct must be in (0, 100)")
    if within_ns <= 0:
        raise ValueError("within_ns must be positive")
    keep = 1.0 - min_drop_pct / 100.0
    near = 1.0 - min_drop_pct / 400.0
    highs: deque[tuple[int, float]] = deque()  # prices decreasing from the left: the max first
    window: deque[tuple[int, float]] = deque()  # every point of the window, oldest first
    for t, price in prices:
        while highs and highs[0][0] < t - within_ns:
            highs.popleft()
        while window and window[0][0] < t - within_ns:
            window.popleft()
        while highs and highs[-1][1] <= price:
            highs.pop()
        highs.append((t, price))
        window.append((t, price))
        high_ns, high = highs[0]
        if price <= high * keep:
            start_ns = max(ts for ts, p in window if p >= high * near)
            return Drop(high_ns=high_ns, start_ns=start_ns, low_ns=t, high=high, low=price)
    return None


def trade_prices(records: Iterable[Record], symbol: str) -> Iterator[tuple[int, float]]:
    """(receive time, price) of every trade of `symbol` in recorded messages (raw or combined
    streams); anything else, including malformed lines, is skipped."""
    wanted = symbol.upper()
    for record in records:
        payload = record.payload
        if record.is_disconnect or b'"e":"trade"' not in payload:
            continue
        try:
            item = classify(payload)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            continue
        if item.kind == "trade" and item.symbol == wanted:
            yield record.recv_ns, float(item.event.p)  # type: ignore[union-attr]
