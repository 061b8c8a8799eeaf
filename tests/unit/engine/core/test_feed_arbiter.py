import pytest

from engine.core.arbiter import FeedArbiter
from engine.core.dedupe import RecentIds
from engine.core.staleness import StalenessTracker

pytestmark = pytest.mark.unit
MS = 1_000_000


def both_healthy(arbiter: FeedArbiter) -> None:
    for feed in arbiter.feeds:
        arbiter.set_health(feed, True)


def test_each_event_is_published_once_even_out_of_order() -> None:
    arbiter = FeedArbiter(["a", "b"])
    assert arbiter.arrived("b", ("t", 101), 1 * MS)
    assert arbiter.arrived("a", ("t", 100), 2 * MS), "an older id is still new: no gap"
    assert not arbiter.arrived("a", ("t", 101), 3 * MS)
    assert not arbiter.arrived("b", ("t", 100), 4 * MS)


def test_switches_when_the_active_feed_is_unhealthy() -> None:
    arbiter = FeedArbiter(["a", "b"])
    both_healthy(arbiter)
    assert arbiter.decide(0) is None
    arbiter.set_health("a", False)
    switch = arbiter.decide(1 * MS)
    assert switch is not None and (switch.previous, switch.active) == ("a", "b")
    assert "unhealthy" in switch.reason


def test_lag_must_last_the_hysteresis_before_a_switch_and_fail_back_waits_too() -> None:
    arbiter = FeedArbiter(["a", "b"], lag_threshold_ms=50, hysteresis_ms=250, failback_ms=2000)
    both_healthy(arbiter)
    now = 0
    for n in range(50):  # "a" delivers everything 200 ms after "b"
        now = n * 10 * MS
        arbiter.arrived("b", n, now)
        arbiter.arrived("a", n, now + 200 * MS)
    assert arbiter.lag_ms("a") == pytest.approx(200, rel=0.01)
    assert arbiter.decide(now) is None, "lagging, but not yet for long enough"
    switch = arbiter.decide(now + 300 * MS)
    assert switch is not None and switch.active == "b" and "lags" in switch.reason
    for n in range(50, 100):  # the delay is gone
        now = n * 10 * MS
        arbiter.arrived("a", n, now)
        arbiter.arrived("b", n, now + MS)
    assert arbiter.decide(now) is None
    assert arbiter.decide(now + 1500 * MS) is None, "fail-back waits failback_ms"
    back = arbiter.decide(now + 2100 * MS)
    assert back is not None and back.active == "a" and "fail-back" in back.reason


def test_a_single_slow_message_does_not_flap() -> None:
    arbiter = FeedArbiter(["a", "b"])
    both_healthy(arbiter)
    arbiter.arrived("b", 1, 0)
    arbiter.arrived("a", 1, 300 * MS)  # one late message
    for n in range(2, 30):
        arbiter.arrived("a", n, n * MS)
        arbiter.arrived("b", n, n * MS)
    assert arbiter.decide(0) is None
    assert arbiter.decide(400 * MS) is None


def test_recent_ids_forget_the_oldest() -> None:
    seen = RecentIds(capacity=3)
    assert all(seen.add(i) for i in range(4))
    assert seen.add(0), "0 was forgotten"
    assert not seen.add(3)


def test_learned_threshold_follows_the_stream_and_is_clamped() -> None:
    tracker = StalenessTracker(
        default_ms=5_000,
        learn=True,
        learned_min_ms=250,
        learned_max_ms=30_000,
        per_kind_ms={"trade": 60_000},
    )
    for n in range(40):
        tracker.seen("BTCUSDT", "depth", n * 100 * MS)  # every 100 ms
    depth = tracker.threshold_ns("BTCUSDT", "depth") / MS
    assert 250 <= depth < 1_000
    assert tracker.threshold_ns("BTCUSDT", "trade") == 60_000 * MS, "configured wins"
    assert tracker.threshold_ns("ETHUSDT", "depth") == 5_000 * MS, "no history: default"
    tracker.forget()
    tracker.seen("BTCUSDT", "depth", 10**12)
    assert tracker.threshold_ns("BTCUSDT", "depth") / MS == depth, "a reconnect is not a gap"
