"""A service's lifecycle state machine: transitions recorded, illegal ones refused
(engine/core/lifecycle.py)."""

import pytest

from engine.core.clock import TestClock
from engine.core.lifecycle import Lifecycle, LifecycleError, LifecycleState

pytestmark = pytest.mark.unit


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
