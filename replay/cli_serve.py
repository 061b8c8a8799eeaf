"""`replay serve` and `replay synth`: serve a recording with the simulated venue, generate a
synthetic recording. Registered on the command line by `replay.cli`."""

from __future__ import annotations

import asyncio
import os
import signal
import zlib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer

from plumbing.event_loop import EVENT_LOOPS
from plumbing.event_loop import run as run_loop
from plumbing.logging import configure_logging, register_secrets
from replay.cli_support import fail

API_KEY_ENV = "STORMPROOF_SIM_API_KEY"
API_SECRET_ENV = "STORMPROOF_SIM_API_SECRET"
CONTROL_TOKEN_ENV = "STORMPROOF_SIM_CONTROL_TOKEN"
_BAD_RECORDING = (ValueError, EOFError, zlib.error, OSError)
"""What reading a recording that is not one raises: a corrupt or non-gzip file (OSError,
EOFError, zlib.error), lines that are not records (ValueError)."""


def _speed(raw: str) -> float | None:
    if raw == "max":
        return None
    try:
        value = float(raw.rstrip("x"))
    except ValueError:
        fail(f"--speed must be a positive number or 'max', got {raw!r}")
    if value <= 0:
        fail(f"--speed must be positive, got {raw!r}")
    return value


def _balances(raw: list[str]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for item in raw:
        asset, _, amount = item.partition("=")
        try:
            out[asset.upper()] = Decimal(amount)
        except InvalidOperation:
            fail(f"--balance must look like USDT=100000, got {item!r}")
    return out


def serve(
    recording: Annotated[
        list[Path], typer.Option("--recording", "-r", help="recording file(s), replayed in order")
    ],
    speed: Annotated[str, typer.Option(help="1, 10, 0.5 ... or max")] = "1",
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    ws_port: Annotated[int, typer.Option(help="WebSocket feed port")] = 9443,
    rest_port: Annotated[int, typer.Option(help="exchange REST port")] = 9080,
    control_port: Annotated[int, typer.Option(help="control API port")] = 9081,
    no_rebase: Annotated[
        bool, typer.Option("--no-rebase", help="keep recorded event times")
    ] = False,
    exchange_info: Annotated[Path | None, typer.Option(help="exchangeInfo JSON to serve")] = None,
    balance: Annotated[list[str], typer.Option(help="initial balance, e.g. USDT=100000")] = [],  # noqa: B006
    paused: Annotated[bool, typer.Option("--paused", help="start paused")] = False,
    client_queue: Annotated[
        int, typer.Option(help="messages queued per client before it is dropped as too slow")
    ] = 10_000,
    ping_interval: Annotated[float, typer.Option(help="server ping interval, s")] = 20.0,
    ping_timeout: Annotated[
        float, typer.Option(help="drop a client that does not pong within, s")
    ] = 60.0,
    max_stall: Annotated[
        float, typer.Option(help="at max speed, drop a client that stays full for, s")
    ] = 10.0,
    weight_per_minute: Annotated[int, typer.Option(help="request weight per IP per window")] = 6000,
    weight_window_s: Annotated[
        float, typer.Option(help="the weight window, s (Binance: 60; shorter for tests)")
    ] = 60.0,
    orders_per_10s: Annotated[int, typer.Option(help="new orders per account per 10 s")] = 100,
    orders_per_day: Annotated[int, typer.Option(help="new orders per account per day")] = 200_000,
    ban_base_s: Annotated[
        float, typer.Option(help="first IP ban after ignored 429s, s (doubles each time)")
    ] = 120.0,
    fault_seed: Annotated[int, typer.Option(help="seed of venue faults acting at a rate")] = 0,
    max_connections: Annotated[
        int, typer.Option(help="connections at once on each port (REST, WebSocket, control)")
    ] = 256,
    http_head_timeout: Annotated[
        float, typer.Option(help="REST: a request must arrive whole within, s (else 408)")
    ] = 10.0,
    http_idle_timeout: Annotated[
        float,
        typer.Option(help="REST and control: close a keep-alive connection idle for, s"),
    ] = 20.0,
    http_body_timeout: Annotated[
        float, typer.Option(help="control: a request body must arrive within, s (else 408)")
    ] = 10.0,
    ws_max_messages_per_s: Annotated[
        int,
        typer.Option(
            help="WebSocket streams: incoming messages per second per connection before it is"
            " disconnected (Binance: 5; 0: no limit)"
        ),
    ] = 5,
    ws_max_streams: Annotated[
        int, typer.Option(help="streams per WebSocket connection (Binance: 1024)")
    ] = 1024,
    ws_max_stream_name: Annotated[int, typer.Option(help="characters of a stream name")] = 64,
    market: Annotated[
        str, typer.Option(help="spot, usdm, coinm, or auto: what the recording says")
    ] = "auto",
    mark_premium: Annotated[
        float, typer.Option(help="futures: (mid - index) / index of the derived mark price")
    ] = 0.0,
    funding_interval_h: Annotated[
        float, typer.Option(help="futures: hours between funding times (Binance: 8)")
    ] = 8.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    event_loop: Annotated[
        str, typer.Option(help='uvloop or asyncio (docs/benchmarks.md, "Event loop")')
    ] = "asyncio",
) -> None:
    """Serve a recording over Binance's WebSocket protocol with a simulated exchange beside it:
    spot, USD-M or COIN-M futures (docs/futures.md). Every resource a client can make it hold is
    bounded: docs/limits.md."""
    from plumbing.http_limits import HttpLimits
    from replay.exchange.http11 import ServerLimits
    from replay.exchange.venue_limits import RateLimits
    from replay.feed_server import FeedLimits
    from replay.mark_price import MarkPriceConfig
    from replay.market_kind import parse_market_kind
    from replay.server import ReplayServer, ReplayServerConfig, SimAccount

    try:
        kind = None if market == "auto" else parse_market_kind(market)
    except ValueError as exc:
        fail(f"--market: {exc}")
    if not -0.5 < mark_premium < 0.5:
        fail(f"--mark-premium must be within (-0.5, 0.5), got {mark_premium:g}")
    if not 1 / 60 <= funding_interval_h <= 24 * 7:
        fail(f"--funding-interval-h must be between 1/60 and 168, got {funding_interval_h:g}")
    configure_logging(service="replay", level=log_level)
    api_key, api_secret = os.environ.get(API_KEY_ENV, ""), os.environ.get(API_SECRET_ENV, "")
    token = os.environ.get(CONTROL_TOKEN_ENV, "")
    register_secrets(api_key, api_secret, token)
    accounts = []
    if api_key and api_secret:
        accounts.append(
            SimAccount(
                api_key=api_key,
                api_secret=api_secret,
                balances=_balances(balance) or {"USDT": Decimal(100_000)},
            )
        )
    config = ReplayServerConfig(
        recordings=recording,
        speed=_speed(speed),
        rebase=not no_rebase,
        host=host,
        ws_port=ws_port,
        rest_port=rest_port,
        control_port=control_port,
        control_token=token,
        accounts=accounts,
        exchange_info_path=exchange_info,
        start_paused=paused,
        client_queue=client_queue,
        ping_interval_s=ping_interval,
        ping_timeout_s=ping_timeout,
        max_stall_s=max_stall,
        rate_limits=RateLimits(
            weight_per_window=weight_per_minute,
            weight_window_s=weight_window_s,
            orders_per_10s=orders_per_10s,
            orders_per_day=orders_per_day,
            ban_base_s=ban_base_s,
        ),
        fault_seed=fault_seed,
        rest_limits=ServerLimits(
            max_connections=max_connections,
            head_timeout_s=http_head_timeout,
            idle_timeout_s=http_idle_timeout,
        ),
        feed_limits=FeedLimits(
            max_connections=max_connections,
            max_messages_per_s=ws_max_messages_per_s,
            max_streams=ws_max_streams,
            max_stream_name=ws_max_stream_name,
        ),
        control_limits=HttpLimits(
            max_connections=max_connections,
            idle_timeout_s=http_idle_timeout,
            body_timeout_s=http_body_timeout,
            max_body_bytes=64 * 1024,
        ),
        market=kind,
        mark_price=MarkPriceConfig(
            premium=mark_premium, funding_interval_ms=round(funding_interval_h * 3_600_000)
        ),
    )
    for value, name in (
        (http_head_timeout, "--http-head-timeout"),
        (http_idle_timeout, "--http-idle-timeout"),
        (http_body_timeout, "--http-body-timeout"),
        (max_connections, "--max-connections"),
        (ws_max_streams, "--ws-max-streams"),
        (ws_max_stream_name, "--ws-max-stream-name"),
    ):
        if value <= 0:
            fail(f"{name} must be positive, got {value}")
    if event_loop not in EVENT_LOOPS:
        fail(f"--event-loop must be one of {', '.join(EVENT_LOOPS)}, not {event_loop!r}")
    try:
        server = ReplayServer(config)
    except FileNotFoundError as exc:
        fail(str(exc))
    except _BAD_RECORDING as exc:
        fail(f"cannot read the recording: {' '.join(str(exc).split()) or type(exc).__name__}")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.run_forever(stop)

    try:
        run_loop(main(), loop=event_loop)
    except OSError as exc:
        if exc.errno is None:  # not a socket's error: a recording corrupt further in
            fail(f"cannot read the recording: {' '.join(str(exc).split())}")
        fail(f"cannot listen: {exc.strerror or exc}")
    except (EOFError, zlib.error) as exc:
        fail(f"cannot read the recording: {' '.join(str(exc).split()) or type(exc).__name__}")


def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="output .gz recording")],
    duration: Annotated[float, typer.Option(help="seconds of market")] = 600.0,
    seed: Annotated[int, typer.Option(help="random seed")] = 1,
    regime: Annotated[
        str, typer.Option(help="calm, trending, volatile, flash_crash, quiet")
    ] = "calm",
    symbol: Annotated[list[str], typer.Option(help="symbol(s)")] = ["BTCUSDT"],  # noqa: B006
    crash_at: Annotated[
        float | None,
        typer.Option(help="flash_crash: seconds from the start to the crash (default 40%)"),
    ] = None,
    futures: Annotated[
        bool, typer.Option("--futures", help="USD-M perpetual payloads (docs/futures.md)")
    ] = False,
    coinm: Annotated[
        bool,
        typer.Option(
            "--coinm", help="with --futures: COIN-M payloads (ETHUSD_PERP ...), whole contracts"
        ),
    ] = False,
) -> None:
    """Generate a deterministic synthetic recording in the collector format."""
    from replay.synth import REGIMES, SynthSpec, write_recording

    if regime not in REGIMES:
        fail(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}")
    spec = SynthSpec(
        symbols=tuple(s.upper() for s in symbol),
        duration_s=duration,
        seed=seed,
        regime=regime,
        crash_at_s=crash_at,
        futures=futures or coinm,
        coinm=coinm,
    )
    try:
        count = write_recording(spec, out)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"wrote {count} records to {out}")
