"""Clocks are injected everywhere so that replay and tests drive the same classes."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time_ns(self) -> int:
        """Wall-clock time in ns since the epoch (comparable across processes)."""
        ...

    def monotonic_ns(self) -> int:
        """Monotonic time in ns (for durations within one process)."""
        ...


class LiveClock:
    def time_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()


class TestClock:
    """A clock that moves only when told to."""

    __test__ = False  # not a pytest test class

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self._wall_ns = start_ns
        self._mono_ns = 0

    def time_ns(self) -> int:
        return self._wall_ns

    def monotonic_ns(self) -> int:
        return self._mono_ns

    def advance_ns(self, delta_ns: int) -> None:
        if delta_ns < 0:
            raise ValueError("a clock cannot go backwards")
        self._wall_ns += delta_ns
        self._mono_ns += delta_ns

    def advance_ms(self, delta_ms: float) -> None:
        self.advance_ns(int(delta_ms * 1_000_000))
