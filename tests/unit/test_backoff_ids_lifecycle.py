import random

import pytest

from engine.core.clock import TestClock
from engine.core.ids import client_order_id, is_valid_client_order_id
from engine.core.lifecycle import Lifecycle, LifecycleError, LifecycleState
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


def test_client_order_id_is_deterministic_valid_and_distinct() -> None:
    first = client_order_id("strategy.123.45", 0)
    assert first == client_order_id("strategy.123.45", 0)
    assert is_valid_client_order_id(first)
    assert len(first) <= 36
    others = {client_order_id(f"strategy.123.{n}", c) for n in range(200) for c in range(3)}
    assert len(others) == 600
    with pytest.raises(ValueError, match="intent_id must not be empty"):
        client_order_id("", 0)


def test_lifecycle_records_transitions_and_refuses_illegal_ones() -> None:
    clock = TestClock()
    life = Lifecycle(clock)
    life.to(LifecycleState.STARTING)
    clock.advance_ms(5)
    life.to(LifecycleState.RUNNING)
    assert life.is_up
    with pytest.raises(LifecycleError):
        life.to(LifecycleState.STARTING)
    life.to(LifecycleState.DEGRADED, "bus down")
    life.to(LifecycleState.RUNNING)
    life.to(LifecycleState.STOPPING)
    life.to(LifecycleState.STOPPED)
    assert [t.target for t in life.history][-2:] == [
        LifecycleState.STOPPING,
        LifecycleState.STOPPED,
    ]
    assert life.history[1].ts_ns - life.history[0].ts_ns == 5_000_000
    with pytest.raises(LifecycleError):
        life.to(LifecycleState.FAILED)
