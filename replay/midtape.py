"""The replay's own mid over time: ground truth for slippage ("what was the market when the
intent was sent?") and for proving a market event happened (a flash crash was played).

The books are the replay's (`replay.market`), kept from the recording, never the engine's. The
replay's housekeeping samples every book every 20 ms and keeps a point when the mid moved; the
compiled fast lane applies diffs without calling back into Python, so sampling (rather than a
hook on every diff) is what sees both paths. Resolution: 20 ms of wall time (200 ms of market
at 10x). Bounded: past `max_points` the oldest go and `dropped` counts them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

Mid = Callable[[str], float | None]
"""A symbol's current mid from the replay's own book, None when the book is unknown."""


class MidTape:
    def __init__(self, symbols: list[str], mid: Mid, *, max_points: int = 500_000) -> None:
        self.symbols = list(symbols)
        self.mid = mid
        self.points: deque[tuple[str, int, float]] = deque(maxlen=max_points)
        self.dropped = 0
        self._last: dict[str, float] = {}

    def sample(self, now_ms: int) -> None:
        for symbol in self.symbols:
            mid = self.mid(symbol)
            if mid is None or mid == self._last.get(symbol):
                continue
            self._last[symbol] = mid
            if len(self.points) == self.points.maxlen:
                self.dropped += 1
            self.points.append((symbol, now_ms, mid))

    def since(self, since_ms: int, *, symbol: str | None = None) -> list[dict[str, Any]]:
        """Points at or after since_ms, plus the one in force at since_ms (so that the mid at
        any moment of the window can be read)."""
        out: list[dict[str, Any]] = []
        before: dict[str, tuple[str, int, float]] = {}
        for point in self.points:
            name, ts_ms, mid = point
            if symbol is not None and name != symbol:
                continue
            if ts_ms < since_ms:
                before[name] = point
                continue
            out.append({"symbol": name, "ts_ms": ts_ms, "mid": mid})
        earlier = [{"symbol": n, "ts_ms": t, "mid": m} for n, t, m in before.values()]
        return earlier + out
