"""A game day against a Kubernetes deployment (`stormproof gameday run FILE --target k8s`).

Per scenario, as on the local stack (docs/gamedays.md): every workload Ready, the baseline,
the experiment (`chaos run`, the cluster found through KUBECONFIG / KUBERNETES_CONTEXT, or in
the cluster), the settle (every workload Ready again), the drain, then the same judge over the
same ground truth: the simulator's orders, refusals and mids through the venue Service, the
intents and answers on the bus through the read-only `harness` Redis user. Faults are proven by
what the API server showed (harness.gameday.k8s_watch), never by the action's own word. The
engine's /status, journal and logs are not read at all: on this target there is no "engine
says" column. The three reports are the local target's (harness.gameday.runner.write_reports).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import GameDayConfigError
from harness.gameday.chaosrun import ChaosOutcome, run_experiment
from harness.gameday.evidence import Evidence, Observed, prove, unproven
from harness.gameday.k8s_link import KubeLink, KubeTarget, connect
from harness.gameday.k8s_watch import KubeEvidenceWatcher
from harness.gameday.measure import Windows
from harness.gameday.runner import experiment_evidence, repository_root, select, write_reports
from harness.gameday.scenario import (
    ScenarioRun,
    drain,
    fault_start_of,
    judged,
    not_run,
    timeline_of,
)
from harness.gameday.slo import ScenarioSpec, load_gameday
from harness.gameday.truth_measures import measure_truth
from harness.truth import judge
from harness.truth.bus import BusObserver
from harness.truth.collect import collect_from
from harness.truth.records import VenueOrder
from harness.truth.venue import TruthUnavailable

Progress = Callable[[str], None]
READY_WAIT_S = 300.0
"""Before a scenario: a fresh rollout (images loading, Redis's volume) may take minutes."""


def run_k8s_gameday(
    path: Path,
    out_dir: Path,
    *,
    target: KubeTarget,
    progress: Progress,
    only: set[str] | None = None,
    windows_s: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Run the game day's scenarios against the deployment `target` names (deployed already:
    `stormproof deploy apply`); write the three reports to out_dir; return the report."""
    root = repository_root(path)
    gameday = select(load_gameday(path, root=root), path, only=only, windows_s=windows_s)
    evidence = {spec.name: experiment_evidence(spec) for spec in gameday.scenarios}
    if any(s.load is not None for s in gameday.scenarios) or gameday.load is not None:
        raise GameDayConfigError(
            f"{path}: load: the k8s target runs no load generator (docs/kubernetes.md); the"
            " engine's own strategies are the order flow"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    link = connect(target)
    venue, symbols = link.venue_and_symbols()
    progress(f"cluster: namespace {target.namespace}, venue {link.control_url}, bus {venue}")
    observer = link.observer(venue=venue, symbols=symbols)
    observer.start()
    runs: list[ScenarioRun] = []
    try:
        for spec in gameday.scenarios:
            fault_evidence, fault_starts_at = evidence[spec.name]
            runs.append(
                run_k8s_scenario(
                    link,
                    observer,
                    spec,
                    fault_evidence,
                    out_dir,
                    progress,
                    fault_starts_at=fault_starts_at,
                )
            )
    finally:
        observer.stop()
    return write_reports(
        gameday,
        runs,
        out_dir,
        started_at=started_at,
        environment={
            "target": "k8s",
            "namespace": target.namespace,
            "context": target.context or ("in-cluster" if target.in_cluster else "current"),
            "venue": link.control_url,
        },
    )


def _wait_ready(link: KubeLink, timeout_s: float) -> list[str]:
    """What is still not ready after at most `timeout_s`: every workload rolled out and Ready
    (their status can lag a node's restart), and the venue's record answering through its
    Service (the judge's ground truth, and every experiment's steady state)."""
    deadline = time.monotonic() + timeout_s
    while True:
        waiting = link.workloads_ready()
        if not waiting and link.get(f"/truth/orders?since_ms={time.time_ns() // 10**6}")[0] != 200:
            waiting = ["the venue's control API (Service venue)"]
        if not waiting or time.monotonic() >= deadline:
            return waiting
        time.sleep(1.0)


def run_k8s_scenario(
    link: KubeLink,
    observer: BusObserver,
    spec: ScenarioSpec,
    evidence: list[Evidence],
    out_dir: Path,
    progress: Progress,
    *,
    fault_starts_at: str | None = None,
) -> ScenarioRun:
    scenario_dir = out_dir / spec.name
    scenario_dir.mkdir(parents=True, exist_ok=True)
    waiting = _wait_ready(link, READY_WAIT_S)
    if waiting:
        return not_run(spec, f"not Ready before the scenario: {', '.join(waiting)}")
    baseline_start = time.time_ns()
    progress(f"{spec.name}: baseline {spec.baseline_s:.0f}s")
    time.sleep(spec.baseline_s)  # the baseline window is a measurement period
    fault_start = time.time_ns()
    watcher = KubeEvidenceWatcher(link)
    watcher.start()
    progress(f"{spec.name}: chaos run {spec.experiment.name}")
    outcome: ChaosOutcome = run_experiment(
        spec.experiment, None, scenario_dir, env=link.chaos_env()
    )
    fault_end = time.time_ns()
    seen = watcher.finish()
    error = outcome.error
    activities = _activities(scenario_dir / "chaos-journal.json")
    progress(f"{spec.name}: settling")
    _wait_ready(link, spec.settle_s)

    def read_truth() -> Any:
        return collect_from(link.get, observer, start_ns=baseline_start, end_ns=time.time_ns())

    intents_cut = drain(read_truth, observer, baseline_start, progress, spec.name)
    end = time.time_ns()
    proofs = [prove(item, seen) for item in evidence]
    if error is None:
        error = unproven(proofs, len(evidence))
    method_start = fault_start_of(activities, fault_starts_at, default_ns=fault_start)
    windows = Windows(
        baseline_start_ns=baseline_start,
        fault_start_ns=method_start,
        fault_end_ns=fault_end,
        end_ns=end,
        intents_end_ns=intents_cut,
    )
    fault: dict[str, Any] = {}
    baseline: dict[str, Any] = {}
    truth_detail: dict[str, Any] = {}
    censored: set[str] = set()
    try:
        truth = read_truth()
        slis = measure_truth(truth, windows, activities=activities)
        fault, baseline, truth_detail = slis.fault, slis.baseline, slis.detail
        censored = slis.censored
        fenced = _fencing(truth.orders, seen, windows)
        if fenced is not None:
            fault["orders_after_lease_expiry"] = len(fenced)
            truth_detail["orders_after_lease_expiry"] = [o.client_order_id for o in fenced]
    except TruthUnavailable as exc:
        error = error or f"ground truth unavailable: {exc}"
    if seen.errors:
        truth_detail["watcher_errors"] = seen.errors[:20]
    return judged(
        spec,
        outcome,
        fault=fault,
        baseline=baseline,
        truth_detail=truth_detail,
        error=error,
        censored=censored,
        timeline=timeline_of([], activities, baseline_start),
        proofs=proofs,
    )


def _fencing(
    orders: Sequence[VenueOrder], seen: Observed, windows: Windows
) -> list[VenueOrder] | None:
    """The deposed leader's orders after its Lease could be taken, when the Lease moved away
    from a live pod (a cut-off) and that pod's orders can be told apart; None otherwise."""
    for old, _new, alive in seen.leader_moves:
        expiry_s = seen.lease_expiry_s.get(old)
        if alive and expiry_s is not None:
            return judge.orders_after_lease_expiry(
                orders,
                led_from_ms=windows.baseline_start_ns // 1_000_000,
                led_until_ms=windows.fault_start_ns // 1_000_000,
                expiry_ms=int(expiry_s * 1000),
            )
    return None


def _activities(journal_path: Path) -> list[dict[str, Any]]:
    """The experiment's activities from its Chaos Toolkit journal, shaped as the local stack's
    activities.jsonl: the method's start and end, each activity's start and end."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        journal = json.loads(journal_path.read_text())
        out: list[dict[str, Any]] = []
        for phase, runs in (("method", journal.get("run") or []),
                            ("rollbacks", journal.get("rollbacks") or [])):  # fmt: skip
            records = []
            for run in runs:
                activity = run["activity"]
                for event in ("start", "end"):
                    records.append(
                        {
                            "name": activity["name"],
                            "type": activity.get("type"),
                            "phase": "activity",
                            "event": event,
                            "ts_ns": _ns(run[event]),
                        }
                    )
            if records:
                first, last = records[0]["ts_ns"], records[-1]["ts_ns"]
                out.append({"name": phase, "phase": phase, "event": "start", "ts_ns": first})
                out.extend(records)
                out.append({"name": phase, "phase": phase, "event": "end", "ts_ns": last})
        return sorted(out, key=lambda a: a["ts_ns"])
    return []


def _ns(stamp: str) -> int:
    """Chaos Toolkit's journal times: ISO 8601 in UTC, without a zone."""
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000) * 1_000
