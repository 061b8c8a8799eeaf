"""`replay record`: record any Binance-protocol endpoint in the collector format."""

from __future__ import annotations

import asyncio
import math
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from plumbing.logging import configure_logging, get_logger
from replay.cli_support import fail

if TYPE_CHECKING:
    from replay.recorder import Recorder

LOG_LEVELS = ("debug", "info", "warning", "error")
T = TypeVar("T")


def _number(option: str, raw: str) -> float:
    """Numbers are parsed here, not by typer, so that a bad value is one line on stderr."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        fail(f"{option} must be a number, got {raw!r}")
    return value


def _required(option: str, value: T | None) -> T:
    """Checked here rather than by typer, so that a missing option is one line on stderr."""
    if value is None or value == "":
        fail(f"{option} is required (see replay record --help)")
    assert value is not None
    return value


async def _record_until_signalled(recorder: Recorder) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await recorder.run(stop)


def record(
    url: Annotated[
        str | None,
        typer.Option(help="WebSocket base URL, e.g. wss://stream.binance.com:9443 (required)"),
    ] = None,
    streams: Annotated[
        str | None,
        typer.Option(
            help="comma-separated streams, e.g. btcusdt@trade,btcusdt@depth@100ms (required)"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="output .gz recording (required)")
    ] = None,
    rest_url: Annotated[
        str | None,
        typer.Option(help="REST base for depth snapshots; derived for stream.binance.com"),
    ] = None,
    rotate_mb: Annotated[
        str | None, typer.Option(metavar="MB", help="start a new file after this many MB")
    ] = None,
    rotate_minutes: Annotated[
        str | None, typer.Option(metavar="MIN", help="start a new file after this many minutes")
    ] = None,
    flush_ms: Annotated[
        str, typer.Option(metavar="MS", help="flush to disk at least this often")
    ] = "1000",
    market: Annotated[
        str,
        typer.Option(
            help="spot, usdm or coinm: where depth snapshots come from; auto: from the host"
            " (stream., fstream., dstream.binance.com) or the stream names"
        ),
    ] = "auto",
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Record a Binance combined stream, and depth snapshots at each connect, until SIGTERM.

    SIGINT stops it too. Format and behaviour: docs/recording-format.md.
    """
    from replay.recorder import Recorder, RecorderArgumentError, recorder_config

    if log_level.lower() not in LOG_LEVELS:
        fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    try:
        config = recorder_config(
            url=_required("--url", url),
            streams=_required("--streams", streams),
            out=_required("--out", out),
            rest_url=rest_url,
            rotate_mb=None if rotate_mb is None else _number("--rotate-mb", rotate_mb),
            rotate_minutes=(
                None if rotate_minutes is None else _number("--rotate-minutes", rotate_minutes)
            ),
            flush_ms=_number("--flush-ms", flush_ms),
            market=market,
        )
    except RecorderArgumentError as exc:
        fail(str(exc))
    configure_logging(service="recorder", level=log_level)
    recorder = Recorder(config)
    try:
        recorder.open()
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    try:
        asyncio.run(_record_until_signalled(recorder))
    except Exception as exc:
        get_logger("replay.recorder").error(
            "recorder_failed", error=f"{type(exc).__name__}: {exc}", exc_info=True
        )
        raise typer.Exit(1) from None
