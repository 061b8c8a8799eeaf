"""`stormproof`: the local stack and the demo."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from harness.errors import HarnessError

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
console = Console()

DEFAULT_RUN_DIR = Path(".stormproof/stack")


def _fail(message: str) -> None:
    print(f"stormproof: {message}", file=sys.stderr)
    raise typer.Exit(2)


def _synthetic_recording(run_dir: Path, *, duration_s: float, seed: int, regime: str) -> Path:
    from replay.synth import SynthSpec, write_recording

    path = run_dir / f"synth-{regime}-{seed}-{int(duration_s)}s.gz"
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        write_recording(SynthSpec(duration_s=duration_s, seed=seed, regime=regime), tmp)
        tmp.rename(path)
    return path


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


@app.command()
def demo(
    duration: Annotated[float, typer.Option(help="seconds of trading (wall clock)")] = 25.0,
    speed: Annotated[str, typer.Option(help="replay speed")] = "10",
    run_dir: Annotated[Path, typer.Option(help="run directory")] = Path(".stormproof/demo"),
) -> None:
    """Bring the stack up on a synthetic recording, trade it, print a summary, stop the stack."""
    from harness.quiesce import quiesce
    from harness.stack import Stack, StackOptions
    from harness.summary import summarize

    try:
        recording = _synthetic_recording(run_dir, duration_s=1800, seed=42, regime="calm")
        stack = Stack(run_dir)
        with console.status("starting the stack (redis, toxiproxy, replay, engine)..."):
            stack.up(StackOptions(recordings=[recording], speed=speed))
        _print_endpoints(stack)
        with console.status(f"trading the replayed market for {duration:.0f}s..."):
            time.sleep(duration)
        with console.status("pausing the replay, halting entries, waiting for the journal..."):
            quiesce(stack)
        control = f"http://127.0.0.1:{stack.ports['replay_control']}"
        summary = summarize(
            stack.journal_path, control, stack.secrets["STORMPROOF_SIM_CONTROL_TOKEN"]
        )
        with console.status("stopping the stack..."):
            codes = stack.down()
    except HarnessError as exc:
        _fail(str(exc))
    table = Table(title="demo summary", show_header=False)
    table.add_row("orders sent", str(summary.orders_sent))
    table.add_row("filled", str(summary.count("FILLED")))
    table.add_row("partially filled (open)", str(summary.count("PARTIALLY_FILLED")))
    table.add_row("canceled", str(summary.count("CANCELED")))
    table.add_row("rejected", str(summary.count("REJECTED")))
    table.add_row("fills", str(summary.fills))
    for symbol, qty in summary.engine_position.items():
        table.add_row(f"position {symbol} (engine)", str(qty))
    for symbol, qty in summary.venue_position.items():
        table.add_row(f"position {symbol} (simulator)", str(qty))
    p50, p99 = summary.tick_to_order_p50_ms, summary.tick_to_order_p99_ms
    table.add_row(
        "tick-to-order p50 / p99", "n/a" if p50 is None else f"{p50:.2f} ms / {p99:.2f} ms"
    )
    table.add_row("duplicate orders at venue", str(summary.venue_duplicate_client_ids))
    table.add_row("processes exited cleanly", str(all(c and c[-1] == 0 for c in codes.values())))
    console.print(table)
    drift = {s: d for s, d in summary.position_drift.items() if d != 0}
    if summary.orders_sent == 0:
        _fail("the engine sent no orders")
    if drift:
        _fail(f"engine position differs from the simulator: {drift}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
