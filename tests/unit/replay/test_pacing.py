"""The replay's pacing: messages spaced by recorded time over speed, a resume that does not jump
(replay/pacing.py)."""

import pytest

from replay.pacing import Pacer

pytestmark = pytest.mark.unit


def test_pacer_spaces_messages_by_recorded_time_over_speed() -> None:
    pacer = Pacer(10.0)
    assert pacer.due_ns(1_000_000_000, now_ns=500) == 500
    assert pacer.due_ns(2_000_000_000, now_ns=600) == 500 + 100_000_000
    pacer.set_speed(1.0, now_ns=700)
    assert pacer.due_ns(2_500_000_000, now_ns=700) == 700 + 500_000_000
    assert Pacer(None).due_ns(5, now_ns=42) == 42
    with pytest.raises(ValueError, match="speed must be positive"):
        Pacer(0)


def test_pacer_resume_does_not_jump() -> None:
    pacer = Pacer(1.0)
    pacer.due_ns(0, now_ns=0)
    pacer.due_ns(1_000, now_ns=1_000)
    pacer.pause(now_ns=1_000)
    pacer.resume(now_ns=60_000)
    assert pacer.due_ns(2_000, now_ns=60_000) == 61_000
