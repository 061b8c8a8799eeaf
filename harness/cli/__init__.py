"""`stormproof`: the top floor of the harness. Every subcommand group is registered here, and
only here: stack, gameday, load, chaos and deploy (one module each in this package), and `demo`."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.cli import chaos, cluster, deploy, gameday, image, load, stack

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="stormproof: prove your trading system survives the bad day.",
)
app.add_typer(stack.app, name="stack")
app.add_typer(gameday.app, name="gameday")
app.add_typer(load.app, name="load")
app.add_typer(chaos.app, name="chaos")
app.add_typer(cluster.app, name="cluster")
app.add_typer(deploy.app, name="deploy")
app.add_typer(image.app, name="image")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where the reports go")] = Path(".stormproof/demo"),
    speed: Annotated[str, typer.Option(help="replay speed")] = "10",
) -> None:
    """The smoke game day on the local stack, with generated data: prints where the reports are."""
    raise typer.Exit(gameday.run_gameday_file(Path("gamedays/smoke.yaml"), out, speed))


def _interrupt(signum: int, _: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    # SIGTERM ends a run as Ctrl-C does: every `finally` runs, so no stack is left behind
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
