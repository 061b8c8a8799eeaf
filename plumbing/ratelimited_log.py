"""Log a recurring problem once per kind, then at most once per interval with a count."""

from __future__ import annotations

from typing import Any

from plumbing.clock import MonotonicClock


class RateLimitedLog:
    def __init__(self, logger: Any, clock: MonotonicClock, *, interval_ms: int = 60_000) -> None:
        self._log = logger
        self._clock = clock
        self._interval_ns = interval_ms * 1_000_000
        self._last: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, kind: str, event: str, **fields: Any) -> None:
        now = self._clock.monotonic_ns()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval_ns:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        self._log.warning(event, kind=kind, suppressed_since_last=suppressed, **fields)
