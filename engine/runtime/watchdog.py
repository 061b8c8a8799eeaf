"""Event-loop lag watchdog behind /livez: a blocked loop is not alive, whatever else is true."""

from __future__ import annotations

import asyncio

from engine.core.clock import Clock


class LoopWatchdog:
    def __init__(self, clock: Clock, *, interval_ms: int = 100, fail_after_ms: int = 2_000) -> None:
        self._clock = clock
        self._interval_s = interval_ms / 1000
        self._fail_after_ns = fail_after_ms * 1_000_000
        self.last_beat_ns = clock.monotonic_ns()
        self.lag_ms = 0.0
        self.max_lag_ms = 0.0

    async def run(self, on_lag: object = None) -> None:
        while True:
            before = self._clock.monotonic_ns()
            await asyncio.sleep(self._interval_s)
            now = self._clock.monotonic_ns()
            self.lag_ms = max(0.0, (now - before) / 1e6 - self._interval_s * 1000)
            self.max_lag_ms = max(self.max_lag_ms, self.lag_ms)
            self.last_beat_ns = now
            if callable(on_lag):
                on_lag(self.lag_ms / 1000)

    def alive(self) -> tuple[bool, str]:
        silent_ns = self._clock.monotonic_ns() - self.last_beat_ns
        if silent_ns > self._fail_after_ns:
            return False, f"event loop silent for {silent_ns / 1e6:.0f} ms"
        if self.lag_ms * 1_000_000 > self._fail_after_ns:
            return False, f"event loop lag {self.lag_ms:.0f} ms"
        return True, f"lag {self.lag_ms:.1f} ms"
