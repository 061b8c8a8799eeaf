"""`replay inspect | slice | merge | convert`: offline tools for recordings."""

from __future__ import annotations

from replay.cli import app  # noqa: F401 - commands are added to this app
