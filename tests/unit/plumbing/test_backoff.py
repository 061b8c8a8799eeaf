"""Full-jitter backoff: under an exponential ceiling and the cap, deterministic for a seed
(plumbing/backoff.py)."""

import random

import pytest

from plumbing.backoff import Backoff, full_jitter_delays_ms

pytestmark = pytest.mark.unit


def test_full_jitter_delays_stay_under_an_exponential_ceiling_and_the_cap() -> None:
    delays = full_jitter_delays_ms(base_ms=100, cap_ms=1_000, rng=random.Random(1))
    ceilings = [100, 200, 400, 800, 1000, 1000, 1000]
    observed = [next(delays) for _ in ceilings]
    for delay, ceiling in zip(observed, ceilings, strict=True):
        assert 0 <= delay <= ceiling
    assert len(set(observed)) == len(observed), "jitter: no two delays alike"


def test_backoff_is_deterministic_for_a_seed_and_resets() -> None:
    a = Backoff(base_ms=10, cap_ms=500, rng=random.Random(7))
    b = Backoff(base_ms=10, cap_ms=500, rng=random.Random(7))
    assert [a.next_delay_ms() for _ in range(5)] == [b.next_delay_ms() for _ in range(5)]
    a.reset()
    assert a.attempts == 0
    assert a.next_delay_ms() <= 10


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="0 < base_ms <= cap_ms"):
        next(full_jitter_delays_ms(base_ms=0, cap_ms=10))
