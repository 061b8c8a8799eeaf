"""The recorder's full-jitter backoff (replay.backoff)."""

from __future__ import annotations

import random

import pytest

from replay.backoff import FullJitterBackoff

pytestmark = pytest.mark.unit


def test_delays_stay_under_a_ceiling_that_doubles_up_to_the_cap() -> None:
    backoff = FullJitterBackoff(base_ms=100, cap_ms=1_000, rng=random.Random(7))
    ceilings = []
    for _ in range(8):
        ceiling = backoff.ceiling_ms()
        assert 0 <= backoff.next_delay_ms() <= ceiling
        ceilings.append(ceiling)
    assert ceilings == [100, 200, 400, 800, 1_000, 1_000, 1_000, 1_000]


def test_the_delays_are_jittered_not_fixed() -> None:
    backoff = FullJitterBackoff(base_ms=1_000, cap_ms=1_000, rng=random.Random(1))
    delays = {round(backoff.next_delay_ms(), 3) for _ in range(20)}
    assert len(delays) == 20


def test_reset_starts_from_the_base_again() -> None:
    backoff = FullJitterBackoff(base_ms=50, cap_ms=10_000)
    for _ in range(5):
        backoff.next_delay_ms()
    backoff.reset()
    assert backoff.ceiling_ms() == 50


def test_a_long_outage_never_overflows() -> None:
    backoff = FullJitterBackoff(base_ms=1, cap_ms=30_000)
    backoff.failures = 5_000
    assert backoff.ceiling_ms() == 30_000


def test_the_same_seed_gives_the_same_delays() -> None:
    a = FullJitterBackoff(base_ms=10, cap_ms=5_000, rng=random.Random(3))
    b = FullJitterBackoff(base_ms=10, cap_ms=5_000, rng=random.Random(3))
    assert [a.next_delay_ms() for _ in range(6)] == [b.next_delay_ms() for _ in range(6)]


@pytest.mark.parametrize(("base", "cap"), [(0, 10), (-1, 10), (20, 10)])
def test_unusable_bounds_are_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base_ms"):
        FullJitterBackoff(base_ms=base, cap_ms=cap)
