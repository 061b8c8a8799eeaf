"""`stormproof stack up|down|status`: the local stack in the background."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.table import Table

from harness.cli.common import DEFAULT_RUN_DIR, console, fail
from harness.errors import HarnessError
from harness.recordings import synthetic_recording

if TYPE_CHECKING:
    from harness.stack import Stack

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The local stack: redis, toxiproxy, replay+simulator, engine.",
)


def _print_endpoints(stack: Stack) -> None:
    table = Table(title="stormproof stack", show_header=True)
    table.add_column("component")
    table.add_column("listens on")
    for name, url in stack.endpoints().items():
        table.add_row(name, url)
    console.print(table)


@app.command("up")
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
        fail("--engine-mode must be split or all")
    try:
        recordings = recording or [
            synthetic_recording(run_dir, duration_s=1800, seed=seed, regime="calm")
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
        fail(str(exc))
    _print_endpoints(stack)
    console.print(f"secrets and tokens: {stack.run_dir / 'secrets.env'} (mode 0600)")


@app.command("down")
def stack_down(
    run_dir: Annotated[Path, typer.Option(help="the stack's run directory")] = DEFAULT_RUN_DIR,
) -> None:
    """Stop every process of the stack (SIGTERM, then SIGKILL after a timeout)."""
    from harness.stack import Stack

    try:
        codes = Stack(run_dir).down()
    except HarnessError as exc:
        fail(str(exc))
    unclean = {name: c for name, c in codes.items() if c and c[-1] != 0}
    for name, exits in codes.items():
        console.print(f"{name}: exit code {exits[-1] if exits else 'n/a'}")
    if unclean:
        fail(f"processes did not exit cleanly: {unclean}")


@app.command("status")
def stack_status(
    run_dir: Annotated[Path, typer.Option(help="the stack's run directory")] = DEFAULT_RUN_DIR,
) -> None:
    """Phase of the stack and of every process."""
    from harness.stack import Stack

    stack = Stack(run_dir)
    try:
        state = stack.state()
    except HarnessError as exc:
        fail(str(exc))
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
