"""The clocks plumbing needs, as protocols: callers pass their own (the engine its injected
clocks, tests a clock that moves only when told), so nothing here reads the time by itself."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["MonotonicClock", "SystemClock", "WallAndMonotonicClock"]


class MonotonicClock(Protocol):
    def monotonic_ns(self) -> int:
        """Monotonic time in ns: for durations within one process."""
        ...


class WallAndMonotonicClock(MonotonicClock, Protocol):
    def time_ns(self) -> int:
        """Wall-clock time in ns since the epoch: for stamps other processes compare."""
        ...


class SystemClock:
    """The process's real clocks."""

    def time_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()
