"""Exponential backoff with full jitter ("Exponential Backoff And Jitter", AWS Architecture Blog).

delay_n = uniform(0, min(cap, base * factor**n)). The random source is injected so that tests and
replays are deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Iterator


def full_jitter_delays_ms(
    *, base_ms: float, cap_ms: float, factor: float = 2.0, rng: random.Random | None = None
) -> Iterator[float]:
    if base_ms <= 0 or cap_ms < base_ms or factor < 1:
        raise ValueError("need 0 < base_ms <= cap_ms and factor >= 1")
    source = rng or random.Random()
    ceiling = base_ms
    while True:
        yield source.uniform(0, ceiling)
        ceiling = min(cap_ms, ceiling * factor)


class Backoff:
    """Stateful wrapper: `next_delay_ms()` after a failure, `reset()` after a healthy period."""

    def __init__(
        self,
        *,
        base_ms: float,
        cap_ms: float,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self._args = (base_ms, cap_ms, factor)
        self._rng = rng or random.Random()
        self.attempts = 0
        self._delays = full_jitter_delays_ms(
            base_ms=base_ms, cap_ms=cap_ms, factor=factor, rng=self._rng
        )

    def next_delay_ms(self) -> float:
        self.attempts += 1
        return next(self._delays)

    def reset(self) -> None:
        base_ms, cap_ms, factor = self._args
        self.attempts = 0
        self._delays = full_jitter_delays_ms(
            base_ms=base_ms, cap_ms=cap_ms, factor=factor, rng=self._rng
        )
