"""`replay record`: record any Binance-protocol endpoint in the collector format."""

from __future__ import annotations

from replay.cli import app  # noqa: F401 - commands are added to this app
