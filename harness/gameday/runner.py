"""The game-day runner: bring the stack up, play every scenario, measure, gate, report.

Per scenario:
    1. wait until every engine service is ready (bounded), then sample a baseline window
    2. `chaos run` the experiment in a subprocess (rollbacks always played), with our control
       timestamping every activity; its exit code is recorded but never trusted
    3. whatever happened: Toxiproxy reset, venue and feed faults cleared, every process thawed
       and released (the `finally` of every experiment)
    4. settle: wait until every service is ready again (bounded by settle_s), quiet the flow
    5. measure from the samples, the activities, the journal, the ground truth and the logs

Exit codes: 0 pass or warn, 1 fail or inconclusive, 2 the game day could not run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.chaos import probes
from harness.chaos.restore import restore_everything
from harness.chaos.stackref import RUN_DIR_KEY, control_token, control_url, http
from harness.errors import GameDayConfigError
from harness.gameday.measure import (
    Observations,
    Sample,
    Windows,
    measure,
    report_measurements,
)
from harness.gameday.sampler import Sampler
from harness.gameday.slo import (
    GameDay,
    ScenarioResult,
    ScenarioSpec,
    evaluate_scenario,
    gate,
    load_gameday,
)
from harness.load.cli import LOAD_ORDERS_PER_10S
from harness.load.runner import LoadConfigError, LoadRun, LoadSpec, extra_market_s
from harness.stack import Stack, StackOptions

Progress = Callable[[str], None]
EXPERIMENT_TIMEOUT_S = 300.0


@dataclass(frozen=True, kw_only=True)
class ScenarioRun:
    spec: ScenarioSpec
    result: ScenarioResult
    measurements: dict[str, Any]
    baseline: dict[str, Any]
    timeline: dict[str, Any]
    chaos_exit_code: int | None
    not_played: bool = False
    """The scenario's stack did not start: nothing was measured."""


def _not_run(spec: ScenarioSpec, error: str) -> ScenarioRun:
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


def _restore(stack: Stack) -> None:
    """The `finally` of every experiment: nothing it did may outlive it."""
    with contextlib.suppress(Exception):
        restore_everything(configuration=_config(stack))


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


def _position_of(symbol: str) -> Callable[[Sample], float | None]:
    return lambda sample: sample.positions.get(symbol)


def _timeline(samples: list[Sample], activities: list[dict[str, Any]], t0: int) -> dict[str, Any]:
    def series(get: Callable[[Sample], float | None]) -> list[list[float]]:
        return [[round((s.ts_ns - t0) / 1e9, 3), v] for s in samples if (v := get(s)) is not None]

    symbols = sorted({k for s in samples for k in s.positions})
    timeline: dict[str, Any] = {
        "t0_ns": t0,
        "series": {
            "market_data_age_s": series(lambda s: s.market_data_age_s),
            "tick_to_order_ms": series(lambda s: s.tick_to_order_ms),
            **{f"position_{sym}": series(_position_of(sym)) for sym in symbols},
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


def run_scenario(
    stack: Stack,
    spec: ScenarioSpec,
    out_dir: Path,
    progress: Progress,
    load: LoadSpec | None = None,
) -> ScenarioRun:
    config = _config(stack)
    scenario_dir = out_dir / spec.name
    scenario_dir.mkdir(parents=True, exist_ok=True)
    error: str | None = None
    chaos_code: int | None = None
    deviated: bool | None = None
    if _replay_finished(stack):
        error = "the replay ran out of recorded market (use a longer recording or a lower speed)"
    elif not _wait(lambda: probes.all_ready(configuration=config), 60):
        error = "the stack was not ready before the scenario"
    sampler = Sampler(stack)
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
    fault_end = fault_start
    try:
        if error is None:
            progress(f"{spec.name}: chaos run {spec.experiment.name}")
            journal = scenario_dir / "chaos-journal.json"
            proc = subprocess.run(
                [
                    str(Path(sys.executable).with_name("chaos")),
                    "--no-version-check",
                    "--log-file",
                    str(scenario_dir / "chaostoolkit.log"),
                    "run",
                    "--rollback-strategy",
                    "always",
                    "--journal-path",
                    str(journal),
                    str(spec.experiment),
                ],
                env={**os.environ, "STORMPROOF_RUN_DIR": str(stack.run_dir)},
                stdout=(scenario_dir / "chaos.out").open("wb"),
                stderr=subprocess.STDOUT,
                timeout=EXPERIMENT_TIMEOUT_S,
                check=False,
            )
            chaos_code = proc.returncode
            error, deviated = _judge_chaos_journal(journal)
    except subprocess.TimeoutExpired:
        error = f"chaos run did not finish within {EXPERIMENT_TIMEOUT_S:.0f}s"
    finally:
        fault_end = time.time_ns()
        _restore(stack)
    progress(f"{spec.name}: settling")
    _wait(lambda: probes.all_ready(configuration=config), spec.settle_s)
    time.sleep(min(spec.settle_s, 3.0))  # let orders placed at recovery reach the journal
    load_slis: dict[str, Any] = {}
    if load_run is not None:
        load_run.stop()
        load_slis = load_run.slis()
    sampler.stop()
    end = time.time_ns()
    activities = _read_jsonl(stack.run_dir / "activities.jsonl", fault_start)
    obs = Observations(
        samples=sampler.samples,
        activities=activities,
        orders=[],
        fills=[],
        log_events=_engine_log_events(stack, fault_start),
    )
    with contextlib.suppress(Exception):
        obs.duplicates = probes.duplicate_venue_orders(configuration=config)
    obs.position_drift = _persistent_drift(config)
    obs.orders, obs.fills = stack.read_journal()
    # the fault begins when the method does, not when `chaos run` starts (it spends a second or
    # two starting and probing the steady state first)
    method_start = next(
        (a["ts_ns"] for a in activities if a.get("phase") == "method" and a["event"] == "start"),
        fault_start,
    )
    windows = Windows(
        baseline_start_ns=baseline_start,
        fault_start_ns=method_start,
        fault_end_ns=fault_end,
        end_ns=end,
    )
    fault, baseline = measure(obs, windows)
    fault.update(load_slis)
    fault["steady_state_restored"] = None if deviated is None else float(not deviated)
    fault["chaos_exit_code"] = chaos_code
    result = evaluate_scenario(spec, values=fault, baselines=baseline, error=error)
    return ScenarioRun(
        spec=spec,
        result=result,
        measurements=report_measurements(fault, baseline),
        baseline=baseline,
        timeline=_timeline(sampler.samples, activities, baseline_start),
        chaos_exit_code=chaos_code,
    )


def _replay_finished(stack: Stack) -> bool:
    code, status = http("GET", f"{control_url(stack)}/status", token=control_token(stack))
    return code == 200 and isinstance(status, dict) and status.get("state") == "finished"


def _persistent_drift(config: dict[str, Any], reads: int = 5) -> float | None:
    """The smallest of a few reads of |engine position - venue|: a fill in flight between the
    two reads is timing, a drift that stays is an error."""
    seen: list[float] = []
    for _ in range(reads):
        with contextlib.suppress(Exception):
            drift = probes.position_drift(configuration=config)
            seen.append(float(sum(abs(float(d)) for d in drift.values())))
            if seen[-1] == 0:
                break
        time.sleep(0.3)
    return min(seen) if seen else None


def _judge_chaos_journal(path: Path) -> tuple[str | None, bool | None]:
    """(error, deviated). An error when the experiment cannot be judged: no journal, or the
    steady state was not met *before* the method ran (nothing about the fault can then be
    concluded, whatever `chaos run` exits with). `deviated`: the steady state after the method
    was not met."""
    if not path.exists():
        return "chaos run wrote no journal", None
    journal = json.loads(path.read_text())
    states = journal.get("steady_states") or {}
    before = states.get("before") or {}
    if before and not before.get("steady_state_met", False):
        return "baseline steady state not met before the method: inconclusive", None
    if journal.get("status") in ("aborted", "interrupted"):
        return f"experiment {journal.get('status')}", None
    after = states.get("after") or {}
    return None, (not after.get("steady_state_met", False)) if after else None


def _repository_root(gameday_file: Path) -> Path:
    """The nearest folder above the game-day file that has an experiments/ folder (experiment
    paths in a game-day file are relative to it)."""
    for folder in gameday_file.resolve().parents:
        if (folder / "experiments").is_dir():
            return folder
    return gameday_file.resolve().parent.parent


EXPERIMENT_ALLOWANCE_S = 90.0
"""Market time a scenario's experiment and measurement take beyond its baseline and settle."""


def scenario_load(gameday: GameDay, spec: ScenarioSpec) -> dict[str, Any] | None:
    """A scenario's load section (its own `load:`, else the game day's), None when it has none
    or opts out (`load: {off: true}`). Without a duration the load lasts the whole scenario."""
    raw = spec.load if spec.load is not None else gameday.load
    if not raw or raw.get("off"):
        return None
    values = {k: v for k, v in raw.items() if k != "off"}
    values.setdefault("duration_s", spec.baseline_s + spec.settle_s + EXPERIMENT_ALLOWANCE_S)
    return values


def market_seconds_needed(gameday: GameDay, speed: str) -> float:
    """Recorded market time a game day consumes at this replay speed, with a margin: a replay
    that runs out of market mid-game-day would look like a feed outage. Load bursts speed the
    replay up further (multiplier x duration)."""
    factor = 1.0 if speed == "max" else float(speed)
    wall_s = sum(s.baseline_s + s.settle_s + EXPERIMENT_ALLOWANCE_S for s in gameday.scenarios)
    burst_s = 0.0
    for spec in gameday.scenarios:
        load = scenario_load(gameday, spec)
        if load is not None:
            burst_s += extra_market_s(load, float(load["duration_s"]))
    if speed == "max":
        factor = 100.0  # a guess: max speed is as fast as the engine reads
    return (wall_s + burst_s) * factor * 1.3


def _stack_options(
    wanted: dict[str, Any],
    recording: Path,
    speed: str,
    extra_engine_toml: str,
    feeds: int | None,
    *,
    load: bool = False,
) -> StackOptions:
    """The scenario's `stack:` (feeds, journal, standby); `feeds` from the command line wins.
    Under load the venue allows more orders (Binance's 100 per 10 s would throttle the flow)."""
    return StackOptions(
        orders_per_10s=LOAD_ORDERS_PER_10S if load else None,
        recordings=[recording],
        speed=speed,
        extra_engine_toml=extra_engine_toml,
        feeds=feeds if feeds is not None else int(wanted.get("feeds", 2)),
        journal=wanted.get("journal", "sqlite"),
        standby=bool(wanted.get("standby", False)),
    )


def _load_spec(values: dict[str, Any] | None, spec: ScenarioSpec, repo: Path) -> LoadSpec | None:
    if values is None:
        return None
    try:
        return LoadSpec.from_mapping(values, root=repo, where=f"scenario {spec.name!r}")
    except LoadConfigError as exc:
        raise GameDayConfigError(str(exc)) from None


def _describe(options: StackOptions) -> str:
    parts = ["redis", "toxiproxy", "replay", "engine"]
    if options.journal == "postgres":
        parts.append("postgres journal")
    if options.standby:
        parts.append("execution standby")
    return f"{', '.join(parts)}; {options.feeds} feed(s)"


def run_gameday(
    path: Path,
    out_dir: Path,
    *,
    progress: Progress,
    recording: Path,
    speed: str = "10",
    extra_engine_toml: str = "",
    feeds: int | None = None,
) -> dict[str, Any]:
    """Run every scenario of the game day on a fresh local stack; write the three reports to
    out_dir; return the report."""
    from harness.gameday.html import render_html
    from harness.gameday.report import report_dict, write_junit, write_report_json

    gameday = load_gameday(path, root=_repository_root(path))
    out_dir.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    runs: list[ScenarioRun] = []
    stack: Stack | None = None
    running: StackOptions | None = None
    stacks = 0
    repo = _repository_root(path)
    loads = {
        spec.name: _load_spec(scenario_load(gameday, spec), spec, repo)
        for spec in gameday.scenarios
    }
    try:
        for spec in gameday.scenarios:
            options = _stack_options(
                spec.stack, recording, speed, extra_engine_toml, feeds, load=bool(loads[spec.name])
            )
            if options != running:
                if stack is not None:
                    progress("stopping the stack (the next scenario needs another one)")
                    with contextlib.suppress(Exception):
                        stack.down()
                stacks += 1
                # a fresh directory per stack: each keeps its logs for the report's readers
                stack = Stack(out_dir / ("stack" if stacks == 1 else f"stack-{stacks}"))
                progress(f"starting the stack ({_describe(options)})")
                try:
                    stack.up(options)
                except Exception as exc:  # this scenario is an error; the others still run
                    progress(f"{spec.name}: the stack did not start: {exc}")
                    with contextlib.suppress(Exception):
                        stack.down()
                    stack, running = None, None
                    runs.append(_not_run(spec, f"the stack did not start: {exc}"))
                    continue
                running = options
            assert stack is not None
            runs.append(run_scenario(stack, spec, out_dir, progress, loads[spec.name]))
    finally:
        if stack is not None:
            progress("stopping the stack")
            with contextlib.suppress(Exception):
                stack.down()
    results = [r.result for r in runs]
    verdict = gate(results, pass_score=gameday.pass_score, warn_score=gameday.warn_score)
    report = report_dict(
        gameday,
        verdict,
        results,
        measurements={r.spec.name: r.measurements for r in runs},
        started_at=started_at,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        environment={
            "python": sys.version.split()[0],
            "speed": speed,
            "recording": str(recording),
            "cpus": os.cpu_count(),
            "feeds": feeds if feeds is not None else "per game-day file",
        },
    )
    for entry, run in zip(report["scenarios"], runs, strict=True):
        entry["timeline"] = run.timeline
        entry["chaos_exit_code"] = run.chaos_exit_code
    if any(run.not_played for run in runs):
        report["exit_code"] = 2  # an error of the run, whatever the other scenarios scored
    write_report_json(out_dir / "report.json", report)
    write_junit(out_dir / "junit.xml", report)
    render_html(report, out_dir / "report.html")
    return report
