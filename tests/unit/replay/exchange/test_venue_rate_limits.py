import pytest

from replay.exchange.venue_limits import RateLimiter, RateLimits

pytestmark = pytest.mark.unit
LIMITS = RateLimits(
    weight_per_window=10,
    weight_window_s=60,
    orders_per_10s=3,
    strikes_before_ban=2,
    ban_base_s=120,
    ban_max_s=400,
)


def test_weight_is_counted_over_a_rolling_window_and_reported() -> None:
    limiter = RateLimiter(LIMITS)
    assert limiter.check("ip", 4, now=0).headers["X-MBX-USED-WEIGHT-1M"] == "4"
    assert limiter.check("ip", 6, now=10).status == 200
    too_much = limiter.check("ip", 1, now=20)
    assert (too_much.status, too_much.code) == (429, -1003)
    assert too_much.retry_after_s == 40, "until the first request leaves the window"
    assert limiter.check("other-ip", 5, now=20).status == 200, "limits are per IP"
    assert limiter.check("ip", 1, now=61).status == 200


def test_ignoring_429_gets_an_escalating_ban() -> None:
    limiter = RateLimiter(LIMITS)
    limiter.check("ip", 10, now=0)
    assert limiter.check("ip", 1, now=1).status == 429
    assert limiter.check("ip", 1, now=2).status == 429  # strike 1
    banned = limiter.check("ip", 1, now=3)  # strike 2: banned
    assert (banned.status, banned.code, banned.retry_after_s) == (418, -1003, 120)
    assert "IP banned until 123000" in banned.msg
    assert limiter.check("ip", 1, now=100).status == 418
    assert limiter.check("ip", 1, now=124).status == 200, "ban over, window moved on"
    limiter.check("ip", 9, now=125)
    limiter.check("ip", 1, now=126)
    limiter.check("ip", 1, now=127)
    second = limiter.check("ip", 1, now=128)
    assert (second.status, second.retry_after_s) == (418, 240), "twice as long"


def test_a_client_that_waits_is_not_banned() -> None:
    limiter = RateLimiter(LIMITS)
    limiter.check("ip", 10, now=0)
    retry = limiter.check("ip", 1, now=1).retry_after_s
    assert limiter.check("ip", 1, now=1 + retry).status == 200


def test_order_counts_per_account() -> None:
    limiter = RateLimiter(LIMITS)
    for t in (0, 1, 2):
        assert limiter.check_order("acct", now=t).status == 200
    refused = limiter.check_order("acct", now=3)
    assert (refused.status, refused.code, refused.retry_after_s) == (429, -1015, 7)
    assert refused.headers["X-MBX-ORDER-COUNT-10S"] == "3"
    assert limiter.check_order("acct", now=10.5).status == 200


def test_an_imposed_429_storm_bans_only_a_client_that_keeps_sending() -> None:
    limiter = RateLimiter(LIMITS)
    storm = limiter.throttle("ip", 5, now=0)
    assert (storm.status, storm.retry_after_s) == (429, 5), "told to wait, not yet a strike"
    assert limiter.check("ip", 1, now=5).status == 200, "a client that waited goes on"
    limiter.throttle("ip", 5, now=10)
    assert limiter.throttle("ip", 5, now=11).status == 429  # strike 1
    assert limiter.throttle("ip", 5, now=12).status == 418, "strike 2: banned"
    assert limiter.stats()["ip"]["bans"] == 1
    assert limiter.stats()["ip"]["too_many_429"] == 3


def test_windows_hold_buckets_not_one_entry_per_request() -> None:
    lifted = RateLimits(weight_per_window=10**9, orders_per_10s=10**9, orders_per_day=10**9)
    limiter = RateLimiter(lifted)
    for i in range(30_000):  # 30,000 orders within 3 s
        now = i / 10_000
        assert limiter.check("ip", 1, now).status == 200
        assert limiter.check_order("acct", now).status == 200
    assert limiter.check("ip", 0, 3.0).headers["X-MBX-USED-WEIGHT-1M"] == "30000"
    counted = limiter.check_order("acct", 3.0).headers
    assert counted == {"X-MBX-ORDER-COUNT-10S": "30001", "X-MBX-ORDER-COUNT-1D": "30001"}
    assert limiter._ips["ip"].weights.buckets() <= 301, "10 ms buckets over 3 s"
    assert limiter._orders_day["acct"].buckets() <= 4, "1 s buckets over 3 s"


def test_a_bucket_leaves_the_window_as_a_whole() -> None:
    limiter = RateLimiter(RateLimits(weight_per_window=10, weight_window_s=60))
    limiter.check("ip", 4, now=100.001)
    limiter.check("ip", 4, now=100.004)  # same 10 ms bucket
    assert limiter.check("ip", 0, now=159.99).headers["X-MBX-USED-WEIGHT-1M"] == "8"
    assert limiter.check("ip", 0, now=160.0).headers["X-MBX-USED-WEIGHT-1M"] == "0"
