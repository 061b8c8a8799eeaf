"""`stormproof`: the local stack and the demo."""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from harness.errors import HarnessError
from harness.load.cli import load_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="stormproof: prove your trading system survives the bad day.",
)
stack_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The local stack: redis, toxiproxy, replay+simulator, engine.",
)
app.add_typer(stack_app, name="stack")
gameday_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Game days: chaos scenarios judged by SLOs, with reports and a CI gate.",
)
app.add_typer(gameday_app, name="gameday")
app.add_typer(load_app, name="load")
chaos_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The Chaos Toolkit extension (harness.chaos).",
)
app.add_typer(chaos_app, name="chaos")
console = Console()

DEFAULT_RUN_DIR = Path(".stormproof/stack")


def _fail(message: str) -> None:
    print(f"stormproof: {message}", file=sys.stderr)
    raise typer.Exit(2)


def _synthetic_recording(
    run_dir: Path, *, duration_s: float, seed: int, regime: str, crash_at_s: float | None = None
) -> Path:
    from replay.synth import SynthSpec, write_recording

    crash = f"-crash{int(crash_at_s)}s" if crash_at_s is not None else ""
    path = run_dir / f"synth-{regime}-{seed}-{int(duration_s)}s{crash}.gz"
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        spec = SynthSpec(duration_s=duration_s, seed=seed, regime=regime, crash_at_s=crash_at_s)
        write_recording(spec, tmp)
        tmp.rename(path)
    return path


CRASH_AFTER_S = 60.0
"""Calm market between what a run needs and the flash crash planted after it."""
CRASH_TAIL_S = 900.0
"""Recorded market from the end of the calm part: the crash, its aftermath, and room for the
scenarios after a flash-crash one (15 minutes of market is 90 s of a game day at 10x)."""


def recording_covering(market_s: float) -> Path:
    """The cached synthetic recording (seed 42) for a run that needs `market_s` of market: calm
    for at least that long (in whole half hours, so that runs of a similar length share one
    file), then a flash crash that the run never reaches unless an experiment seeks to it
    (`replay_seek_to_drop`). Before the crash the file is the calm regime's, message for
    message."""
    calm_s = max(1800, math.ceil(market_s / 1800) * 1800)
    return _synthetic_recording(
        Path(".stormproof"),
        duration_s=calm_s + CRASH_TAIL_S,
        seed=42,
        regime="flash_crash",
        crash_at_s=calm_s + CRASH_AFTER_S,
    )


def _print_endpoints(stack: object) -> None:
    table = Table(title="stormproof stack", show_header=True)
    table.add_column("component")
    table.add_column("listens on")
    for name, url in stack.endpoints().items():  # type: ignore[attr-defined]
        table.add_row(name, url)
    console.print(table)


@stack_app.command("up")
def stack_up(
    recording: Annotated[
        list[Path],
        typer.Option("--recording", "-r", help="recording(s) to replay; default: a synthetic one"),
    ] = [],  # noqa: B006
    speed: Annotated[str, typer.Option(help="replay speed: 1, 10, ... or max")] = "10",
    run_dir: Annotated[
        Path, typer.Option(help="where the stack keeps its files")
    ] = DEFAULT_RUN_DIR,
    engine_mode: Annotated[
        str, typer.Option(help="split (a process per service) or all")
    ] = "split",
    seed: Annotated[int, typer.Option(help="seed of the synthetic recording")] = 42,
    keep_state: Annotated[
        bool, typer.Option("--keep-state", help="keep journal and redis data of the last run")
    ] = False,
) -> None:
    """Start the stack in the background, wait until every process is ready, print endpoints."""
    from harness.stack import Stack, StackOptions

    if engine_mode not in ("split", "all"):
        _fail("--engine-mode must be split or all")
    try:
        recordings = recording or [
            _synthetic_recording(run_dir, duration_s=1800, seed=seed, regime="calm")
        ]
        stack = Stack(run_dir)
        with console.status("starting the stack (redis, toxiproxy, replay, engine)..."):
            stack.up(
                StackOptions(
                    recordings=recordings,
                    speed=speed,
                    keep_state=keep_state,
                    engine_mode=cast(Any, engine_mode),
                )
            )
    except HarnessError as exc:
        _fail(str(exc))
    _print_endpoints(stack)
    console.print(f"secrets and tokens: {stack.run_dir / 'secrets.env'} (mode 0600)")


@stack_app.command("down")
def stack_down(
    run_dir: Annotated[Path, typer.Option(help="the stack's run directory")] = DEFAULT_RUN_DIR,
) -> None:
    """Stop every process of the stack (SIGTERM, then SIGKILL after a timeout)."""
    from harness.stack import Stack

    try:
        codes = Stack(run_dir).down()
    except HarnessError as exc:
        _fail(str(exc))
    unclean = {name: c for name, c in codes.items() if c and c[-1] != 0}
    for name, exits in codes.items():
        console.print(f"{name}: exit code {exits[-1] if exits else 'n/a'}")
    if unclean:
        _fail(f"processes did not exit cleanly: {unclean}")


@stack_app.command("status")
def stack_status(
    run_dir: Annotated[Path, typer.Option(help="the stack's run directory")] = DEFAULT_RUN_DIR,
) -> None:
    """Phase of the stack and of every process."""
    from harness.stack import Stack

    stack = Stack(run_dir)
    try:
        state = stack.state()
    except HarnessError as exc:
        _fail(str(exc))
    alive = stack.supervisor_pid() is not None
    console.print(f"phase: {state['phase']}" + ("" if alive else " (supervisor not running)"))
    table = Table(show_header=True)
    for column in ("process", "pid", "running", "ready", "restarts", "exit codes"):
        table.add_column(column)
    for name, proc in state["processes"].items():
        table.add_row(
            name,
            str(proc["pid"]),
            str(proc["running"]),
            str(proc["ready"]),
            str(proc["restarts"]),
            str(proc["exit_codes"]),
        )
    console.print(table)
    if alive:
        _print_endpoints(stack)


def _run_gameday(
    file: Path, out: Path, speed: str, extra_engine_toml: str = "", feeds: int | None = None
) -> int:
    from harness.gameday.runner import run_gameday

    started = time.monotonic()

    def progress(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {message}")

    try:
        from harness.gameday.runner import market_seconds_needed
        from harness.gameday.slo import load_gameday

        recording = recording_covering(
            market_seconds_needed(load_gameday(file, root=Path.cwd()), speed)
        )
        report = run_gameday(
            file,
            out,
            progress=progress,
            recording=recording,
            speed=speed,
            extra_engine_toml=extra_engine_toml,
            feeds=feeds,
        )
    except HarnessError as exc:
        print(f"stormproof: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # exit 1 means "the gate failed": a crash must not look like one
        print(f"stormproof: the game day could not run: {exc!r}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return 2
    table = Table(title=f"game day {report['gameday']}", show_header=True)
    for column in ("scenario", "SLO", "value", "verdict"):
        table.add_column(column)
    for scenario in report["scenarios"]:
        if scenario["error"]:
            table.add_row(scenario["name"], "(error)", scenario["error"], "inconclusive")
        for slo in scenario["slos"]:
            value = "n/a" if slo["value"] is None else f"{slo['value']:g}"
            table.add_row(scenario["name"], slo["name"], value, slo["verdict"])
    console.print(table)
    console.print(
        f"verdict: [bold]{report['verdict']}[/bold] (score {report['score']:.2f}); reports:"
        f" {out / 'report.json'}, {out / 'junit.xml'}, {out / 'report.html'}"
    )
    return int(report["exit_code"])


@gameday_app.command("run")
def gameday_run(
    file: Annotated[Path, typer.Argument(help="game-day file, e.g. gamedays/smoke.yaml")],
    out: Annotated[Path, typer.Option(help="where the reports go")] = Path(".stormproof/gameday"),
    speed: Annotated[str, typer.Option(help="replay speed")] = "10",
    engine_toml: Annotated[
        Path | None, typer.Option(help="extra engine config (TOML) appended to the stack's")
    ] = None,
    feeds: Annotated[
        int | None,
        typer.Option(
            help="market-data connections: 2 (redundant) or 1 (none to fail over to);"
            " overrides the game-day file's stack: feeds"
        ),
    ] = None,
) -> None:
    """Run a game day on the local stack. Exit 0 pass or warn, 1 fail or inconclusive, 2 error."""
    if feeds is not None and feeds not in (1, 2):
        _fail("--feeds must be 1 or 2")
    extra = engine_toml.read_text() if engine_toml else ""
    raise typer.Exit(_run_gameday(file, out, speed, extra, feeds))


@gameday_app.command("mutants")
def gameday_mutants(
    file: Annotated[Path, typer.Argument(help="mutant catalogue, e.g. gamedays/mutants.yaml")],
    out: Annotated[Path, typer.Option(help="where the runs and the table go")] = Path(
        ".stormproof/mutants"
    ),
    only: Annotated[
        str | None, typer.Option(help="comma-separated mutant names (default: every one)")
    ] = None,
    fast: Annotated[bool, typer.Option(help="only the catalogue's fast subset")] = False,
    speed: Annotated[str, typer.Option(help="replay speed")] = "10",
) -> None:
    """Play every mutant of the catalogue against the scenario that must catch it, after the
    unmutated engine passed the same scenarios. Exit 0 when every mutant is caught (mutation
    score 100%) and the unmutated engine passes, 1 otherwise, 2 on an error."""
    from harness.gameday.mutants import load_catalogue, run_mutants
    from harness.gameday.runner import market_seconds_needed, run_gameday
    from harness.gameday.slo import load_gameday

    started = time.monotonic()

    def progress(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {message}")

    try:
        catalogue = load_catalogue(file, root=Path.cwd())
        names = [n for n in (only or "").split(",") if n] or None
        if fast:
            catalogue = catalogue.only_fast()
        # every run is a stack of its own, replaying from the start: the longest scenario sets
        # how much market the recording must hold
        gameday = load_gameday(catalogue.gameday, root=Path.cwd())
        played = {m.scenario for m in catalogue.mutants if names is None or m.name in names}
        recording = recording_covering(
            max(
                market_seconds_needed(dataclasses.replace(gameday, scenarios=(spec,)), speed)
                for spec in gameday.scenarios
                if spec.name in played
            )
        )
        summary = run_mutants(
            catalogue,
            out,
            root=Path.cwd(),
            run_gameday=run_gameday,
            progress=progress,
            only=names,
            recording=recording,
            speed=speed,
        )
    except HarnessError as exc:
        _fail(str(exc))
    table = Table(title=f"mutants ({file})", show_header=True)
    for column in ("mutant", "scenario", "caught by", "verdict", "why"):
        table.add_column(column)
    for row in summary["table"]:
        table.add_row(row["mutant"], row["scenario"], row["caught_by"], row["verdict"], row["why"])
    console.print(table)
    for problem in summary["unmutated_problems"]:
        console.print(f"[red]unmutated engine:[/red] {problem}")
    console.print(
        f"mutation score: [bold]{summary['caught']}/{summary['mutants']}[/bold]"
        f" ({summary['mutation_score']:.0%}); {out / 'mutants.json'}, {out / 'mutants.md'}"
    )
    raise typer.Exit(int(summary["exit_code"]))


@gameday_app.command("compare")
def gameday_compare(
    base: Annotated[Path, typer.Argument(help="baseline report.json")],
    candidate: Annotated[Path, typer.Argument(help="candidate report.json")],
    max_regression_pct: Annotated[
        float | None,
        typer.Option(
            help="also a regression: a value worse than the base's by more than this share"
            " (any worsening off a base of 0)"
        ),
    ] = None,
) -> None:
    """Baseline versus candidate, SLO by SLO. Exit 0 when nothing regressed, 1 when an SLO's
    verdict got worse (or, with --max-regression-pct, its value), 2 on an error."""
    from harness.gameday.report import compare, format_comparison, load_report, regressions

    if max_regression_pct is not None and max_regression_pct < 0:
        _fail("--max-regression-pct must be >= 0")
    try:
        rows = compare(load_report(base), load_report(candidate))
    except HarnessError as exc:
        _fail(str(exc))
    print(format_comparison(rows))
    worse = regressions(rows, max_regression_pct=max_regression_pct)
    if not worse:
        print("no regression")
        return
    print(f"{len(worse)} regression(s):")
    for row in worse:
        print(f"  {row['scenario']} {row['slo']}: {row['reason']}")
    raise typer.Exit(1)


@chaos_app.command("discover")
def chaos_discover(
    out: Annotated[
        Path | None, typer.Option(help="write the discovery here (default: stdout)")
    ] = None,
) -> None:
    """Every action and probe of the extension, in Chaos Toolkit's discovery format.

    `chaos discover stormproof` cannot find them: Chaos Toolkit takes the first top-level package
    of a distribution, and ours has three (engine, harness, replay)."""
    from harness.chaos import discover

    text = json.dumps(discover(), indent=2, default=str)
    if out is None:
        print(text)
    else:
        out.write_text(text + "\n")
        console.print(f"discovery written to {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where the reports go")] = Path(".stormproof/demo"),
    speed: Annotated[str, typer.Option(help="replay speed")] = "10",
) -> None:
    """The smoke game day on the local stack, with generated data: prints where the reports are."""
    raise typer.Exit(_run_gameday(Path("gamedays/smoke.yaml"), out, speed))


def _interrupt(signum: int, _: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    # SIGTERM ends a run as Ctrl-C does: every `finally` runs, so no stack is left behind
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
