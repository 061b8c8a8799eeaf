"""The leadership term: decided from local monotonic time, measured from the request start."""

from __future__ import annotations

import pytest

from engine.core.clock import TestClock
from engine.core.lease_term import (
    DeposeReason,
    LeaderState,
    LeaseStateError,
    LeaseTerm,
    default_acquire_interval_ms,
    default_safety_margin_ms,
)

pytestmark = pytest.mark.unit

MS = 1_000_000


def term(**overrides: int) -> LeaseTerm:
    args = {"ttl_ms": 1_000, "renew_interval_ms": 250, "safety_margin_ms": 12}
    args.update(overrides)
    return LeaseTerm(**args)


def test_default_margin_is_redlocks_drift_allowance() -> None:
    assert default_safety_margin_ms(1_000) == 12
    assert default_safety_margin_ms(3_000) == 32
    assert default_safety_margin_ms(1) == 3
    assert LeaseTerm(ttl_ms=3_000, renew_interval_ms=1_000).safety_margin_ms == 32


def test_default_acquire_interval_is_a_tenth_of_the_ttl_within_bounds() -> None:
    assert default_acquire_interval_ms(3_000, 1_000) == 300
    assert default_acquire_interval_ms(200, 100) == 50
    assert default_acquire_interval_ms(30_000, 1_000) == 1_000


def test_a_new_term_is_a_follower_that_may_try_at_once() -> None:
    t = term()
    assert t.state is LeaderState.FOLLOWER
    assert t.should_acquire(0)
    assert not t.is_leader(0) and t.expired(0) and not t.should_renew(0)
    assert t.epoch is None and t.remaining_ns(0) == 0


def test_term_runs_from_the_request_start_not_the_response() -> None:
    clock = TestClock()
    t = term()
    started = clock.monotonic_ns()
    clock.advance_ms(300)  # a slow answer
    assert t.acquired(7, started, clock.monotonic_ns())
    assert t.state is LeaderState.LEADER and t.epoch == 7
    assert t.expires_ns == started + (1_000 - 12) * MS
    clock.advance_ms(1_000 - 12 - 300 - 1)
    assert t.is_leader(clock.monotonic_ns())
    clock.advance_ms(1)
    assert not t.is_leader(clock.monotonic_ns()) and t.expired(clock.monotonic_ns())


def test_an_answer_after_the_term_would_end_does_not_make_a_leader() -> None:
    t = term()
    assert not t.acquired(3, 0, 988 * MS)
    assert t.state is LeaderState.FOLLOWER and t.epoch is None
    # the epoch was never held: a later grant with a larger epoch is fine
    assert t.acquired(4, 1_000 * MS, 1_001 * MS)


def test_renewal_is_due_every_interval_and_extends_from_its_own_start() -> None:
    t = term()
    t.acquired(1, 0, 5 * MS)
    assert not t.should_renew(249 * MS)
    assert t.should_renew(250 * MS)
    assert t.next_action_ns(100 * MS) == 250 * MS
    assert t.renewed(250 * MS, 900 * MS)  # slow answer, still inside the old term
    assert t.expires_ns == (250 + 988) * MS
    assert not t.should_renew(499 * MS) and t.should_renew(500 * MS)


def test_a_renewal_answered_after_the_term_ended_deposes() -> None:
    t = term()
    t.acquired(1, 0, 0)
    assert not t.renewed(250 * MS, 988 * MS)
    assert t.state is LeaderState.DEPOSED
    assert t.deposed_reason == DeposeReason.EXPIRED.value
    assert not t.is_leader(989 * MS)


def test_failed_renewal_retries_sooner_and_the_term_still_ends_on_time() -> None:
    t = term()
    t.acquired(1, 0, 0)
    t.renew_failed(260 * MS)
    assert t.retry_interval_ms == 125
    assert not t.should_renew(384 * MS) and t.should_renew(385 * MS)
    t.renew_failed(400 * MS)
    assert t.next_action_ns(400 * MS) == 525 * MS
    t.renew_failed(900 * MS)
    assert t.next_action_ns(900 * MS) == 988 * MS  # the end of the term comes first
    assert not t.check(987 * MS) and t.state is LeaderState.LEADER
    assert t.check(988 * MS)
    assert t.state is LeaderState.DEPOSED and t.deposed_reason == DeposeReason.EXPIRED.value
    assert not t.check(989 * MS)  # only once


def test_refused_renewal_deposes_and_rejoin_makes_a_follower() -> None:
    t = term()
    t.acquired(5, 0, 0)
    t.lost()
    assert t.state is LeaderState.DEPOSED and t.epoch == 5
    assert t.deposed_reason == DeposeReason.LOST.value
    assert not t.is_leader(1 * MS)
    t.rejoin()
    assert t.state is LeaderState.FOLLOWER and t.epoch is None and t.last_epoch == 5


def test_epochs_must_increase_across_terms() -> None:
    t = term()
    t.acquired(5, 0, 0)
    t.step_down(DeposeReason.STOPPED.value)
    t.rejoin()
    with pytest.raises(LeaseStateError, match="lost its epoch counter"):
        t.acquired(5, 10 * MS, 10 * MS)
    assert t.acquired(6, 10 * MS, 10 * MS) and t.terms == 2


def test_illegal_transitions_raise() -> None:
    t = term()
    with pytest.raises(LeaseStateError):
        t.renewed(0, 0)
    with pytest.raises(LeaseStateError):
        t.lost()
    with pytest.raises(LeaseStateError):
        t.rejoin()
    t.acquired(1, 0, 0)
    with pytest.raises(LeaseStateError):
        t.acquired(2, 0, 0)
    with pytest.raises(LeaseStateError):
        t.rejoin()


def test_followers_try_every_acquire_interval_and_can_hold_off() -> None:
    t = term(acquire_interval_ms=100)
    t.acquire_attempted(0)
    assert not t.should_acquire(99 * MS) and t.should_acquire(100 * MS)
    assert t.next_action_ns(0) == 100 * MS
    t.hold_off(1_000 * MS)
    assert not t.should_acquire(999 * MS) and t.should_acquire(1_000 * MS)


def test_snapshot_is_json_able_and_says_when_the_term_ends() -> None:
    import json

    t = term()
    assert t.snapshot(0)["leader"] is False
    t.acquired(9, 0, 0)
    snap = t.snapshot(488 * MS)
    assert snap == {
        "state": "LEADER",
        "leader": True,
        "epoch": 9,
        "last_epoch": 9,
        "term_expires_in_ms": 500,
        "terms": 1,
        "deposed_reason": None,
    }
    json.dumps(snap)
    after = t.snapshot(988 * MS)  # past the term, before anyone called check()
    assert after["leader"] is False and after["epoch"] is None and after["last_epoch"] == 9


@pytest.mark.parametrize(
    ("ttl", "renew", "margin"),
    [(0, 1, 0), (1_000, 0, 0), (1_000, 990, 12), (1_000, 500, -1), (1_000, 1_000, 0)],
)
def test_bad_timings_are_refused(ttl: int, renew: int, margin: int) -> None:
    with pytest.raises(ValueError, match=r"positive|negative|shorter"):
        LeaseTerm(ttl_ms=ttl, renew_interval_ms=renew, safety_margin_ms=margin)
