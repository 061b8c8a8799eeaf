"""One scenario of a game day, from the baseline to the verdict.

    1. wait until every engine service is ready (bounded), then sample a baseline window
    2. `chaos run` the experiment (rollbacks always played), with our control timestamping
       every activity and the evidence watcher looking at Toxiproxy, /proc and the replay
    3. whatever happened: Toxiproxy reset, venue and feed faults cleared, every process thawed
    4. settle: wait until every service is ready again (bounded by settle_s); stop the load and
       drain: wait (bounded) until every intent submitted has reached the venue or been refused
       in the open
    5. judge: the experiment's journal (a failed method activity proves nothing), the declared
       evidence of its fault, then the SLIs from ground truth (`truth_measures`), the engine's
       reactions (`measure`), and the engine's own account beside them ("engine says")

A scenario the harness cannot judge (no evidence, a failed action, ground truth unavailable)
carries an error: every SLO of it is inconclusive, and the gate stops the release.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from harness.chaos import probes
from harness.chaos.configuration import RUN_DIR_KEY
from harness.chaos.restore import restore_everything
from harness.gameday.chaosrun import ChaosOutcome, run_experiment
from harness.gameday.evidence import Evidence, Proof, prove, unproven
from harness.gameday.measure import Observations, Sample, Windows, measure
from harness.gameday.sampler import Sampler
from harness.gameday.slo import ScenarioResult, ScenarioSpec, evaluate_scenario
from harness.gameday.truth_measures import measure_truth
from harness.gameday.watch import EvidenceWatcher
from harness.load.runner import LoadRun, LoadSpec
from harness.stack import Stack
from harness.truth.bus import BusObserver
from harness.truth.collect import collect
from harness.truth.judge import lost_intents, total_drift
from harness.truth.records import Truth
from harness.truth.venue import TruthUnavailable

Progress = Callable[[str], None]
DRAIN_S = 20.0
"""After the load stops: how long intents still on their way may take to reach the venue."""


@dataclass(frozen=True, kw_only=True)
class ScenarioRun:
    spec: ScenarioSpec
    result: ScenarioResult
    measurements: dict[str, Any]
    baseline: dict[str, Any]
    timeline: dict[str, Any]
    chaos_exit_code: int | None
    engine_says: dict[str, Any] = field(default_factory=dict)
    truth: dict[str, Any] = field(default_factory=dict)
    """The detail behind the truth SLIs: lost intents, duplicates, observer errors."""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    not_played: bool = False
    """The scenario's stack did not start: nothing was measured."""


def not_run(spec: ScenarioSpec, error: str) -> ScenarioRun:
    """A scenario that could not be played: an error in every report, nothing measured."""
    return ScenarioRun(
        spec=spec,
        result=evaluate_scenario(spec, values={}, error=error),
        measurements={},
        baseline={},
        timeline={},
        chaos_exit_code=None,
        not_played=True,
    )


def _config(stack: Stack) -> dict[str, Any]:
    return {RUN_DIR_KEY: str(stack.run_dir)}


def _wait(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return True
        time.sleep(interval_s)
    return False


def run_scenario(
    stack: Stack,
    observer: BusObserver,
    spec: ScenarioSpec,
    evidence: list[Evidence],
    out_dir: Path,
    progress: Progress,
    load: LoadSpec | None = None,
    *,
    fault_starts_at: str | None = None,
) -> ScenarioRun:
    config = _config(stack)
    scenario_dir = out_dir / spec.name
    scenario_dir.mkdir(parents=True, exist_ok=True)
    error: str | None = None
    if _replay_finished(stack):
        error = "the replay ran out of recorded market (use a longer recording or a lower speed)"
    elif not _wait(lambda: probes.all_ready(configuration=config), 60):
        error = "the stack was not ready before the scenario"
    sampler = Sampler(stack.client())
    sampler.start()
    load_run = None
    if load is not None and error is None:
        progress(f"{spec.name}: load {load.locustfile.name} ({load.shape or 'constant'})")
        load_run = LoadRun(stack, load, scenario_dir / "load")
        load_run.start()
    baseline_start = time.time_ns()
    progress(f"{spec.name}: baseline {spec.baseline_s:.0f}s")
    time.sleep(spec.baseline_s)  # the baseline window is a measurement period
    fault_start = time.time_ns()
    outcome = ChaosOutcome(exit_code=None)
    watcher = EvidenceWatcher(stack)
    try:
        if error is None:
            progress(f"{spec.name}: chaos run {spec.experiment.name}")
            watcher.start()
            outcome = run_experiment(spec.experiment, stack.run_dir, scenario_dir)
            error = outcome.error
    finally:
        fault_end = time.time_ns()
        with contextlib.suppress(Exception):
            restore_everything(configuration=config)
    activities = _read_jsonl(stack.run_dir / "activities.jsonl", fault_start)
    seen = watcher.finish(activities) if watcher.is_alive() or watcher.started_ns else None
    progress(f"{spec.name}: settling")
    _wait(lambda: probes.all_ready(configuration=config), spec.settle_s)
    load_slis: dict[str, Any] = {}
    load_logs = sorted(out_dir.glob("*/load/intents.jsonl"))
    if load_run is not None:
        load_run.stop()
        load_slis = load_run.slis()
    intents_cut = _drain(stack, observer, baseline_start, load_logs, progress, spec.name)
    sampler.stop()
    end = time.time_ns()

    proofs = [prove(item, seen) for item in evidence] if seen is not None else []
    if error is None and seen is not None:
        error = unproven(proofs, len(evidence))
    method_start = fault_start_of(activities, fault_starts_at, default_ns=fault_start)
    windows = Windows(
        baseline_start_ns=baseline_start,
        fault_start_ns=method_start,
        fault_end_ns=fault_end,
        end_ns=end,
        intents_end_ns=intents_cut,
    )
    obs = Observations(
        samples=sampler.samples,
        activities=activities,
        orders=[],
        fills=[],
        log_events=_engine_log_events(stack, fault_start),
    )
    with contextlib.suppress(Exception):
        obs.orders, obs.fills = stack.read_journal()
    engine = measure(obs, windows)
    fault: dict[str, Any] = dict(engine.fault)
    baseline: dict[str, Any] = dict(engine.baseline)
    truth_detail: dict[str, Any] = {}
    censored: set[str] = set(engine.censored)
    try:
        truth = collect(
            stack.client(), observer, start_ns=baseline_start, end_ns=end, load_logs=load_logs
        )
        slis = measure_truth(
            truth,
            windows,
            activities=activities,
            venue_positions=[
                (s.ts_ns, s.venue_positions)
                for s in sampler.samples
                if s.venue_positions is not None
            ],
            refused_before=seen.refused_before if seen is not None else None,
            refused_after=seen.refused_after if seen is not None else None,
        )
        fault.update(slis.fault)
        baseline.update(slis.baseline)
        truth_detail = slis.detail
        censored |= slis.censored
    except TruthUnavailable as exc:
        error = error or f"ground truth unavailable: {exc}"
    fault["position_drift"] = _persistent_drift(config)
    fault.update({k: v for k, v in load_slis.items() if k not in fault})
    return judged(
        spec,
        outcome,
        fault=fault,
        baseline=baseline,
        truth_detail=truth_detail,
        error=error,
        censored=censored,
        timeline=timeline_of(sampler.samples, activities, baseline_start),
        proofs=proofs,
        engine_says=engine.engine_says,
    )


def judged(
    spec: ScenarioSpec,
    outcome: ChaosOutcome,
    *,
    fault: dict[str, Any],
    baseline: dict[str, Any],
    truth_detail: dict[str, Any],
    error: str | None,
    censored: set[str],
    timeline: dict[str, Any],
    proofs: list[Proof],
    engine_says: dict[str, Any] | None = None,
) -> ScenarioRun:
    """The scenario's SLOs evaluated over its measurements, with what the report shows beside
    them (whatever the target)."""
    fault["steady_state_restored"] = (
        None if outcome.deviated is None else float(not outcome.deviated)
    )
    fault["chaos_exit_code"] = outcome.exit_code
    if outcome.failed_rollbacks:
        truth_detail["failed_rollbacks"] = outcome.failed_rollbacks
    result = evaluate_scenario(
        spec, values=fault, baselines=baseline, error=error, censored=frozenset(censored)
    )
    return ScenarioRun(
        spec=spec,
        result=result,
        measurements={**fault, **{f"{k}_baseline": v for k, v in baseline.items()}},
        baseline=baseline,
        timeline=timeline,
        chaos_exit_code=outcome.exit_code,
        engine_says=engine_says or {},
        truth=truth_detail,
        evidence=[
            {"evidence": p.evidence.describe(), "proven": p.proven, "detail": p.detail}
            for p in proofs
        ],
    )


def fault_start_of(
    activities: list[dict[str, Any]], fault_starts_at: str | None, *, default_ns: int
) -> int:
    """When the fault began: the start of the activity the experiment names as its fault, else
    the method's start, else `default_ns` (the experiment's launch)."""
    method_start = next(
        (a["ts_ns"] for a in activities if a.get("phase") == "method" and a["event"] == "start"),
        default_ns,
    )
    if fault_starts_at is None:  # else the method prepared first: the fault is that activity
        return int(method_start)
    return int(
        next(
            (
                a["ts_ns"]
                for a in activities
                if a.get("phase") == "activity"
                and a.get("event") == "start"
                and a.get("name") == fault_starts_at
            ),
            method_start,
        )
    )


def _drain(
    stack: Stack,
    observer: BusObserver,
    since_ns: int,
    load_logs: list[Path],
    progress: Progress,
    name: str,
) -> int:
    return drain(
        lambda: collect(
            stack.client(), observer, start_ns=since_ns, end_ns=time.time_ns(), load_logs=load_logs
        ),
        observer,
        since_ns,
        progress,
        name,
    )


def drain(
    read_truth: Callable[[], Truth],
    observer: BusObserver,
    since_ns: int,
    progress: Progress,
    name: str,
) -> int:
    """Wait (at most DRAIN_S) until every intent of the scenario submitted before now (the cut,
    returned) has an outcome and the observer has read the bus up to the cut: an intent sent
    just before the load stopped deserves its chance to reach the venue. The strategies keep
    trading meanwhile; what they ask after the cut is not judged for loss here."""
    cut_ns = time.time_ns()
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        try:
            truth = read_truth()
        except TruthUnavailable:
            return cut_ns
        scenario = [i for i in truth.intents if since_ns <= i.submitted_ns < cut_ns]
        if observer.caught_up_ns >= cut_ns and not lost_intents(
            scenario, truth.orders, truth.answers
        ):
            return cut_ns
        time.sleep(0.5)
    progress(f"{name}: some intents still had no outcome after {DRAIN_S:.0f}s")
    return cut_ns


def _replay_finished(stack: Stack) -> bool:
    code, status = stack.client().control("GET", "/status")
    return code == 200 and isinstance(status, dict) and status.get("state") == "finished"


def _persistent_drift(config: dict[str, Any], reads: int = 5) -> float | None:
    """The smallest of a few reads of |leader position - venue|: a fill in flight between the
    two reads is timing, a drift that stays is an error. None when no leader answered."""
    seen: list[float] = []
    for _ in range(reads):
        with contextlib.suppress(Exception):
            drift = probes.position_drift(configuration=config)
            total = total_drift({k: Decimal(v) for k, v in drift.items()})
            if total is not None:
                seen.append(total)
                if total == 0:
                    break
        time.sleep(0.3)
    return min(seen) if seen else None


def _read_jsonl(path: Path, since_ns: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            if record.get("ts_ns", 0) >= since_ns:
                out.append(record)
    return out


def _engine_log_events(stack: Stack, since_ns: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for log in sorted((stack.run_dir / "logs").glob("engine-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            with contextlib.suppress(json.JSONDecodeError, ValueError, KeyError):
                record = json.loads(line)
                ts = datetime.fromisoformat(record["ts"].replace("Z", "+00:00"))
                record["ts_ns"] = int(ts.timestamp() * 1e9)
                if record["ts_ns"] >= since_ns:
                    record["source"] = log.stem
                    events.append(record)
    return sorted(events, key=lambda e: e["ts_ns"])


def timeline_of(samples: list[Sample], activities: list[dict[str, Any]], t0: int) -> dict[str, Any]:
    def series(get: Callable[[Sample], float | None]) -> list[list[float]]:
        return [[round((s.ts_ns - t0) / 1e9, 3), v] for s in samples if (v := get(s)) is not None]

    symbols = sorted({k for s in samples for k in s.positions})
    assets = sorted({k for s in samples for k in (s.venue_positions or {})})
    timeline: dict[str, Any] = {
        "t0_ns": t0,
        "series": {
            "market_data_age_s": series(lambda s: s.market_data_age_s),
            "tick_to_order_ms": series(lambda s: s.tick_to_order_ms),
            **{f"position_{sym}": series(_position_of(sym)) for sym in symbols},
            **{f"venue_position_{asset}": series(_venue_position_of(asset)) for asset in assets},
            "services_ready": series(lambda s: float(sum(s.ready.values()))),
        },
        "faults": [],
        "events": [],
    }
    starts: dict[str, int] = {}
    for record in activities:
        if record.get("phase") != "activity":
            continue
        name = str(record.get("name"))
        if record["event"] == "start":
            starts[name] = record["ts_ns"]
        elif name in starts and record.get("type") == "action":
            timeline["events"].append({"t_s": round((starts[name] - t0) / 1e9, 3), "label": name})
    method = [r for r in activities if r.get("phase") == "method"]
    rollbacks = [r for r in activities if r.get("phase") == "rollbacks" and r["event"] == "end"]
    if method:
        end = rollbacks[-1]["ts_ns"] if rollbacks else method[-1]["ts_ns"]
        timeline["faults"].append(
            {
                "name": "fault (method to rollbacks)",
                "start_s": round((method[0]["ts_ns"] - t0) / 1e9, 3),
                "end_s": round((end - t0) / 1e9, 3),
            }
        )
    return timeline


def _position_of(symbol: str) -> Callable[[Sample], float | None]:
    return lambda sample: sample.positions.get(symbol)


def _venue_position_of(asset: str) -> Callable[[Sample], float | None]:
    def get(sample: Sample) -> float | None:
        value = (sample.venue_positions or {}).get(asset)
        return None if value is None else float(value)

    return get
