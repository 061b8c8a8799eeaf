"""Per-stream staleness, measured from local receive time (never exchange timestamps).

Each stream has its own threshold: a trade stream may be quiet for a minute while the book
updates ten times a second, and a quiet stream must not cause a reconnect that a busy one would.
"""

from __future__ import annotations

from collections.abc import Mapping


class StalenessTracker:
    def __init__(self, *, default_ms: int, per_kind_ms: Mapping[str, int] | None = None) -> None:
        self._default_ns = default_ms * 1_000_000
        self._per_kind_ns = {k: v * 1_000_000 for k, v in (per_kind_ms or {}).items()}
        self._last_ns: dict[tuple[str, str], int] = {}

    def threshold_ns(self, kind: str) -> int:
        return self._per_kind_ns.get(kind, self._default_ns)

    def seen(self, symbol: str, kind: str, recv_mono_ns: int) -> None:
        self._last_ns[(symbol, kind)] = recv_mono_ns

    def forget(self) -> None:
        self._last_ns.clear()

    def age_ns(self, symbol: str, kind: str, now_mono_ns: int) -> int | None:
        last = self._last_ns.get((symbol, kind))
        return None if last is None else now_mono_ns - last

    def symbol_age_ns(self, symbol: str, now_mono_ns: int) -> int | None:
        """Age of the freshest message of any kind for a symbol."""
        ages = [now_mono_ns - t for (s, _), t in self._last_ns.items() if s == symbol]
        return min(ages) if ages else None

    def stale(self, now_mono_ns: int, kinds: Mapping[str, tuple[str, ...]]) -> list[str]:
        """Streams ("SYMBOL/kind") that are stale or never seen; kinds maps symbol -> kinds."""
        out = []
        for symbol, symbol_kinds in kinds.items():
            for kind in symbol_kinds:
                age = self.age_ns(symbol, kind, now_mono_ns)
                if age is None or age > self.threshold_ns(kind):
                    out.append(f"{symbol}/{kind}")
        return out
