"""Game-day measurements are pure functions of what the harness observed."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from engine.core.messages import OrderType, Side
from engine.core.orders import OrderRecord, OrderState
from harness.gameday.measure import Observations, Sample, Windows, failover_ns, measure, rto_ns

pytestmark = pytest.mark.unit
S = 1_000_000_000


def sample(t_s: float, *, roles: dict[str, str], ready: dict[str, bool], orders: int = 0) -> Sample:
    return Sample(
        ts_ns=int(t_s * S),
        ready=ready,
        market_data_age_s=0.1,
        trading_state="ACTIVE",
        positions={},
        venue_orders=orders,
        roles=roles,
    )


PAIR = {"execution": True, "execution-b": True}


def test_failover_is_the_first_moment_another_instance_leads_and_is_ready() -> None:
    samples = [
        sample(9, roles={"execution": "leader", "execution-b": "standby"}, ready=PAIR),
        # the frozen leader does not answer; the standby has not taken over yet
        sample(
            10.5, roles={"execution-b": "standby"}, ready={"execution": False, "execution-b": True}
        ),
        # it says leader but is not ready yet (still reconciling): not a failover
        sample(
            11.5, roles={"execution-b": "leader"}, ready={"execution": False, "execution-b": False}
        ),
        sample(
            12.2, roles={"execution-b": "leader"}, ready={"execution": False, "execution-b": True}
        ),
    ]
    assert failover_ns(samples, 10 * S) == int(12.2 * S)


def test_no_failover_when_the_same_instance_leads_again_or_nobody_led_before() -> None:
    restarted = [
        sample(9, roles={"execution": "leader"}, ready={"execution": True}),
        sample(11, roles={"execution": "leader"}, ready={"execution": True}),
    ]
    assert failover_ns(restarted, 10 * S) is None
    assert failover_ns(restarted[1:], 10 * S) is None


def test_rto_counts_until_ready_and_a_new_order_reaches_the_venue() -> None:
    one = {"execution": "leader"}
    samples = [
        sample(9, roles=one, ready={"execution": True}, orders=5),
        sample(11, roles={}, ready={"execution": False}, orders=5),
        sample(12, roles=one, ready={"execution": True}, orders=5),
        sample(13, roles=one, ready={"execution": True}, orders=6),
    ]
    obs = Observations(samples=samples, activities=[], orders=[], fills=[])
    assert rto_ns(obs, 10 * S) == 3 * S
    assert (
        rto_ns(Observations(samples=samples[:3], activities=[], orders=[], fills=[]), 10 * S)
        is None
    )


def positions_at(t_s: float, qty: float) -> Sample:
    return Sample(
        ts_ns=int(t_s * S),
        ready=PAIR,
        market_data_age_s=0.1,
        trading_state="ACTIVE",
        positions={"BTC": qty},
        venue_orders=0,
        roles={},
    )


def flatten_activity(t_s: float) -> dict[str, object]:
    return {"phase": "activity", "event": "start", "name": "flatten-desk", "ts_ns": int(t_s * S)}


@pytest.mark.parametrize(
    ("activities", "expected_s"),
    [
        ([flatten_activity(4)], 2.0),  # flat at 1 s was before anyone asked: not the flatten's
        ([], None),  # flat without a flatten is no time to flatten
    ],
)
def test_the_engines_own_time_to_flatten_runs_from_the_request_and_counts_flat_only_after_it(
    activities: list[dict[str, object]], expected_s: float | None
) -> None:
    samples = [positions_at(t, q) for t, q in ((1, 0.0), (2, 0.3), (3, 0.5), (5, 0.2), (6, 0.0))]
    obs = Observations(samples=samples, activities=activities, orders=[], fills=[])
    windows = Windows(baseline_start_ns=-10 * S, fault_start_ns=0, fault_end_ns=7 * S, end_ns=8 * S)
    measured = measure(obs, windows)
    assert measured.engine_says["time_to_flatten_s"] == expected_s
    assert "time_to_flatten_s" not in measured.fault, "the judged never grades itself"


def journal_order(cid: str, state: OrderState, created_ts_ns: int = 0) -> OrderRecord:
    return OrderRecord(
        created_ts_ns=created_ts_ns,
        client_order_id=cid,
        intent_id=cid,
        child_index=0,
        venue="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal("0.001"),
        state=state,
    )


def test_orders_recovery_left_unresolved_are_stuck_resting_and_finished_ones_are_not() -> None:
    orders = [
        journal_order("sent-never-answered", OrderState.SUBMITTING),
        journal_order("timed-out", OrderState.UNKNOWN),
        journal_order("journaled-never-sent", OrderState.PENDING),
        journal_order("resting", OrderState.OPEN),
        journal_order("half-filled-resting", OrderState.PARTIALLY_FILLED),
        journal_order("done", OrderState.FILLED),
        journal_order("refused", OrderState.REJECTED),
    ]
    end_ns = 30 * S
    orders.append(journal_order("sent-a-second-ago", OrderState.SUBMITTING, end_ns - S))
    obs = Observations(samples=[], activities=[], orders=orders, fills=[])
    windows = Windows(baseline_start_ns=0, fault_start_ns=S, fault_end_ns=2 * S, end_ns=end_ns)
    measured = measure(obs, windows)
    assert measured.fault["orders_stuck"] == 3, "an order in flight at the end is not stuck"
    assert measured.engine_says["orders_lost"] == 1, "the journal's own idea of a lost order"


def test_a_stack_still_down_at_the_end_gives_rto_as_a_lower_bound_that_fails_a_max_slo() -> None:
    from harness.gameday.slo import Slo, evaluate_slo

    one = {"execution": "leader"}
    samples = [
        sample(9, roles=one, ready={"execution": True}, orders=5),
        sample(11, roles={}, ready={"execution": False}, orders=5),
        sample(25, roles={}, ready={"execution": False}, orders=5),
    ]
    obs = Observations(samples=samples, activities=[], orders=[], fills=[])
    windows = Windows(
        baseline_start_ns=0, fault_start_ns=10 * S, fault_end_ns=20 * S, end_ns=25 * S
    )
    measured = measure(obs, windows)
    assert measured.fault["rto_s"] == 15.0 and measured.censored == {"rto_s"}
    rto = Slo(name="rto_s", objective="max", pass_threshold=8.0, warn_threshold=12.0, key=True)
    verdict = evaluate_slo(rto, scenario="s", value=15.0, censored=True)
    assert verdict.verdict.value == "fail" and "(the window ended first)" in verdict.message
    short = evaluate_slo(rto, scenario="s", value=5.0, censored=True)
    assert short.verdict.value == "inconclusive", "at least 5 s decides nothing against 8 s"


def test_min_liquidation_distance_is_the_venues_closest_over_the_scenario() -> None:
    windows = Windows(
        baseline_start_ns=0, fault_start_ns=10 * S, fault_end_ns=20 * S, end_ns=30 * S
    )
    distances = [(5.0, 7.1), (12.0, 4.3), (14.0, None), (29.0, 6.0), (31.0, 0.5)]
    samples = [
        replace(sample(t, roles={}, ready={"execution": True}), liquidation_distance_pct=distance)
        for t, distance in distances
    ]
    measured = measure(Observations(samples=samples, activities=[], orders=[], fills=[]), windows)
    assert measured.fault["min_liquidation_distance_pct"] == 4.3  # 0.5 came after the scenario
    flat = [sample(t, roles={}, ready={"execution": True}) for t in (1.0, 15.0)]
    none = measure(Observations(samples=flat, activities=[], orders=[], fills=[]), windows)
    assert none.fault["min_liquidation_distance_pct"] is None, "no position: no measurement"
