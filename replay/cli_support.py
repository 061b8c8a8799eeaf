"""What every `replay` subcommand shares: one way to refuse its input.

Below the command modules (`replay.cli_serve`, `cli_record`, `cli_tools`), which `replay.cli`
registers; nothing here knows a subcommand.
"""

from __future__ import annotations

from typing import NoReturn

import typer


def fail(message: str) -> NoReturn:
    """Refuse the command line: one line on stderr, exit status 2 (typer's usage error)."""
    typer.echo(f"replay: {message}", err=True)
    raise typer.Exit(2)
