"""`stormproof chaos discover`: the Chaos Toolkit extension's activities."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The Chaos Toolkit extension (harness.chaos).",
)


@app.command("discover")
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
