"""Per-stream staleness, measured from local receive time (never exchange timestamps).

Each stream has its own threshold, configured, or learned from the stream's own rhythm the way
TCP learns a retransmission timeout: smoothed inter-arrival gap plus four deviations, times a
multiplier, clamped. A depth stream pushing every 100 ms gets a sub-second threshold, and a
trade stream gets whatever its market gives. So a quiet stream never looks as broken as a busy
one that stopped.

Staleness of a stream is information (metrics, readiness). Whether it should cause a reconnect
is decided per kind by the caller: a silent trade stream is a quiet market, a silent 100 ms
depth stream is a broken connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass
class _Rhythm:
    last_ns: int
    gap_ns: float = 0.0
    deviation_ns: float = 0.0
    samples: int = 0

    def observe(self, recv_ns: int) -> None:
        if self.last_ns < 0:  # first message after a reconnect: no gap to learn from
            self.last_ns = recv_ns
            return
        gap = recv_ns - self.last_ns
        self.last_ns = recv_ns
        if gap <= 0:
            return
        if self.samples == 0:
            self.gap_ns, self.deviation_ns = gap, gap / 2
        else:
            self.deviation_ns += 0.25 * (abs(gap - self.gap_ns) - self.deviation_ns)
            self.gap_ns += 0.125 * (gap - self.gap_ns)
        self.samples += 1


class StalenessTracker:
    def __init__(
        self,
        *,
        default_ms: int,
        per_kind_ms: Mapping[str, int] | None = None,
        learn: bool = False,
        learned_min_ms: int = 250,
        learned_max_ms: int = 30_000,
        multiplier: float = 4.0,
        min_samples: int = 20,
    ) -> None:
        self._default_ns = default_ms * 1_000_000
        self._per_kind_ns = {k: v * 1_000_000 for k, v in (per_kind_ms or {}).items()}
        self._learn = learn
        self._learned_min_ns = learned_min_ms * 1_000_000
        self._learned_max_ns = learned_max_ms * 1_000_000
        self._multiplier = multiplier
        self._min_samples = min_samples
        self._rhythms: dict[tuple[str, str], _Rhythm] = {}

    def seen(self, symbol: str, kind: str, recv_mono_ns: int) -> None:
        rhythm = self._rhythms.get((symbol, kind))
        if rhythm is None:
            self._rhythms[(symbol, kind)] = _Rhythm(recv_mono_ns)
        else:
            rhythm.observe(recv_mono_ns)

    def forget(self) -> None:
        """After a reconnect: arrival times of the old connection say nothing of the new one;
        the learned rhythm is kept."""
        for rhythm in self._rhythms.values():
            rhythm.last_ns = -(10**18)

    def threshold_ns(self, symbol: str, kind: str) -> int:
        configured = self._per_kind_ns.get(kind)
        if configured is not None:
            return configured
        rhythm = self._rhythms.get((symbol, kind))
        if not self._learn or rhythm is None or rhythm.samples < self._min_samples:
            return self._default_ns
        learned = self._multiplier * (rhythm.gap_ns + 4 * rhythm.deviation_ns)
        return int(min(self._learned_max_ns, max(self._learned_min_ns, learned)))

    def age_ns(self, symbol: str, kind: str, now_mono_ns: int) -> int | None:
        rhythm = self._rhythms.get((symbol, kind))
        if rhythm is None or rhythm.last_ns < 0:
            return None
        return now_mono_ns - rhythm.last_ns

    def symbol_age_ns(self, symbol: str, now_mono_ns: int) -> int | None:
        """Age of the freshest message of any kind for a symbol."""
        ages = [
            now_mono_ns - r.last_ns
            for (s, _), r in self._rhythms.items()
            if s == symbol and r.last_ns >= 0
        ]
        return min(ages) if ages else None

    def stale(self, now_mono_ns: int, kinds: Mapping[str, tuple[str, ...]]) -> list[str]:
        """Streams ("SYMBOL/kind") that are stale or never seen; kinds maps symbol -> kinds."""
        out = []
        for symbol, symbol_kinds in kinds.items():
            for kind in symbol_kinds:
                age = self.age_ns(symbol, kind, now_mono_ns)
                if age is None or age > self.threshold_ns(symbol, kind):
                    out.append(f"{symbol}/{kind}")
        return out
