"""Game-day measurements are pure functions of what the harness observed."""

from __future__ import annotations

import pytest

from harness.gameday.measure import Observations, Sample, failover_ns, rto_ns

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
