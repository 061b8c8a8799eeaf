"""What every subcommand of `stormproof` shares: the console, a one-line failure, progress."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

console = Console()

DEFAULT_RUN_DIR = Path(".stormproof/stack")


def fail(message: str) -> NoReturn:
    """Exit 2 with `stormproof: message` on stderr."""
    print(f"stormproof: {message}", file=sys.stderr)
    raise typer.Exit(2)


def progress_printer() -> Callable[[str], None]:
    """Prints each progress message with the seconds since the command began."""
    started = time.monotonic()

    def progress(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {message}")

    return progress
