"""Record a Binance-protocol combined stream in the collector format (see docs/recording-format.md).

One reader task owns the socket and writes each message the moment `recv()` returns it, so nothing
read is ever held in memory. REST depth snapshots are fetched by their own tasks at every
(re)connect, so a slow snapshot never delays the reader; every write happens on the event loop
thread, so lines never interleave. The reconnecting connection is plumbing's `connect()`, driven
by plumbing's full-jitter backoff (`plumbing.backoff`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from plumbing.backoff import Backoff
from plumbing.clock import SystemClock, WallAndMonotonicClock
from plumbing.logging import get_logger
from plumbing.ratelimited_log import RateLimitedLog
from plumbing.reconnecting_ws import connect
from replay.binance import MalformedMessage, parse_snapshot
from replay.market_kind import MarketKind, parse_market_kind
from replay.recording import RecordingWriter

log = get_logger("replay.recorder")

MAX_STREAMS = 1024
"""Binance accepts at most 1024 streams on one connection."""

SIZE_CHECK_BYTES = 16 * 1024
"""Uncompressed bytes written between two looks at the file's size (a stat, not free)."""

LINE_OVERHEAD = 21
"""Bytes a line adds to its message: a 19-digit receive time, a space and a newline."""

_STREAM = re.compile(r"^(?:[a-z0-9_]+|![a-zA-Z0-9_]+)(?:@[A-Za-z0-9_:+-]+)+$")
_DIFF_DEPTH = re.compile(r"^([a-z0-9_]+)@depth(?:@\d+ms)?$")
_REST_FOR_WS_HOST = {
    "stream.binance.com": ("https://api.binance.com", MarketKind.SPOT),
    "data-stream.binance.vision": ("https://data-api.binance.vision", MarketKind.SPOT),
    "fstream.binance.com": ("https://fapi.binance.com", MarketKind.USDM),
    "dstream.binance.com": ("https://dapi.binance.com", MarketKind.COINM),
    "fstream.binancefuture.com": ("https://testnet.binancefuture.com", MarketKind.USDM),
    "dstream.binancefuture.com": ("https://testnet.binancefuture.com", MarketKind.COINM),
}
"""Binance's stream hosts: the REST base of their depth snapshots, and their market."""
_FUTURES_ONLY = ("@markPrice", "@forceOrder", "@depth@0ms", "@depth@250ms", "@depth@500ms")


class RecorderArgumentError(ValueError):
    """A recorder setting is unusable; the message is one line, meant for the command line."""


class SnapshotError(Exception):
    """A depth snapshot could not be fetched; `retry_after_ms` is the venue's own hint, or 0."""

    def __init__(self, reason: str, retry_after_ms: float = 0.0) -> None:
        super().__init__(reason)
        self.retry_after_ms = retry_after_ms


# --- settings ---------------------------------------------------------------------------------


def parse_streams(raw: str) -> tuple[str, ...]:
    """Comma-separated Binance stream names, validated so that a typo fails at start, not as an
    endless reconnect loop against a venue that rejects the URL."""
    names = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not names:
        raise RecorderArgumentError("--streams needs at least one stream, e.g. btcusdt@trade")
    for name in names:
        if not _STREAM.match(name):
            raise RecorderArgumentError(
                f"--streams: {name!r} is not a Binance stream name"
                " (lower-case symbol, e.g. btcusdt@trade or btcusdt@depth@100ms)"
            )
    if len(names) > MAX_STREAMS:
        raise RecorderArgumentError(f"--streams: at most {MAX_STREAMS} streams per connection")
    return names


def diff_depth_symbols(streams: tuple[str, ...]) -> tuple[str, ...]:
    """Symbols with a diff-depth stream: those need a REST snapshot at every (re)connect.
    Partial-depth streams (`depth5`, `depth20`) carry whole books and need none."""
    symbols = (match.group(1).upper() for s in streams if (match := _DIFF_DEPTH.match(s)))
    return tuple(dict.fromkeys(symbols))


def stream_url(ws_base: str, streams: tuple[str, ...]) -> str:
    """The combined-stream URL: subscriptions live in the URL, so each reconnect resubscribes."""
    return f"{ws_base.rstrip('/')}/stream?streams={quote('/'.join(streams), safe='@/')}"


def derived_rest_url(ws_base: str) -> str | None:
    """The REST base of a known Binance stream host; None where it cannot be known."""
    host = urlsplit(ws_base).hostname or ""
    known = _REST_FOR_WS_HOST.get(host.lower())
    return known[0] if known else None


def derived_market(ws_base: str, streams: tuple[str, ...]) -> MarketKind:
    """The market of a known stream host; else what the stream names say (a COIN-M symbol has
    an underscore; mark price, liquidations and 0/250/500 ms depth exist on futures only);
    else spot."""
    known = _REST_FOR_WS_HOST.get((urlsplit(ws_base).hostname or "").lower())
    if known:
        return known[1]
    if any("_" in name.split("@", 1)[0] for name in streams if not name.startswith("!")):
        return MarketKind.COINM
    if any(marker in name for name in streams for marker in _FUTURES_ONLY):
        return MarketKind.USDM
    return MarketKind.SPOT


def _check_ws_base(ws_base: str) -> str:
    parts = urlsplit(ws_base)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise RecorderArgumentError(
            f"--url must be a ws:// or wss:// base URL such as wss://stream.binance.com:9443,"
            f" got {ws_base!r}"
        )
    if parts.query or parts.fragment:
        raise RecorderArgumentError(
            f"--url is the base only (the recorder adds /stream?streams=...), got {ws_base!r}"
        )
    try:
        _ = parts.port
    except ValueError:
        raise RecorderArgumentError(f"--url has an invalid port: {ws_base!r}") from None
    return ws_base.rstrip("/")


def _check_rest_url(rest_url: str) -> str:
    parts = urlsplit(rest_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RecorderArgumentError(
            f"--rest-url must be an http:// or https:// base URL, got {rest_url!r}"
        )
    return rest_url.rstrip("/")


def _check_out(out: Path) -> Path:
    if not out.name.endswith(".gz") or out.name == ".gz":
        raise RecorderArgumentError(
            f"--out must name a .gz file (recordings are gzip; readers go by the suffix): {out}"
        )
    if out.is_dir():
        raise RecorderArgumentError(f"--out is a directory: {out}")
    return out


def _positive(option: str, value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise RecorderArgumentError(f"{option} must be positive, got {value:g}")
    return value


@dataclass(frozen=True, kw_only=True)
class RecorderConfig:
    ws_base: str
    streams: tuple[str, ...]
    out: Path
    rest_url: str | None = None
    """Needed only when `streams` has a diff-depth stream."""
    market: MarketKind = MarketKind.SPOT
    """Where depth snapshots come from: /api/v3/depth, /fapi/v1/depth or /dapi/v1/depth."""
    rotate_bytes: int | None = None
    """Start a new file once the current one holds about this many compressed bytes."""
    rotate_s: float | None = None
    """Start a new file once the current one has been open this long."""
    flush_ms: int = 1000
    reconnect_base_ms: int = 100
    reconnect_cap_ms: int = 10_000
    healthy_after_ms: int = 10_000
    open_timeout_ms: int = 5_000
    ping_interval_ms: int = 20_000
    snapshot_limit: int = 1000
    snapshot_timeout_ms: int = 10_000
    snapshot_retry_base_ms: int = 500
    snapshot_retry_cap_ms: int = 30_000
    stop_grace_ms: int = 5_000
    """After SIGTERM: how long the closing handshake may take while buffered messages drain."""

    @property
    def url(self) -> str:
        return stream_url(self.ws_base, self.streams)

    @property
    def depth_symbols(self) -> tuple[str, ...]:
        return diff_depth_symbols(self.streams)

    @property
    def rotating(self) -> bool:
        return self.rotate_bytes is not None or self.rotate_s is not None


def recorder_config(
    *,
    url: str,
    streams: str,
    out: Path,
    rest_url: str | None = None,
    rotate_mb: float | None = None,
    rotate_minutes: float | None = None,
    flush_ms: float = 1000,
    market: str = "auto",
) -> RecorderConfig:
    """Validate command-line settings; raises RecorderArgumentError with a one-line reason."""
    ws_base = _check_ws_base(url)
    names = parse_streams(streams)
    _positive("--rotate-mb", rotate_mb)
    _positive("--rotate-minutes", rotate_minutes)
    _positive("--flush-ms", flush_ms)
    depth = diff_depth_symbols(names)
    try:
        kind = derived_market(ws_base, names) if market == "auto" else parse_market_kind(market)
    except ValueError as exc:
        raise RecorderArgumentError(f"--market: {exc}") from None
    rest = _check_rest_url(rest_url) if rest_url else None
    if depth and rest is None:
        rest = derived_rest_url(ws_base)
        if rest is None:
            raise RecorderArgumentError(
                f"--rest-url is required for depth streams on {ws_base}: the snapshot endpoint"
                f" can be derived only for {', '.join(_REST_FOR_WS_HOST)}"
            )
    return RecorderConfig(
        ws_base=ws_base,
        streams=names,
        out=_check_out(out),
        rest_url=rest,
        market=kind,
        rotate_bytes=max(1, round(rotate_mb * 1024 * 1024)) if rotate_mb else None,
        rotate_s=rotate_minutes * 60 if rotate_minutes else None,
        flush_ms=max(1, round(flush_ms)),
    )


# --- files ------------------------------------------------------------------------------------


def rotated_path(out: Path, opened_ns: int, seq: int) -> Path:
    """`<stem>.<UTC YYYYmmddTHHMMSS>.<seq>.gz` beside `out`: names sort in recording order."""
    stem = out.name.removesuffix(".gz")
    stamp = datetime.fromtimestamp(opened_ns / 1e9, tz=UTC).strftime("%Y%m%dT%H%M%S")
    return out.with_name(f"{stem}.{stamp}.{seq:06d}.gz")


def _fsync_dir(path: Path) -> None:
    """Make a new file's directory entry durable, not only its contents."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RotatingSink:
    """The recording's current file, and the switch to the next one by size or age.

    A rotated file is flushed, fsynced and closed (gzip trailer included) before the next one is
    written to, so every file but the newest is complete on disk.
    """

    def __init__(self, config: RecorderConfig, clock: WallAndMonotonicClock) -> None:
        self._config = config
        self._clock = clock
        self._writer: RecordingWriter | None = None
        self._opened_mono_ns = 0
        self._seq = 0
        self._unchecked_bytes = 0
        self._dirty = False
        self.paths: list[Path] = []

    @property
    def path(self) -> Path | None:
        return self._writer.path if self._writer else None

    def open(self) -> None:
        """Open the first file now, so that an unwritable path fails at start."""
        if self._writer is None:
            self._open_next()

    def write(self, recv_ns: int, payload: bytes) -> None:
        writer = self._current()
        writer.write(recv_ns, payload)
        self._dirty = True
        self._unchecked_bytes += len(payload) + LINE_OVERHEAD
        if self._unchecked_bytes >= SIZE_CHECK_BYTES:
            self._rotate_if_large()

    def write_disconnect(self) -> None:
        self._current().write_disconnect()
        self._dirty = True

    def flush(self) -> None:
        """Hand what was written to the OS (no fsync: this runs on the event loop)."""
        if self._writer is not None and self._dirty:
            self._writer.flush()
            self._dirty = False
            self._rotate_if_large()

    def sync(self) -> None:
        """Flush and fsync what was written since the last sync (nothing to do when idle)."""
        if self._writer is not None and self._dirty:
            self._writer.sync()
            self._dirty = False
            self._rotate_if_large()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._dirty = False

    def _current(self) -> RecordingWriter:
        if self._writer is None:
            self._open_next()
        elif self._config.rotate_s is not None:
            age_s = (self._clock.monotonic_ns() - self._opened_mono_ns) / 1e9
            if age_s >= self._config.rotate_s:
                self._rotate("age")
        assert self._writer is not None
        return self._writer

    def _rotate_if_large(self) -> None:
        self._unchecked_bytes = 0
        limit = self._config.rotate_bytes
        if limit is not None and self._writer is not None:
            size = self._writer.path.stat().st_size
            if size >= limit:
                self._rotate("size")

    def _rotate(self, reason: str) -> None:
        assert self._writer is not None
        old = self._writer
        old.close()
        self._dirty = False
        self._open_next()
        log.info(
            "file_rotated",
            reason=reason,
            closed=str(old.path),
            closed_bytes=old.path.stat().st_size,
            closed_records=old.records,
            opened=str(self.path),
        )

    def _open_next(self) -> None:
        if self._config.rotating:
            path = rotated_path(self._config.out, self._clock.time_ns(), self._seq)
            while path.exists():
                self._seq += 1
                path = rotated_path(self._config.out, self._clock.time_ns(), self._seq)
            self._seq += 1
        else:
            path = self._config.out
        self._writer = RecordingWriter(path)
        _fsync_dir(path.parent)
        self._opened_mono_ns = self._clock.monotonic_ns()
        self._unchecked_bytes = 0
        self.paths.append(path)


# --- recorder ---------------------------------------------------------------------------------


def _retry_after_ms(response: aiohttp.ClientResponse) -> float:
    raw = response.headers.get("Retry-After", "")
    return float(raw) * 1000 if raw.isascii() and raw.isdigit() else 0.0


def _close_reason(exc: ConnectionClosed) -> str:
    """Who closed, with which code: a venue's close reason says why it dropped us."""
    frame = exc.rcvd or exc.sent
    if frame is None:
        return "connection lost without a close frame"
    by_server = exc.rcvd is not None and (exc.sent is None or bool(exc.rcvd_then_sent))
    detail = f": {frame.reason}" if frame.reason else ""
    return f"closed by {'server' if by_server else 'recorder'} ({frame.code}{detail})"


class Recorder:
    """Records one combined-stream connection, reconnecting forever, until `run`'s stop event."""

    def __init__(
        self, config: RecorderConfig, *, clock: WallAndMonotonicClock | None = None
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.sink = RotatingSink(config, self.clock)
        self.messages = 0
        self.snapshots = 0
        self.disconnects = 0
        self.connections = 0
        self.skipped = 0
        self._last_ns = 0
        self._ws: ClientConnection | None = None
        self._stopping = False
        self._session: aiohttp.ClientSession | None = None
        self._snapshot_tasks: set[asyncio.Task[None]] = set()
        self._warn = RateLimitedLog(log, self.clock)

    def open(self) -> None:
        """Create the first output file (raises OSError when the path is unusable)."""
        self.sink.open()

    async def run(self, stop: asyncio.Event) -> None:
        """Record until `stop` is set; then drain, flush, fsync and close. A fatal error (one
        `connect()` does not retry, or a failed write) stops recording too, and is re-raised once
        the file is closed."""
        self.open()
        log.info(
            "recorder_started",
            url=self.config.url,
            out=str(self.sink.path),
            streams=list(self.config.streams),
            snapshot_symbols=list(self.config.depth_symbols),
            rotate_bytes=self.config.rotate_bytes,
            rotate_s=self.config.rotate_s,
        )
        timeout = aiohttp.ClientTimeout(total=self.config.snapshot_timeout_ms / 1000)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._session = session
            reader = asyncio.create_task(self._read_forever(), name="recorder-reader")
            flusher = asyncio.create_task(self._flush_forever(), name="recorder-flusher")
            stopper = asyncio.create_task(stop.wait(), name="recorder-stop")
            try:
                await asyncio.wait({reader, flusher, stopper}, return_when=asyncio.FIRST_COMPLETED)
                self._stopping = True
                await self._stop_reader(reader)
            finally:
                await self._finish(reader, flusher, stopper)
        for task in (reader, flusher):
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

    async def _finish(self, *tasks: asyncio.Task[object]) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *self._cancel_snapshot_tasks(), return_exceptions=True)
        self.sink.close()
        log.info(
            "recorder_stopped",
            messages=self.messages,
            snapshots=self.snapshots,
            disconnects=self.disconnects,
            connections=self.connections,
            skipped=self.skipped,
            files=[str(p) for p in self.sink.paths],
        )

    async def _stop_reader(self, reader: asyncio.Task[None]) -> None:
        """Close the socket rather than cancel the reader: `recv()` then hands over every message
        already buffered before it reports the close, and each is written. A server that does
        not answer the close within the grace period has its connection aborted."""
        if reader.done():
            return
        ws = self._ws
        if ws is None:
            reader.cancel()
            return
        closing = asyncio.create_task(ws.close())
        _, pending = await asyncio.wait({reader}, timeout=self.config.stop_grace_ms / 1000)
        if pending:
            log.warning("recorder_stop_timeout", grace_ms=self.config.stop_grace_ms)
            ws.transport.abort()
        await asyncio.gather(reader, closing, return_exceptions=True)

    async def _flush_forever(self) -> None:
        """A crash of this process loses at most `flush_ms` of data; rotation and shutdown
        fsync, so a finished file survives a crash of the machine too."""
        while True:
            await asyncio.sleep(self.config.flush_ms / 1000)
            self.sink.flush()

    async def _read_forever(self) -> None:
        backoff = Backoff(
            base_ms=self.config.reconnect_base_ms, cap_ms=self.config.reconnect_cap_ms
        )
        connections = connect(
            self.config.url,
            backoff=backoff,
            clock=self.clock,
            healthy_after_ms=self.config.healthy_after_ms,
            open_timeout_ms=self.config.open_timeout_ms,
            ping_interval_ms=self.config.ping_interval_ms,
            on_retry=self._on_retry,
        )
        async with contextlib.aclosing(connections):
            async for ws in connections:
                await self._record_connection(ws)
                if self._stopping:
                    return

    async def _record_connection(self, ws: ClientConnection) -> None:
        """Write every message of one connection, then the disconnect marker."""
        self._ws = ws
        self.connections += 1
        received = 0
        reason = "recorder stopped"
        log.info("ws_connected", url=self.config.url, connection=self.connections)
        self._start_snapshots()
        try:
            while True:
                self._record_message(await ws.recv(decode=False))
                received += 1
        except ConnectionClosed as exc:
            reason = _close_reason(exc)
        finally:
            self._ws = None
            stopped = self._cancel_snapshot_tasks()
            self.sink.write_disconnect()
            self.disconnects += 1
            log.info(
                "ws_disconnected",
                reason=reason,
                connection=self.connections,
                messages=received,
                stopping=self._stopping,
            )
            await asyncio.gather(*stopped, return_exceptions=True)

    def _record_message(self, payload: bytes) -> None:
        if b"\n" in payload:
            self.skipped += 1
            self._warn.warning(
                "newline", "message_skipped", reason="contains a newline", head=payload[:80]
            )
            return
        self.sink.write(self._stamp(), payload)
        self.messages += 1

    def _stamp(self) -> int:
        """Receive time, kept non-decreasing: readers replay in line order by this time, and a
        wall clock can step back."""
        self._last_ns = max(self.clock.time_ns(), self._last_ns)
        return self._last_ns

    def _on_retry(self, exc: BaseException, delay_ms: float) -> None:
        log.warning(
            "reconnect_scheduled",
            error=str(exc)[:200] or type(exc).__name__,
            delay_ms=round(delay_ms),
        )

    # --- snapshots --------------------------------------------------------------------------

    def _start_snapshots(self) -> None:
        for symbol in self.config.depth_symbols:
            task = asyncio.create_task(self._snapshot_until_recorded(symbol))
            self._snapshot_tasks.add(task)
            task.add_done_callback(self._snapshot_done)

    def _snapshot_done(self, task: asyncio.Task[None]) -> None:
        """Fetch failures are retried inside the task; anything else is a bug, and is logged
        rather than lost with the task."""
        self._snapshot_tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("snapshot_task_failed", error=f"{type(error).__name__}: {error}")

    def _cancel_snapshot_tasks(self) -> list[asyncio.Task[None]]:
        """A snapshot belongs to the connection it was asked for: none may land after its
        disconnect marker. Cancelling is enough: a task writes only right after an await, and a
        cancelled task never resumes past one."""
        tasks = list(self._snapshot_tasks)
        for task in tasks:
            task.cancel()
        return tasks

    async def _snapshot_until_recorded(self, symbol: str) -> None:
        """Retry until one snapshot is recorded: without it, this connection's diffs cannot be
        rebuilt into a book by a replay."""
        backoff = Backoff(
            base_ms=self.config.snapshot_retry_base_ms, cap_ms=self.config.snapshot_retry_cap_ms
        )
        while True:
            started_ns = self.clock.monotonic_ns()
            try:
                body = await self._fetch_snapshot(symbol)
            except SnapshotError as exc:
                delay_ms = max(backoff.next_delay_ms(), exc.retry_after_ms)
                log.warning(
                    "snapshot_failed", symbol=symbol, reason=str(exc), retry_in_ms=round(delay_ms)
                )
                await asyncio.sleep(delay_ms / 1000)
                continue
            self.sink.write(self._stamp(), body)
            self.snapshots += 1
            log.info(
                "snapshot_fetched",
                symbol=symbol,
                bytes=len(body),
                elapsed_ms=round((self.clock.monotonic_ns() - started_ns) / 1e6),
            )
            return

    async def _fetch_snapshot(self, symbol: str) -> bytes:
        assert self._session is not None
        assert self.config.rest_url is not None
        kind = self.config.market
        url = f"{self.config.rest_url}{kind.rest_prefix}/depth"
        limit = min(self.config.snapshot_limit, kind.depth_limits[-1])
        params = {"symbol": symbol, "limit": str(limit)}
        try:
            async with self._session.get(url, params=params) as response:
                body = await response.read()
                if response.status != 200:
                    raise SnapshotError(
                        f"HTTP {response.status}: {body[:200].decode(errors='replace')}",
                        _retry_after_ms(response),
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SnapshotError(f"{type(exc).__name__}: {exc}"[:300]) from None
        return _checked_snapshot(body)


def _checked_snapshot(body: bytes) -> bytes:
    """The body as received (outer whitespace aside), if a replay will recognise it as a
    snapshot: one line, starting with `{"lastUpdateId"`, with bids and asks."""
    body = body.strip()
    if b"\n" in body:
        raise SnapshotError("body spans several lines")
    if not body.startswith(b'{"lastUpdateId"'):
        raise SnapshotError(f"not a depth snapshot: {body[:80].decode(errors='replace')}")
    try:
        parse_snapshot(body)
    except MalformedMessage as exc:
        raise SnapshotError(str(exc)[:300]) from None
    return body
