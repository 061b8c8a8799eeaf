"""Exponential backoff with full jitter, for the recorder's reconnects and snapshot retries.

After n failures since the last healthy period the next delay is drawn uniformly from
[0, min(cap, base * 2**n)] ("Exponential Backoff And Jitter", AWS Architecture Blog): retries of
many recorders after one outage spread out instead of arriving at the venue together. The random
source can be injected, for tests that need the same delays twice.
"""

from __future__ import annotations

import random

__all__ = ["FullJitterBackoff"]

_MAX_DOUBLINGS = 64
"""Past this, base * 2**n is far beyond any cap (and 2.0**n would overflow near n = 1024)."""


class FullJitterBackoff:
    """`next_delay_ms()` after each failure, `reset()` once a connection has been healthy (the
    shape `plumbing.reconnecting_ws.connect` takes)."""

    def __init__(self, *, base_ms: float, cap_ms: float, rng: random.Random | None = None) -> None:
        if not 0 < base_ms <= cap_ms:
            raise ValueError(f"need 0 < base_ms <= cap_ms, got base {base_ms}, cap {cap_ms}")
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.failures = 0
        self._rng = rng or random.Random()

    def ceiling_ms(self) -> float:
        """The largest delay the next failure can get."""
        return min(self.cap_ms, self.base_ms * 2.0 ** min(self.failures, _MAX_DOUBLINGS))

    def next_delay_ms(self) -> float:
        delay = self._rng.uniform(0, self.ceiling_ms())
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
