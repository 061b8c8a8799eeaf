"""A fault counts only when its injection is observed: declared evidence, proven or not by what
the watcher saw; and `chaos run`'s journal, read for what its exit code hides."""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import GameDayConfigError
from harness.gameday.chaosrun import judge_journal
from harness.gameday.evidence import (
    Evidence,
    Observed,
    declared,
    largest_drop_pct,
    largest_mark_divergence_pct,
    prove,
    unproven,
)

pytestmark = pytest.mark.unit


def experiment(*items: dict[str, Any]) -> dict[str, Any]:
    return {"extensions": [{"name": "stormproof", "evidence": list(items)}]}


def test_declared_evidence_is_read_from_the_experiments_extension() -> None:
    found = declared(
        experiment(
            {"kind": "process_restarted", "process": "engine-execution"},
            {"kind": "orders_in_flight", "activity": "kill", "min": 2},
        ),
        where="x.json",
    )
    assert [e.kind for e in found] == ["process_restarted", "orders_in_flight"]
    assert found[1].describe() == "orders_in_flight(activity=kill, min=2)"
    assert declared({"title": "no extension"}, where="x.json") == []


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ({"kind": "telepathy"}, "unknown kind 'telepathy'"),
        ({"kind": "toxic", "link": "engine_to_feed"}, "toxic needs type"),
        ({"kind": "link_down", "link": "x", "proxy": "y"}, "does not take proxy"),
        ({"kind": "venue_refused", "status": 429, "min": 0}, "min must be a number >= 1"),
        ({"kind": "venue_fault", "fault": "ban", "min": -1}, "min must be a number >= 0"),
        ("process_down", "an object with a 'kind'"),
    ],
)
def test_malformed_evidence_is_a_clear_error(item: Any, words: str) -> None:
    with pytest.raises(GameDayConfigError, match=words):
        declared(experiment(item), where="x.json")


def evidence(kind: str, **params: Any) -> Evidence:
    return Evidence(kind=kind, params=params)


def test_a_restart_needs_the_old_pid_gone_and_a_new_one_under_the_name() -> None:
    seen = Observed(pids={"engine-execution": [100, 200]}, vanished={100})
    assert prove(evidence("process_restarted", process="engine-execution"), seen).proven
    killed_not_back = Observed(pids={"engine-execution": [100]}, vanished={100})
    assert not prove(
        evidence("process_restarted", process="engine-execution"), killed_not_back
    ).proven
    assert prove(evidence("process_down", process="engine-*"), killed_not_back).proven
    untouched = Observed(pids={"engine-execution": [100]})
    assert not prove(evidence("process_down", process="engine-execution"), untouched).proven


def test_links_toxics_and_frozen_processes_are_proven_by_what_was_seen() -> None:
    seen = Observed(
        disabled_links={"engine_to_feed"},
        toxics={"engine_to_rest": {"latency"}},
        pids={"engine-execution-b": [5]},
        frozen={"engine-execution-b"},
    )
    assert prove(evidence("link_down", link="engine_to_feed"), seen).proven
    assert not prove(evidence("link_down", link="engine_to_rest"), seen).proven
    assert prove(evidence("toxic", link="engine_to_rest", type="latency"), seen).proven
    assert not prove(evidence("toxic", link="engine_to_rest", type="timeout"), seen).proven
    assert prove(evidence("process_frozen", process="engine-execution*"), seen).proven


def test_venue_faults_count_only_when_applied_and_refusals_only_when_they_grew() -> None:
    seen = Observed(
        faults=[
            {"scope": "venue", "kind": "rate_limit", "applied": 0},
            {"scope": "venue", "kind": "ban", "applied": 3},
        ],
        refused_before={429: 5, 418: 0},
        refused_after={429: 5, 418: 2},
    )
    assert not prove(evidence("venue_fault", fault="rate_limit"), seen).proven
    # min 0: the fault was in force, whether or not a request met it; never when it did not start
    assert prove(evidence("venue_fault", fault="rate_limit", min=0), seen).proven
    assert not prove(evidence("venue_fault", fault="timeout", min=0), seen).proven
    assert prove(evidence("venue_fault", fault="ban", min=3), seen).proven
    assert not prove(evidence("venue_refused", status=429), seen).proven
    assert prove(evidence("venue_refused", status=418, min=2), seen).proven


def test_an_order_in_flight_at_the_kill_is_read_from_the_kill_actions_output() -> None:
    seen = Observed(activity_outputs={"kill": {"pid": 1, "in_flight": 2}, "other": "text"})
    assert prove(evidence("orders_in_flight", activity="kill", min=2), seen).proven
    assert not prove(evidence("orders_in_flight", activity="kill", min=3), seen).proven
    assert not prove(evidence("orders_in_flight", activity="other"), seen).proven
    assert not prove(evidence("orders_in_flight", activity="missing"), seen).proven


def test_a_market_drop_is_read_from_the_replays_own_mid() -> None:
    mids = [(0, 100.0), (1, 101.0), (2, 98.98), (3, 100.0)]
    assert largest_drop_pct(mids) == pytest.approx(2.0)
    seen = Observed(mids=mids)
    assert prove(evidence("market_drop", min_drop_pct=1.5), seen).proven
    assert not prove(evidence("market_drop", min_drop_pct=2.5), seen).proven
    assert not prove(evidence("market_drop", min_drop_pct=1), Observed()).proven


def test_no_evidence_declared_or_any_unproven_makes_the_scenario_inconclusive() -> None:
    assert unproven([], 0) == "the experiment declares no evidence of its fault: inconclusive"
    proof = prove(evidence("link_down", link="engine_to_feed"), Observed())
    reason = unproven([proof], 1)
    assert reason is not None and reason.startswith("fault not proven injected: link_down(")
    ok = prove(evidence("link_down", link="x"), Observed(disabled_links={"x"}))
    assert unproven([ok], 1) is None


# --- the chaos journal --------------------------------------------------------------------------


def journal(
    run: list[dict[str, Any]], *, before: bool = True, after: bool = True
) -> dict[str, Any]:
    return {
        "status": "completed",
        "steady_states": {
            "before": {"steady_state_met": before, "probes": []},
            "after": {"steady_state_met": after, "probes": []},
        },
        "run": run,
        "rollbacks": [],
    }


def activity(
    name: str, status: str = "succeeded", exception: list[str] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"activity": {"name": name, "type": "action"}, "status": status}
    if exception is not None:
        entry["exception"] = exception
    return entry


def test_a_method_action_that_raised_makes_the_experiment_unjudgeable() -> None:
    outcome = judge_journal(
        journal(
            [
                activity("hold-a-position"),
                activity(
                    "kill", "failed", ["Traceback...\n", "ActivityFailed: no order in flight\n"]
                ),
            ]
        )
    )
    assert outcome.error is not None
    assert "kill (failed: ActivityFailed: no order in flight)" in outcome.error


def test_a_clean_journal_gives_the_steady_state_after_the_method() -> None:
    assert judge_journal(journal([activity("kill")])).deviated is False
    assert judge_journal(journal([activity("kill")], after=False)).deviated is True
    unmet = judge_journal(journal([activity("kill")], before=False))
    assert unmet.error is not None and "baseline steady state not met" in unmet.error


# --- on Kubernetes: what the API server showed --------------------------------------------------


def test_a_pod_is_replaced_only_when_one_went_away_and_another_uid_came_after() -> None:
    evidence = Evidence(kind="pod_replaced", params={"app": "execution"})
    replaced = Observed(pods={"execution": ["a", "b", "c"]}, pods_gone={"a"})
    assert prove(evidence, replaced).proven
    # a pod went away but nothing new came: deleted, not replaced
    assert not prove(evidence, Observed(pods={"execution": ["a", "b"]}, pods_gone={"b"})).proven
    # new pods came, none went: a scale-up
    assert not prove(evidence, Observed(pods={"execution": ["a", "b"]})).proven


def test_no_ready_pods_needs_a_look_that_saw_none() -> None:
    evidence = Evidence(kind="no_ready_pods", params={"app": "feed"})
    assert prove(evidence, Observed(ready_counts={"feed": [1, 0, 1]})).proven
    assert not prove(evidence, Observed(ready_counts={"feed": [1, 1]})).proven
    assert not prove(evidence, Observed()).proven


def test_a_leader_cut_off_is_a_lease_moving_away_from_a_pod_still_there() -> None:
    evidence = Evidence(kind="leader_cut_off", params={})
    assert prove(evidence, Observed(leader_moves=[("p1", "p2", True)])).proven
    # the old leader's pod was gone when the Lease moved: a kill, not a cut
    assert not prove(evidence, Observed(leader_moves=[("p1", "p2", False)])).proven
    assert not prove(evidence, Observed()).proven


def test_a_mark_move_is_the_venues_mark_against_the_replays_mid_at_that_moment() -> None:
    mids = [(0, 100.0), (10, 101.0), (20, 101.0)]
    marks = [(5, 100.2), (12, 98.0), (25, 101.5)]
    # 98.0 against the mid of 101.0 current at 12 ms: 2.97%
    assert largest_mark_divergence_pct(marks, mids) == pytest.approx(3 / 101 * 100)
    seen = Observed(mids=mids, marks=marks)
    assert prove(evidence("mark_moved", min_pct=2.5), seen).proven
    assert not prove(evidence("mark_moved", min_pct=3.5), seen).proven
    assert not prove(evidence("mark_moved", min_pct=1), Observed(marks=marks)).proven
    assert largest_mark_divergence_pct([(1, 50.0)], [(5, 100.0)]) is None  # no mid before it


def test_a_funding_spike_is_proven_by_the_rates_the_venue_applied() -> None:
    seen = Observed(funding_rates=[(1, 0.0001), (2, 0.01), (3, -0.012), (4, 0.0001)])
    assert prove(evidence("funding_spiked", min_rate=0.005, min=2), seen).proven
    assert not prove(evidence("funding_spiked", min_rate=0.005, min=3), seen).proven
    assert not prove(evidence("funding_spiked", min_rate=0.02), seen).proven
    assert not prove(evidence("funding_spiked", min_rate=0.001), Observed()).proven


def test_an_order_at_the_exchange_beside_the_engine_is_proven_by_the_venues_orders() -> None:
    seen = Observed(
        venue_orders=[
            {"client_order_id": "by-hand-1", "executed_qty": "3"},
            {"client_order_id": "by-hand-2", "executed_qty": "0"},  # never filled
            {"client_order_id": "spabc-0", "executed_qty": "1"},
        ]
    )
    assert prove(evidence("venue_order", client_order_id_prefix="by-hand-"), seen).proven
    assert not prove(evidence("venue_order", client_order_id_prefix="by-hand-", min=2), seen).proven
    assert not prove(evidence("venue_order", client_order_id_prefix="x"), seen).proven
