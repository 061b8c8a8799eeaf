"""One market-data connection to one endpoint: stream reader, book synchronisation, staleness."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol

import aiohttp
from websockets.exceptions import ConnectionClosed

from engine.config import FeedConfig
from engine.core.book import DepthDiff, DepthSync, SyncAction
from engine.core.clock import Clock
from engine.core.errors import CrossedBookError
from engine.core.staleness import StalenessTracker
from engine.marketdata.binance import (
    KINDS,
    MalformedMessage,
    RawBookTicker,
    RawMarkPrice,
    RawTrade,
    Reply,
    combined_url,
    parse_combined,
    parse_snapshot,
)
from engine.runtime.metrics import EngineMetrics
from plumbing.backoff import Backoff
from plumbing.logging import get_logger
from plumbing.ratelimited_log import RateLimitedLog
from plumbing.reconnecting_ws import connect

log = get_logger("engine.feed")


class FeedSink(Protocol):
    async def on_trade(
        self, feed: FeedConnection, trade: RawTrade, recv_ns: int, recv_mono_ns: int
    ) -> None: ...

    async def on_quote(
        self, feed: FeedConnection, quote: RawBookTicker, recv_ns: int, recv_mono_ns: int
    ) -> None: ...

    async def on_mark(
        self, feed: FeedConnection, mark: RawMarkPrice, recv_ns: int, recv_mono_ns: int
    ) -> None: ...

    def on_depth_arrival(
        self, feed: FeedConnection, symbol: str, update_id: int, recv_mono_ns: int
    ) -> None: ...

    async def on_book(
        self,
        feed: FeedConnection,
        symbol: str,
        sync: DepthSync,
        exchange_ts_ms: int,
        recv_ns: int,
    ) -> None: ...

    async def on_feed_event(
        self, feed: FeedConnection, symbol: str, event: str, reason: str
    ) -> None: ...


class FeedConnection:
    def __init__(
        self,
        *,
        feed_id: str,
        venue: str,
        ws_base_url: str,
        rest_url: str,
        symbols: list[str],
        config: FeedConfig,
        snapshot_path: str = "/api/v3/depth",
        depth_stream: str = "@depth@100ms",
        clock: Clock,
        metrics: EngineMetrics,
        sink: FeedSink,
        http: aiohttp.ClientSession,
    ) -> None:
        self.feed_id = feed_id
        self.venue = venue
        self.futures = snapshot_path != "/api/v3/depth"
        self.url = combined_url(ws_base_url, symbols, depth_stream, futures=self.futures)
        self.rest_url = rest_url.rstrip("/")
        self.snapshot_path = snapshot_path
        self.symbols = [s.upper() for s in symbols]
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.sink = sink
        self.http = http
        self.syncs = {s: DepthSync() for s in self.symbols}
        self.staleness = StalenessTracker(
            default_ms=config.stale_after_ms,
            per_kind_ms=config.stream_stale_after_ms,
            learn=config.learn_stale_thresholds,
            learned_min_ms=config.learned_stale_min_ms,
            learned_max_ms=config.learned_stale_max_ms,
            multiplier=config.learned_stale_multiplier,
        )
        self._ws: Any = None
        self._connected_ns = 0
        self.stale_reconnects = 0
        self.connected = False
        self.connections = 0
        self._snapshots: asyncio.Queue[str] = asyncio.Queue(maxsize=len(self.symbols) * 4)
        self._snapshot_wanted: set[str] = set()
        self._malformed = RateLimitedLog(log, clock)
        # the labelled children are looked up once: labels() hashes its values on every call,
        # and the counter is bumped for every message of the feed
        self._counted = {
            kind: metrics.md_messages.labels(venue=venue, feed=feed_id, kind=kind)
            for kind in (*KINDS, "markPrice")
        }

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._snapshot_worker(), name=f"{self.feed_id}-snapshots")
            tasks.create_task(self._read_loop(), name=f"{self.feed_id}-reader")
            tasks.create_task(self._stale_watchdog(), name=f"{self.feed_id}-staleness")

    async def _stale_watchdog(self) -> None:
        """Reconnect when a stream that should be busy (depth, bookTicker) falls silent: the
        connection is open but broken. A quiet trade stream never triggers this."""
        interval = self.config.stale_check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            ws = self._ws
            if ws is None or not self.connected:
                continue
            stale = self.silent_streams(self.config.reconnect_on_stale)
            if stale:
                self.stale_reconnects += 1
                self.metrics.feed_stale_reconnects.labels(venue=self.venue, feed=self.feed_id).inc()
                log.warning("feed_stale_reconnect", feed=self.feed_id, stale=stale)
                await ws.close(4000, f"stale: {','.join(stale)}")

    def silent_streams(self, kinds: list[str]) -> list[str]:
        """Streams of these kinds silent for longer than their threshold (since connecting)."""
        now = self.clock.monotonic_ns()
        out = []
        for symbol in self.symbols:
            for kind in kinds:
                threshold = self.staleness.threshold_ns(symbol, kind)
                age = self.staleness.age_ns(symbol, kind, now)
                if age is None:
                    age = now - self._connected_ns
                if age > threshold:
                    out.append(f"{symbol}/{kind}")
        return out

    async def _read_loop(self) -> None:
        backoff = Backoff(
            base_ms=self.config.reconnect_base_ms, cap_ms=self.config.reconnect_cap_ms
        )
        connections = connect(
            self.url,
            backoff=backoff,
            clock=self.clock,
            healthy_after_ms=self.config.healthy_after_ms,
            open_timeout_ms=self.config.open_timeout_ms,
            ping_interval_ms=self.config.ping_interval_ms,
            on_retry=self._on_retry,
        )
        async with contextlib.aclosing(connections):
            async for ws in connections:
                self._ws = ws
                await self._on_connected()
                try:
                    async for raw in ws:
                        await self.on_message(
                            raw if isinstance(raw, bytes) else raw.encode(),
                            self.clock.time_ns(),
                            self.clock.monotonic_ns(),
                        )
                except ConnectionClosed as exc:
                    await self._on_disconnected(f"closed: {exc}")
                    continue
                await self._on_disconnected("closed by server")

    def _on_retry(self, exc: BaseException, delay_ms: float) -> None:
        log.warning(
            "feed_reconnect_scheduled",
            feed=self.feed_id,
            error=str(exc)[:200],
            delay_ms=round(delay_ms),
        )

    async def _on_connected(self) -> None:
        self.connections += 1
        self.connected = True
        self._connected_ns = self.clock.monotonic_ns()
        self.staleness.forget()
        if self.connections > 1:
            self.metrics.feed_reconnects.labels(venue=self.venue, feed=self.feed_id).inc()
        for symbol, sync in self.syncs.items():
            sync.reset()  # diffs of the old connection cannot be continued
            await self.sink.on_feed_event(
                self, symbol, "connected", f"connection {self.connections}"
            )
        log.info("feed_connected", feed=self.feed_id, url=self.url, connection=self.connections)

    async def _on_disconnected(self, reason: str) -> None:
        self.connected = False
        self._ws = None
        for symbol in self.symbols:
            await self.sink.on_feed_event(self, symbol, "disconnected", reason)
        log.warning("feed_disconnected", feed=self.feed_id, reason=reason[:200])

    # --- messages -----------------------------------------------------------------------------

    async def on_message(self, raw: bytes, recv_ns: int, recv_mono_ns: int) -> None:
        try:
            parsed = parse_combined(raw)
        except MalformedMessage as exc:
            self._count_malformed(exc.kind, str(exc), raw)
            return
        if isinstance(parsed, Reply):
            if parsed.error is not None:
                self._count_malformed("error_reply", str(parsed.error), raw)
            return
        kind, symbol, event = parsed
        if symbol not in self.syncs:
            self._count_malformed("unknown_symbol", symbol, raw)
            return
        self._counted[kind].inc()
        self.staleness.seen(symbol, kind, recv_mono_ns)
        if isinstance(event, RawTrade):
            await self.sink.on_trade(self, event, recv_ns, recv_mono_ns)
        elif isinstance(event, RawBookTicker):
            await self.sink.on_quote(self, event, recv_ns, recv_mono_ns)
        elif isinstance(event, RawMarkPrice):
            await self.sink.on_mark(self, event, recv_ns, recv_mono_ns)
        else:
            self.sink.on_depth_arrival(self, symbol, event.final_update_id, recv_mono_ns)
            await self._on_diff(symbol, event, recv_ns)

    async def _on_diff(self, symbol: str, diff: DepthDiff, recv_ns: int) -> None:
        sync = self.syncs[symbol]
        gaps_before = sync.gaps
        try:
            action = sync.on_diff(diff)
        except CrossedBookError as exc:
            self.metrics.book_resyncs.labels(venue=self.venue, symbol=symbol).inc()
            log.warning("book_crossed_resync", feed=self.feed_id, symbol=symbol, error=str(exc))
            await self.sink.on_feed_event(self, symbol, "resync", str(exc))
            self._want_snapshot(symbol)
            return
        if action is SyncAction.APPLIED:
            await self.sink.on_book(self, symbol, sync, diff.exchange_ts_ms, recv_ns)
        elif action is SyncAction.FETCH_SNAPSHOT:
            if sync.gaps > gaps_before:
                self.metrics.book_gaps.labels(venue=self.venue, symbol=symbol).inc()
                self.metrics.book_resyncs.labels(venue=self.venue, symbol=symbol).inc()
                log.warning(
                    "book_gap_resync",
                    feed=self.feed_id,
                    symbol=symbol,
                    last_applied=sync.last_gap[0] if sync.last_gap else None,
                    next_first=diff.first_update_id,
                )
                await self.sink.on_feed_event(
                    self, symbol, "resync", f"update-id gap {sync.last_gap}"
                )
            self._want_snapshot(symbol)

    def _count_malformed(self, kind: str, detail: str, raw: bytes) -> None:
        self.metrics.md_malformed.labels(venue=self.venue, feed=self.feed_id, kind=kind).inc()
        self._malformed.warning(
            kind,
            "feed_malformed_message",
            feed=self.feed_id,
            detail=detail[:200],
            sample=raw[:120].decode("utf-8", "replace"),
        )

    # --- snapshots ----------------------------------------------------------------------------

    def _want_snapshot(self, symbol: str) -> None:
        if symbol in self._snapshot_wanted:
            return
        self._snapshot_wanted.add(symbol)
        self._snapshots.put_nowait(symbol)

    async def _snapshot_worker(self) -> None:
        backoff = Backoff(
            base_ms=self.config.reconnect_base_ms, cap_ms=self.config.reconnect_cap_ms
        )
        while True:
            symbol = await self._snapshots.get()
            self._snapshot_wanted.discard(symbol)
            try:
                body = await self._fetch_snapshot(symbol)
                last_update_id, bids, asks = parse_snapshot(body)
            except (aiohttp.ClientError, TimeoutError, MalformedMessage) as exc:
                delay = backoff.next_delay_ms()
                log.warning(
                    "book_snapshot_failed",
                    feed=self.feed_id,
                    symbol=symbol,
                    error=str(exc)[:200],
                    retry_in_ms=round(delay),
                )
                await asyncio.sleep(delay / 1000)
                self._want_snapshot(symbol)
                continue
            backoff.reset()
            sync = self.syncs[symbol]
            try:
                action = sync.on_snapshot(last_update_id, bids, asks)
            except CrossedBookError as exc:
                log.warning("book_crossed_resync", feed=self.feed_id, symbol=symbol, error=str(exc))
                self._want_snapshot(symbol)
                continue
            if action is SyncAction.FETCH_SNAPSHOT:
                self._want_snapshot(symbol)
            elif action is SyncAction.APPLIED:
                log.info(
                    "book_synced",
                    feed=self.feed_id,
                    symbol=symbol,
                    last_update_id=last_update_id,
                    update_id=sync.book.update_id,
                )
                await self.sink.on_book(self, symbol, sync, 0, self.clock.time_ns())

    async def _fetch_snapshot(self, symbol: str) -> bytes:
        url = f"{self.rest_url}{self.snapshot_path}"
        timeout = aiohttp.ClientTimeout(total=self.config.open_timeout_ms / 1000)
        params = {"symbol": symbol, "limit": str(self.config.snapshot_limit)}
        async with self.http.get(url, params=params, timeout=timeout) as response:
            body = await response.read()
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info,
                    (),
                    status=response.status,
                    message=body[:200].decode("utf-8", "replace"),
                )
            return body

    # --- health -------------------------------------------------------------------------------

    def stale_streams(self) -> list[str]:
        kinds = {s: KINDS for s in self.symbols}
        return self.staleness.stale(self.clock.monotonic_ns(), kinds)

    def healthy(self) -> bool:
        """Connected, books synced, and no busy stream silent: fit to be the active feed."""
        return (
            self.connected
            and not self.unsynced()
            and not self.silent_streams(self.config.reconnect_on_stale)
        )

    def unsynced(self) -> list[str]:
        return [s for s, sync in self.syncs.items() if not sync.synced]
