"""Futures diff-depth streams at the rates a recording lacks, conflated from the faster one it
holds: a recording of `<sym>@depth@0ms` also serves `@depth@100ms`, `@depth` (250 ms) and
`@depth@500ms`, as Binance derives them from the same book.

One window per rate, aligned to multiples of the rate in event time (`E`). The diffs of a window
merge into one event: `U` of its first diff, `u` and `E`/`T` of its last, `pu` of its first (the
final id of the event before it: the chain a client checks, pu == the previous event's u, holds
because the recorded chain is continuous), each price level at its last quantity. A window is
pushed when the first diff of a later window arrives (a window with no diff pushes nothing, as
Binance sends no empty update), or early when a diff breaks the recorded chain (the gap then
shows in the conflated stream too); a disconnect or a seek drops the open windows. Each pushed
event carries `"derived": true`. Pure: the replay feeds recorded diffs in and serves what comes
out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from replay.depth_sync import DepthDiff

__all__ = ["DepthConflator", "depth_rate_ms"]

_encode = msgspec.json.Encoder().encode
RATES_MS = (100, 250, 500)
"""The futures diff-depth rates Binance serves (`@depth` is 250 ms)."""


def depth_rate_ms(stream: str) -> int | None:
    """The update rate of a futures diff-depth stream name, None for any other stream."""
    _, _, kind = stream.partition("@")
    if kind == "depth":
        return 250
    if kind.startswith("depth@") and kind.endswith("ms") and kind[6:-2].isdigit():
        return int(kind[6:-2])
    return None


def _stream(symbol: str, rate_ms: int) -> str:
    lower = symbol.lower()
    return f"{lower}@depth" if rate_ms == 250 else f"{lower}@depth@{rate_ms}ms"


def _number(value: float) -> str:
    text = f"{value:.8f}".rstrip("0").rstrip(".")
    return text or "0"


@dataclass
class _Window:
    index: int
    first: DepthDiff
    last: DepthDiff
    transaction_ms: int
    pair: str | None
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)


class DepthConflator:
    """Per symbol: the recorded diff stream (the fastest seen) and the slower ones it serves."""

    def __init__(self) -> None:
        self._source: dict[str, int] = {}
        """symbol -> the rate of the recorded stream conflated from"""
        self._recorded: set[str] = set()
        """Stream names the recording holds: never derived."""
        self._windows: dict[str, _Window] = {}
        """derived stream -> its open window"""
        self.pushed = 0

    def on_diff(
        self,
        symbol: str,
        stream: str,
        diff: DepthDiff,
        *,
        details: Callable[[], tuple[int, str | None]],
        wanted: Callable[[str], bool],
    ) -> list[tuple[str, bytes]]:
        """Feed one recorded diff; the derived events whose windows it closes. `details` reads
        the diff's transaction time `T` and pair `ps` (COIN-M), asked only when a derived
        stream takes the diff."""
        rate = depth_rate_ms(stream)
        if rate is None:
            return []
        self._recorded.add(stream)
        source = self._source.setdefault(symbol, rate)
        if rate > source:
            return []  # a slower recorded stream beside the fastest: served as recorded
        if rate < source:  # a faster one appears: conflate from it from now on
            self._source[symbol] = source = rate
            prefix = f"{symbol.lower()}@"
            self._windows = {k: w for k, w in self._windows.items() if not k.startswith(prefix)}
        out: list[tuple[str, bytes]] = []
        read: tuple[int, str | None] | None = None
        for target in RATES_MS:
            name = _stream(symbol, target)
            if target <= source or name in self._recorded:
                continue
            window = self._windows.get(name)
            index = diff.event_ms // target
            broken = (
                window is not None and diff.previous_final_update_id != window.last.final_update_id
            )
            if window is not None and (window.index != index or broken):
                # a break in the recorded chain ends the window: merged across it, the event
                # would hide the gap from the client, whose book would be silently wrong
                out.append((name, self._event(symbol, window)))
                window = None
            if not wanted(name):
                self._windows.pop(name, None)
                continue
            if read is None:
                read = details()
            transaction_ms, pair = read
            if window is None:
                window = self._windows[name] = _Window(
                    index=index, first=diff, last=diff, transaction_ms=transaction_ms, pair=pair
                )
            window.last, window.transaction_ms = diff, transaction_ms
            for price, qty in diff.bids:
                window.bids[price] = qty
            for price, qty in diff.asks:
                window.asks[price] = qty
        self.pushed += len(out)
        return out

    def reset(self) -> None:
        """The recorded stream was cut (a disconnect, a seek): open windows are dropped."""
        self._windows.clear()

    @staticmethod
    def _event(symbol: str, window: _Window) -> bytes:
        body: dict[str, object] = {
            "e": "depthUpdate",
            "E": window.last.event_ms,
            "T": window.transaction_ms,
            "s": symbol,
        }
        if window.pair:
            body["ps"] = window.pair
        body.update(
            {
                "U": window.first.first_update_id,
                "u": window.last.final_update_id,
                "pu": window.first.previous_final_update_id,
                "b": [[_number(p), _number(q)] for p, q in window.bids.items()],
                "a": [[_number(p), _number(q)] for p, q in window.asks.items()],
                "derived": True,
            }
        )
        return _encode(body)
