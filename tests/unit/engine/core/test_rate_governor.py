"""The venue rate governor (engine.core.ratelimit) and its asyncio shell: bucket arithmetic,
in-flight and order caps, whole-venue pauses on 429/418, venue-reported usage, and the 70%
bound over any window (hypothesis), also in a closed loop with the simulator's own limiter."""

from __future__ import annotations

import asyncio
import bisect
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import ExecutionConfig, VenueConfig
from engine.core.clock import LiveClock, TestClock
from engine.core.ratelimit import (
    BINANCE_SPOT_WEIGHTS,
    NS_PER_S,
    WAIT_BANNED,
    WAIT_IN_FLIGHT,
    WAIT_ORDERS,
    WAIT_PAUSED,
    WAIT_PROBING,
    WAIT_VENUE_ORDERS,
    WAIT_VENUE_USAGE,
    WAIT_WEIGHT,
    Permit,
    TokenBucket,
    VenueGovernor,
    Wait,
    depth_weight,
)
from engine.execution.venue_pacer import (
    LimiterDeadline,
    LimiterStopped,
    VenueRateLimiter,
    from_config,
    prometheus_callback,
)
from engine.runtime.metrics import EngineMetrics
from replay.exchange import rest as sim_rest
from replay.exchange.venue_limits import RateLimiter, RateLimits

pytestmark = pytest.mark.unit
MINUTE_NS = 60 * NS_PER_S


def binance(**overrides: int | float) -> VenueGovernor:
    args: dict[str, int | float] = {
        "weight_per_minute": 6000,
        "orders_per_10s": 50,
        "max_orders_in_flight": 8,
    }
    args.update(overrides)
    return VenueGovernor(**args)  # type: ignore[arg-type]


def granted(decision: Permit | Wait) -> Permit:
    assert isinstance(decision, Permit), decision
    return decision


def waits(decision: Permit | Wait) -> Wait:
    assert isinstance(decision, Wait), decision
    return decision


# --- the token bucket ---------------------------------------------------------------------------


def test_bucket_starts_full_and_says_exactly_how_long_to_wait() -> None:
    clock = TestClock()
    bucket = TokenBucket(10, 2.0)
    assert bucket.take(10, clock.monotonic_ns()) == 0
    assert bucket.take(1, clock.monotonic_ns()) == 500_000_000, "1 token at 2/s: 0.5 s"
    assert bucket.tokens(clock.monotonic_ns()) == 0, "a refused take takes nothing"
    clock.advance_ns(499_999_999)
    assert bucket.take(1, clock.monotonic_ns()) == 1
    clock.advance_ns(1)
    assert bucket.take(1, clock.monotonic_ns()) == 0
    clock.advance_ms(100_000)
    assert bucket.tokens(clock.monotonic_ns()) == 10, "refill stops at the capacity"
    with pytest.raises(ValueError, match="can never be taken"):
        bucket.take(11, clock.monotonic_ns())


def test_bucket_emptied_for_a_pause_refills_only_after_it() -> None:
    bucket = TokenBucket(10, 2.0)
    bucket.take(3, 0)
    bucket.empty_at(5 * NS_PER_S)
    assert bucket.take(1, 4 * NS_PER_S) == NS_PER_S + 500_000_000
    assert bucket.take(1, 5 * NS_PER_S + 500_000_000) == 0


def test_bucket_math_is_exact_over_a_long_run() -> None:
    bucket = TokenBucket(2, 52.5)
    now, taken = 0, 0
    while now <= 3_600 * NS_PER_S:  # an hour of taking one token whenever there is one
        wait = bucket.take(1, now)
        if wait:
            now += wait
        else:
            taken += 1
    assert taken == 2 + 52.5 * 3_600, "no drift: start full, then exactly the refill"


# --- derivation and the weight table ------------------------------------------------------------


def test_binance_budget_capacity_and_refill_keep_any_minute_under_70_percent() -> None:
    gov = binance()
    assert gov.weight_budget == 4200
    assert gov.weight_bucket.capacity == 1050 and gov.weight_bucket.refill_per_s == 52.5
    assert gov.weight_bucket.capacity + 60 * gov.weight_bucket.refill_per_s <= 0.7 * 6000
    assert gov.order_bucket.capacity == 12 and gov.order_bucket.refill_per_s == 3.8
    assert gov.order_bucket.capacity + 10 * gov.order_bucket.refill_per_s <= 50
    heavy = binance(weight_per_minute=300)  # budget 210: the burst is raised to the heaviest op
    assert heavy.weight_bucket.capacity == 80
    assert heavy.weight_bucket.capacity + 60 * heavy.weight_bucket.refill_per_s <= 210
    with pytest.raises(ValueError, match="no room to refill"):
        binance(weight_per_minute=100)


def test_from_config_takes_the_stricter_usage_and_our_order_budget() -> None:
    venue = VenueConfig(ws_urls=["ws://x"], rest_url="http://x", symbols=["BTCUSDT"])
    gov = from_config(venue, ExecutionConfig(max_weight_usage=0.5, max_orders_in_flight=3))
    assert gov.weight_budget == 3000 and gov.max_orders_in_flight == 3
    assert gov.orders_budget == ExecutionConfig().max_orders_per_10s


SIMULATED_REQUESTS = {  # op -> the request ccxt makes for it (method, path, query)
    "ping": ("GET", "/api/v3/ping", {}),
    "fetch_time": ("GET", "/api/v3/time", {}),
    "load_markets": ("GET", "/api/v3/exchangeInfo", {}),
    "fetch_markets": ("GET", "/api/v3/exchangeInfo", {}),
    "fetch_order_book": ("GET", "/api/v3/depth", {"symbol": "BTCUSDT"}),
    "create_order": ("POST", "/api/v3/order", {}),
    "cancel_order": ("DELETE", "/api/v3/order", {}),
    "fetch_order": ("GET", "/api/v3/order", {}),
    "fetch_open_orders": ("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}),
    "fetch_open_orders_all_symbols": ("GET", "/api/v3/openOrders", {}),
    "fetch_orders": ("GET", "/api/v3/allOrders", {}),
    "fetch_my_trades": ("GET", "/api/v3/myTrades", {}),
    "fetch_order_trades": ("GET", "/api/v3/myTrades", {}),
    "fetch_balance": ("GET", "/api/v3/account", {}),
    "listen_key": ("POST", "/api/v3/userDataStream", {}),
}


def test_weights_are_binances_documented_ones_and_the_simulators() -> None:
    documented = {
        "create_order": 1,
        "cancel_order": 1,
        "cancel_all_orders": 1,
        "fetch_order": 4,
        "fetch_open_orders": 6,
        "fetch_open_orders_all_symbols": 80,
        "fetch_orders": 20,
        "fetch_order_trades": 20,
        "fetch_balance": 20,
        "load_markets": 20,
        "fetch_order_book": 5,
        "ping": 1,
        "fetch_time": 1,
    }
    assert {op: BINANCE_SPOT_WEIGHTS[op] for op in documented} == documented
    for op, (method, path, query) in SIMULATED_REQUESTS.items():
        weight = sim_rest.request_weight(method, path, lambda query=query: query)
        assert BINANCE_SPOT_WEIGHTS[op] == weight, op
    for limit in (5, 10, 20, 50, 100, 101, 500, 501, 1000, 1001, 5000):
        assert depth_weight(limit) == sim_rest.depth_weight(limit)
    assert depth_weight(None) == 5


def test_unknown_operations_and_oversized_weights_are_refused() -> None:
    gov = binance()
    with pytest.raises(ValueError, match="no request weight known"):
        gov.request("fetch_everything", 0)
    assert granted(gov.request("fetch_order_book", 0, weight=depth_weight(5000))).weight == 250
    with pytest.raises(ValueError, match="does not fit"):
        gov.request("fetch_order_book", 0, weight=2000)


# --- weight, orders, in flight ------------------------------------------------------------------


def test_a_burst_beyond_the_capacity_waits_for_the_refill() -> None:
    gov = binance()
    for _ in range(1050 // 20):
        granted(gov.request("fetch_balance", 0))  # 52 * 20 = 1040 of 1050
    wait = waits(gov.request("fetch_balance", 0))
    assert wait.reason == WAIT_WEIGHT
    assert wait.ns == math.ceil(10 / 52.5 * NS_PER_S)
    granted(gov.request("fetch_order", 0))  # 4 more still fit
    assert gov.granted_weight == 1044


def test_in_flight_cap_holds_new_orders_but_never_cancels() -> None:
    gov = binance(max_orders_in_flight=2)
    first, second = granted(gov.request("create_order", 0)), granted(gov.request("create_order", 0))
    assert waits(gov.request("create_order", 0)) == Wait(0, WAIT_IN_FLIGHT)
    granted(gov.request("cancel_order", 0))
    granted(gov.request("fetch_order", 0))
    gov.release(first)
    gov.release(first)  # twice: harmless
    assert gov.orders_in_flight == 1
    third = granted(gov.request("create_order", 0))
    assert waits(gov.request("create_order", 0)).reason == WAIT_IN_FLIGHT
    gov.release(second)
    gov.release(third)
    assert gov.orders_in_flight == 0


def test_order_count_stays_within_the_budget_in_any_10_seconds() -> None:
    gov = binance(orders_per_10s=8)  # burst 2, then 0.6 per second
    first, second = granted(gov.request("create_order", 0)), granted(gov.request("create_order", 0))
    wait = waits(gov.request("create_order", 0))
    assert wait.reason == WAIT_ORDERS and wait.ns == math.ceil(NS_PER_S / 0.6)
    gov.release(first)
    gov.release(second)
    now, times = 0, [0, 0]
    while now < 120 * NS_PER_S:  # as many orders as it lets through, for two minutes
        decision = gov.request("create_order", now)
        if isinstance(decision, Wait):
            now += decision.ns
            continue
        times.append(now)
        gov.release(decision)
    for i, t in enumerate(times):
        assert i - bisect.bisect_right(times, t - 10 * NS_PER_S) + 1 <= 8
    assert len(times) >= 2 + 0.6 * 120 - 1, "and it does let them through"


# --- what the venue says ------------------------------------------------------------------------


OPS = ("create_order", "cancel_order", "fetch_order", "fetch_open_orders", "load_markets")


def test_429_pauses_every_operation_until_retry_after() -> None:
    gov = binance()
    t0 = 5 * NS_PER_S
    gov.on_response(status=429, headers={"Retry-After": "7"}, now_ns=t0)
    deadline = t0 + 7 * NS_PER_S
    assert gov.paused_until_ns == deadline
    for now in (t0, t0 + NS_PER_S, deadline - 1):
        for op in OPS:
            assert waits(gov.request(op, now)) == Wait(deadline - now, WAIT_PAUSED)
    assert gov.granted_weight == 0
    # after the pause the bucket starts empty: back at the sustained rate, not with a burst
    resumed = waits(gov.request("fetch_order", deadline))
    assert resumed.reason == WAIT_WEIGHT and resumed.ns == math.ceil(4 / 52.5 * NS_PER_S)
    probe = granted(gov.request("fetch_order", deadline + resumed.ns))
    # one request at a time until the venue answers without a 429: a probe
    assert waits(gov.request("create_order", deadline + NS_PER_S)) == Wait(0, WAIT_PROBING)
    gov.release(probe)
    gov.on_response(status=200, headers={}, now_ns=deadline + NS_PER_S)
    granted(gov.request("create_order", deadline + NS_PER_S))
    granted(gov.request("fetch_order", deadline + 2 * NS_PER_S))


def test_418_ban_pauses_for_its_retry_after_and_is_never_shortened() -> None:
    gov = binance()
    gov.on_response(status=418, headers={"retry-after": "120"}, now_ns=0)
    gov.on_response(status=429, headers={"Retry-After": "3"}, now_ns=NS_PER_S)
    assert gov.paused_until_ns == 120 * NS_PER_S
    for op in OPS:
        assert waits(gov.request(op, 60 * NS_PER_S)) == Wait(60 * NS_PER_S, WAIT_BANNED)
    assert gov.state()["pause_reason"] == WAIT_BANNED
    later = 200 * NS_PER_S
    granted(gov.request("cancel_order", later))
    assert not gov.paused(later)


def test_without_retry_after_a_pause_is_conservative() -> None:
    gov = binance()
    gov.on_response(status=429, headers={}, now_ns=0)
    assert gov.paused_until_ns == MINUTE_NS, "a 429: the whole weight window"
    banned = binance()
    banned.on_response(status=418, headers={"Retry-After": "soon"}, now_ns=0)
    assert banned.paused_until_ns == 120 * NS_PER_S, "a 418: Binance's shortest ban"


def test_usage_reported_by_the_venue_counts_against_our_budget() -> None:
    gov = binance()
    t0 = NS_PER_S
    # another client on our IP (or our previous incarnation) spent 4198 of the last minute
    gov.on_response(status=200, headers={"x-mbx-used-weight-1m": "4198"}, now_ns=t0)
    assert gov.usage_fraction == pytest.approx(4198 / 6000)
    assert gov.excess_weight == 4198
    wait = waits(gov.request("fetch_order", t0))  # 4198 + 4 > 4200
    assert wait == Wait(MINUTE_NS, WAIT_VENUE_USAGE), "until that weight has surely left"
    granted(gov.request("ping", t0))  # 4199: fits
    gov.on_response(status=200, headers={"X-MBX-USED-WEIGHT-1M": "4199"}, now_ns=t0 + 1)
    assert gov.excess_weight == 4198, "what we sent ourselves is not counted twice"
    gov.on_response(status=200, headers={"X-MBX-USED-WEIGHT-1M": "10"}, now_ns=t0 + 2)
    assert waits(gov.request("fetch_order", t0 + 2)).reason == WAIT_VENUE_USAGE, (
        "a lower report (an older response) frees nothing"
    )
    granted(gov.request("fetch_order", t0 + MINUTE_NS))


def test_order_count_reported_by_the_venue_holds_new_orders() -> None:
    gov = binance()
    gov.on_response(status=200, headers={"X-MBX-ORDER-COUNT-10S": "50"}, now_ns=0)
    assert waits(gov.request("create_order", 0)) == Wait(10 * NS_PER_S, WAIT_VENUE_ORDERS)
    granted(gov.request("cancel_order", 0))
    assert gov.order_usage_fraction == 1.0
    granted(gov.request("create_order", 10 * NS_PER_S))


def test_state_is_json() -> None:
    gov = binance()
    gov.on_response(status=200, headers={"X-MBX-USED-WEIGHT-1M": "600"}, now_ns=0)
    granted(gov.request("create_order", 0))
    state = json.loads(json.dumps(gov.state()))
    assert state["usage_fraction"] == 0.1 and state["orders_in_flight"] == 1
    assert state["weight_budget"] == 4200 and state["paused"] is False


# --- the 70% bound, whatever the traffic -------------------------------------------------------

LIMIT = 1200  # a smaller venue than Binance's so that few requests cover many windows
BUDGET = int(0.7 * LIMIT)
OP_NAMES = sorted(BINANCE_SPOT_WEIGHTS)
events = st.one_of(
    st.none(),
    st.tuples(st.just(200), st.integers(0, 2 * LIMIT)),
    st.tuples(st.sampled_from([429, 418]), st.integers(0, 90)),
)
steps = st.lists(
    st.tuples(
        st.sampled_from(OP_NAMES),
        st.one_of(st.just(0), st.integers(0, 3_000)),
        st.booleans(),
        events,
    ),
    min_size=1,
    max_size=400,
)


def max_in_any_window(grants: list[tuple[int, int]], window_ns: int) -> int:
    times = [t for t, _ in grants]
    sums = [0]
    for _, w in grants:
        sums.append(sums[-1] + w)
    worst = 0
    for i, (t, _) in enumerate(grants):
        first = bisect.bisect_right(times, t - window_ns)  # the window (t - W, t]
        worst = max(worst, sums[i + 1] - sums[first])
    return worst


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_granted_weight_never_exceeds_70_percent_of_the_limit_in_any_window(
    plan: list[tuple[str, int, bool, tuple[int, int] | None]],
) -> None:
    gov = VenueGovernor(weight_per_minute=LIMIT, orders_per_10s=20, max_orders_in_flight=3)
    now, grants, orders, outstanding = 0, [], [], []
    for op, gap_ms, release, event in plan:
        now += gap_ms * 1_000_000
        if event is not None:
            status, value = event
            headers = {"Retry-After": str(value)} if status != 200 else {}
            if status == 200:
                headers["X-MBX-USED-WEIGHT-1M"] = str(value)
            gov.on_response(status=status, headers=headers, now_ns=now)
        while True:
            decision = gov.request(op, now)
            if isinstance(decision, Permit):
                break
            if decision.reason in (WAIT_IN_FLIGHT, WAIT_PROBING):
                gov.release(outstanding.pop(0))
            else:
                assert decision.ns > 0
                now += decision.ns
        grants.append((now, decision.weight))
        outstanding.append(decision)
        if decision.order:
            orders.append((now, 1))
        if release and outstanding:
            gov.release(outstanding.pop(0))
    assert max_in_any_window(grants, MINUTE_NS) <= 0.7 * LIMIT
    assert max_in_any_window(orders, 10 * NS_PER_S) <= 20


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 80), st.one_of(st.just(0), st.integers(0, 5_000))),
        min_size=1,
        max_size=400,
    ),
    st.floats(0.05, 0.5),
)
def test_the_bucket_alone_grants_at_most_capacity_plus_refill_in_any_window(
    plan: list[tuple[int, int]], burst_fraction: float
) -> None:
    gov = VenueGovernor(
        weight_per_minute=LIMIT,
        orders_per_10s=20,
        max_orders_in_flight=3,
        burst_fraction=burst_fraction,
    )
    bucket = gov.weight_bucket  # as the governor derived it
    assert bucket.capacity + 60 * bucket.refill_per_s <= 0.7 * LIMIT
    now, grants = 0, []
    for amount, gap_ms in plan:
        now += gap_ms * 1_000_000
        while wait := bucket.take(min(amount, bucket.capacity), now):
            now += wait
        grants.append((now, min(amount, bucket.capacity)))
    assert max_in_any_window(grants, MINUTE_NS) <= 0.7 * LIMIT


def test_saturating_traffic_uses_the_budget_and_no_more() -> None:
    gov = VenueGovernor(weight_per_minute=LIMIT, orders_per_10s=20, max_orders_in_flight=3)
    now, grants, mix = 0, [], ("fetch_open_orders", "fetch_order_book", "fetch_order", "ping")
    for i in range(20_000):
        while isinstance(decision := gov.request(mix[i % len(mix)], now), Wait):
            now += decision.ns
        grants.append((now, decision.weight))
    assert now > 10 * MINUTE_NS
    worst = max_in_any_window(grants, MINUTE_NS)
    assert 0.95 * BUDGET <= worst <= BUDGET


def test_in_a_closed_loop_with_the_simulators_limiter_we_back_off_and_are_never_banned() -> None:
    """Our governor and the simulator's RateLimiter (the venue's rules), on one virtual clock.
    Another client on our IP bursts into the window every 2 minutes: we may meet a 429, then
    we wait Retry-After and are never banned (the venue bans after 3 requests in a 429 window)."""
    venue = RateLimiter(RateLimits(weight_per_window=LIMIT, weight_window_s=60))
    gov = VenueGovernor(weight_per_minute=LIMIT, orders_per_10s=20, max_orders_in_flight=3)
    now, statuses = 0, []
    mix = ("fetch_open_orders", "fetch_order_book", "fetch_order", "create_order")
    for i in range(12_000):
        if i % 500 == 0:  # the other client: a burst of 60% of the limit, stopped by a 429
            for _ in range(int(0.6 * LIMIT) // 20):
                if venue.check("ip", 20, now / NS_PER_S).status != 200:
                    break
        op = mix[i % len(mix)]
        while isinstance(decision := gov.request(op, now), Wait):
            assert decision.reason != WAIT_IN_FLIGHT
            now += decision.ns
        verdict = venue.check("ip", decision.weight, now / NS_PER_S)
        headers = dict(verdict.headers)
        if verdict.retry_after_s:
            headers["Retry-After"] = str(verdict.retry_after_s)
        statuses.append(verdict.status)
        gov.on_response(status=verdict.status, headers=headers, now_ns=now)
        gov.release(decision)
        now += 1_000_000  # 1 ms per round trip
    assert now > 30 * MINUTE_NS
    assert 418 not in statuses
    assert statuses.count(429) <= 12_000 // 500, "at most one 429 per burst of the other client"
    assert statuses.count(200) == len(statuses) - statuses.count(429)


# --- the asyncio shell --------------------------------------------------------------------------


async def test_slot_waits_out_a_pause_then_goes() -> None:
    clock = LiveClock()
    limiter = VenueRateLimiter(binance(), clock)
    limiter.observe(429, {"Retry-After": "0.3"})
    start = clock.monotonic_ns()
    async with limiter.slot("fetch_order") as permit:
        assert permit.granted_ns >= limiter.governor.paused_until_ns
    assert clock.monotonic_ns() - start >= 300_000_000
    assert limiter.waits[WAIT_PAUSED] >= 1


async def test_in_flight_waiter_is_woken_by_a_release() -> None:
    limiter = VenueRateLimiter(binance(max_orders_in_flight=1), LiveClock())
    first = await limiter.acquire("create_order")
    second = asyncio.create_task(limiter.acquire("create_order"))
    done, _ = await asyncio.wait([second], timeout=0.2)
    assert not done and limiter.waits[WAIT_IN_FLIGHT] == 1, "held by the cap"
    limiter.release(first)
    permit = await asyncio.wait_for(second, timeout=1)
    assert permit.order and limiter.governor.orders_in_flight == 1


async def test_waiters_behind_the_probe_go_once_it_is_answered_without_a_429() -> None:
    limiter = VenueRateLimiter(binance(), LiveClock())
    limiter.observe(429, {"Retry-After": "0.2"})
    probe = await limiter.acquire("fetch_order")  # after the pause: the probe
    behind = asyncio.create_task(limiter.acquire("fetch_order"))
    done, _ = await asyncio.wait([behind], timeout=0.1)
    assert not done, "one request at a time while probing"
    limiter.observe(200, {})  # the probe's answer ends the probing...
    limiter.release(probe)  # ...before its permit is released: the waiter must still wake
    permit = await asyncio.wait_for(behind, timeout=1)
    assert not limiter.governor.probing and permit.op == "fetch_order"


async def test_stop_event_ends_a_wait_without_sending() -> None:
    stop = asyncio.Event()
    limiter = VenueRateLimiter(binance(), LiveClock(), stop=stop)
    limiter.observe(418, {"Retry-After": "600"})
    waiter = asyncio.create_task(limiter.acquire("cancel_order"))
    done, _ = await asyncio.wait([waiter], timeout=0.1)
    assert not done
    stop.set()
    with pytest.raises(LimiterStopped):
        await asyncio.wait_for(waiter, timeout=1)
    assert limiter.governor.granted_weight == 0


async def test_a_permit_that_cannot_come_in_time_is_refused_at_once() -> None:
    clock = LiveClock()
    limiter = VenueRateLimiter(binance(max_orders_in_flight=1), clock)
    limiter.observe(418, {"Retry-After": "120"})
    start = clock.monotonic_ns()
    with pytest.raises(LimiterDeadline, match="banned_418"):
        await limiter.acquire("create_order", max_wait_s=5)
    assert clock.monotonic_ns() - start < NS_PER_S, "no waiting in vain"
    free = VenueRateLimiter(binance(max_orders_in_flight=1), clock)
    held = await free.acquire("create_order")
    start = clock.monotonic_ns()
    with pytest.raises(LimiterDeadline, match="in_flight"):
        await free.acquire("create_order", max_wait_s=0.2)
    assert clock.monotonic_ns() - start >= 200_000_000, "the in-flight cap: waited until then"
    free.release(held)
    assert (await free.acquire("create_order", max_wait_s=0.2)).order


async def test_metrics_are_exported() -> None:
    metrics = EngineMetrics()
    limiter = VenueRateLimiter(
        binance(), LiveClock(), metrics_callback=prometheus_callback(metrics, "binance")
    )
    limiter.observe(200, {"X-MBX-USED-WEIGHT-1M": "1500", "X-MBX-ORDER-COUNT-10S": "5"})

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"venue": "binance", **labels})

    assert value("trading_rate_limit_usage_ratio", limit="weight") == 0.25
    assert value("trading_rate_limit_usage_ratio", limit="orders_10s") == 0.1
    assert value("trading_venue_paused") == 0
    limiter.observe(429, {"Retry-After": "0.05"})
    assert value("trading_venue_paused") == 1
    await limiter.acquire("ping")
    assert value("trading_rate_limit_waits_total", reason=WAIT_PAUSED) == 1
