"""The game-day runner: bring the stack up, play every scenario (`harness.gameday.scenario`),
gate, report. One stack serves consecutive scenarios that need the same one; a bus observer
(`harness.truth.bus`) watches each stack from its start to its end.

Exit codes: 0 pass or warn, 1 fail or inconclusive, 2 the game day could not run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from harness import redis_acl
from harness.errors import GameDayConfigError
from harness.gameday.evidence import Evidence, declared, fault_activity
from harness.gameday.scenario import ScenarioRun, not_run, run_scenario
from harness.gameday.schema import LoadSection, StackSection
from harness.gameday.slo import GameDay, ScenarioSpec, gate, load_gameday
from harness.load.runner import LOAD_ORDERS_PER_10S, LoadSpec, extra_market_s
from harness.stack import Stack, StackOptions
from harness.strategies import STAGING_FUTURES_STRATEGIES
from harness.truth.bus import BusObserver

Progress = Callable[[str], None]


def repository_root(gameday_file: Path) -> Path:
    """The nearest folder above the game-day file that has an experiments/ folder (experiment
    paths in a game-day file are relative to it)."""
    for folder in gameday_file.resolve().parents:
        if (folder / "experiments").is_dir():
            return folder
    return gameday_file.resolve().parent.parent


EXPERIMENT_ALLOWANCE_S = 90.0
"""Market time a scenario's experiment and measurement take beyond its baseline and settle."""


def scenario_load(gameday: GameDay, spec: ScenarioSpec) -> LoadSection | None:
    """A scenario's load section (its own `load:`, else the game day's), None when it has none
    or opts out (`load: {off: true}`, which an empty `load: {}` means). Without a duration the load
    lasts the whole scenario."""
    load = spec.load if spec.load is not None else gameday.load
    if load is None or load.off:
        return None
    if load.duration_s is not None:
        return load
    whole_s = spec.baseline_s + spec.settle_s + EXPERIMENT_ALLOWANCE_S
    return msgspec.structs.replace(load, duration_s=whole_s)


def load_spec(load: LoadSection, repo: Path, *, where: str) -> LoadSpec:
    """The Locust run of a load section that `scenario_load` returned; its locustfile must
    exist (that it is given was checked when the game-day file was read)."""
    assert load.locustfile is not None
    assert load.duration_s is not None
    locustfile = repo / load.locustfile
    if not locustfile.is_file():
        raise GameDayConfigError(
            f"{where}: load: locustfile not found: {locustfile}"
            f" (locustfile paths are relative to the repository root {repo})"
        )
    return LoadSpec(
        locustfile=locustfile,
        shape=load.shape,
        duration_s=load.duration_s,
        users=load.users,
        intent_rate=load.intent_rate,
        burst_multiplier=load.burst_multiplier,
        burst_every_s=load.burst_every_s,
        burst_s=load.burst_s,
        ack_timeout_s=load.ack_timeout_s,
        intents_log=None if load.intents_log is None else Path(load.intents_log),
    )


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
            burst_s += extra_market_s(load, float(load.duration_s or 0))
    if speed == "max":
        factor = 100.0  # a guess: max speed is as fast as the engine reads
    return (wall_s + burst_s) * factor * 1.3


FUTURES_BALANCES = {"usdm": {"USDT": Decimal(3_000)}, "coinm": {"ETH": Decimal(1)}}
"""A futures account's wallet, per market (about the same value at the synthetic market's
3000): the futures game days' positions are sized against it."""


def _stack_options(
    wanted: StackSection,
    recording: Path,
    speed: str,
    extra_engine_toml: str,
    feeds: int | None,
    *,
    load: bool = False,
    engine_root: Path | None = None,
    market: str = "spot",
) -> StackOptions:
    """The scenario's `stack:` (feeds, journal, standby); `feeds` from the command line wins.
    Under load the venue allows more orders (Binance's 100 per 10 s would throttle the flow).
    A futures game day's stack trades its market with a wallet in the margin asset (USDT, or
    ETH for COIN-M) and strategies sized for it."""
    if market in FUTURES_BALANCES:
        return StackOptions(
            orders_per_10s=LOAD_ORDERS_PER_10S if load else None,
            recordings=[recording],
            speed=speed,
            extra_engine_toml=extra_engine_toml,
            market="coinm" if market == "coinm" else "usdm",
            feeds=feeds if feeds is not None else (wanted.feeds or 2),
            journal=wanted.journal or "sqlite",
            standby=bool(wanted.standby),
            engine_root=engine_root,
            balances=dict(FUTURES_BALANCES[market]),
            strategies=STAGING_FUTURES_STRATEGIES[market],
        )
    return StackOptions(
        orders_per_10s=LOAD_ORDERS_PER_10S if load else None,
        recordings=[recording],
        speed=speed,
        extra_engine_toml=extra_engine_toml,
        feeds=feeds if feeds is not None else (wanted.feeds or 2),
        journal=wanted.journal or "sqlite",
        standby=bool(wanted.standby),
        engine_root=engine_root,
    )


def experiment_evidence(spec: ScenarioSpec) -> tuple[list[Evidence], str | None]:
    """The evidence the scenario's experiment declares and the activity that is its fault (read
    before any stack starts, so that a malformed declaration fails the game day at once)."""
    try:
        experiment = json.loads(spec.experiment.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GameDayConfigError(f"experiment {spec.experiment}: unreadable: {exc}") from None
    where = f"experiment {spec.experiment.name}"
    return declared(experiment, where=where), fault_activity(experiment, where=where)


def _observe(stack: Stack) -> BusObserver:
    user = redis_acl.HARNESS
    observer = BusObserver(
        port=stack.ports["redis"],
        username=user,
        password=stack.secrets.get(redis_acl.password_key(user)),
        venue=stack.files.venue(),
        symbols=stack.files.symbols(),
    )
    observer.start()
    return observer


def _describe(options: StackOptions) -> str:
    parts = ["redis", "toxiproxy", "replay", "engine"]
    if options.journal == "postgres":
        parts.append("postgres journal")
    if options.standby:
        parts.append("execution standby")
    return f"{', '.join(parts)}; {options.feeds} feed(s)"


def select(
    gameday: GameDay,
    path: Path,
    *,
    only: set[str] | None = None,
    windows_s: dict[str, float] | None = None,
) -> GameDay:
    """The scenarios named in `only` (all without it), with `windows_s` over every scenario's
    `baseline_s` / `settle_s`."""
    if only is not None:
        missing = sorted(only - {s.name for s in gameday.scenarios})
        if missing:
            raise GameDayConfigError(f"{path}: no scenario {missing[0]!r}")
        gameday = dataclasses.replace(
            gameday, scenarios=tuple(s for s in gameday.scenarios if s.name in only)
        )
    if windows_s:
        gameday = dataclasses.replace(
            gameday,
            scenarios=tuple(
                dataclasses.replace(
                    s,
                    baseline_s=windows_s.get("baseline_s", s.baseline_s),
                    settle_s=windows_s.get("settle_s", s.settle_s),
                )
                for s in gameday.scenarios
            ),
        )
    return gameday


def run_gameday(
    path: Path,
    out_dir: Path,
    *,
    progress: Progress,
    recording: Path,
    speed: str = "10",
    extra_engine_toml: str = "",
    feeds: int | None = None,
    engine_root: Path | None = None,
    only: set[str] | None = None,
    windows_s: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Run every scenario of the game day (or those named in `only`) on a fresh local stack;
    write the three reports to out_dir; return the report. `engine_root`: run the engine from
    this copy (a mutant); `windows_s`: every scenario's `baseline_s` / `settle_s` instead of the
    file's."""
    gameday = select(
        load_gameday(path, root=repository_root(path)), path, only=only, windows_s=windows_s
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    runs: list[ScenarioRun] = []
    stack: Stack | None = None
    running: StackOptions | None = None
    stacks = 0
    repo = repository_root(path)
    loads = {}
    for spec in gameday.scenarios:
        load = scenario_load(gameday, spec)
        where = f"{path}: scenario {spec.name!r}"
        loads[spec.name] = None if load is None else load_spec(load, repo, where=where)
    evidence = {spec.name: experiment_evidence(spec) for spec in gameday.scenarios}
    observer: BusObserver | None = None
    try:
        for spec in gameday.scenarios:
            options = _stack_options(
                spec.stack,
                recording,
                speed,
                gameday.engine_toml + "\n" + extra_engine_toml,
                feeds,
                load=bool(loads[spec.name]),
                engine_root=engine_root,
                market=gameday.market,
            )
            if options != running:
                if observer is not None:
                    observer.stop()
                    observer = None
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
                    runs.append(not_run(spec, f"the stack did not start: {exc}"))
                    continue
                running = options
                observer = _observe(stack)
            assert stack is not None
            assert observer is not None
            runs.append(
                run_scenario(
                    stack,
                    observer,
                    spec,
                    evidence[spec.name][0],
                    out_dir,
                    progress,
                    loads[spec.name],
                    fault_starts_at=evidence[spec.name][1],
                )
            )
    finally:
        if observer is not None:
            observer.stop()
        if stack is not None:
            progress("stopping the stack")
            with contextlib.suppress(Exception):
                stack.down()
    return write_reports(
        gameday,
        runs,
        out_dir,
        started_at=started_at,
        environment={
            "python": sys.version.split()[0],
            "speed": speed,
            "recording": str(recording),
            "cpus": os.cpu_count(),
            "feeds": feeds if feeds is not None else "per game-day file",
            "engine": str(engine_root) if engine_root is not None else "this repository",
        },
    )


def write_reports(
    gameday: GameDay,
    runs: list[ScenarioRun],
    out_dir: Path,
    *,
    started_at: str,
    environment: dict[str, Any],
) -> dict[str, Any]:
    """Gate the scenarios and write the three reports (report.json, junit.xml, report.html),
    whatever the target; return the report."""
    from harness.gameday.html import render_html
    from harness.gameday.report import report_dict, write_junit, write_report_json

    results = [r.result for r in runs]
    verdict = gate(
        results,
        pass_score=gameday.pass_score,
        warn_score=gameday.warn_score,
        mode=gameday.gate_mode,
    )
    report = report_dict(
        gameday,
        verdict,
        results,
        measurements={r.spec.name: r.measurements for r in runs},
        started_at=started_at,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        environment=environment,
    )
    for entry, run in zip(report["scenarios"], runs, strict=True):
        entry["timeline"] = run.timeline
        entry["chaos_exit_code"] = run.chaos_exit_code
        entry["engine_says"] = run.engine_says
        entry["truth"] = run.truth
        entry["evidence"] = run.evidence
    if any(run.not_played for run in runs):
        report["exit_code"] = 2  # an error of the run, whatever the other scenarios scored
    write_report_json(out_dir / "report.json", report)
    write_junit(out_dir / "junit.xml", report)
    render_html(report, out_dir / "report.html")
    return report
