"""The feed service: venue connections in, deduplicated market data out on md.{venue}.{symbol}.

With several endpoints for one venue (redundant feeds) every connection runs at once. Each event
is published once, by whichever connection delivers it first, so the bus never sees a duplicate
or a gap while one feed is alive. The book is published from the active feed, which the arbiter
(engine.core.arbiter) switches when it goes stale or falls behind, and fails back with hysteresis.
Every switch is a metric, a log line with its reason, and a FeedEvent on the bus.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.bus.base import md_stream
from engine.bus.publisher import Overflow, Publisher
from engine.core.arbiter import FeedArbiter, Switch
from engine.core.book import DepthSync
from engine.core.messages import BookTop, FeedEvent, MarkPrice, Quote, Trade
from engine.marketdata.binance import (
    KINDS,
    SNAPSHOT_PATHS,
    RawBookTicker,
    RawMarkPrice,
    RawTrade,
)
from engine.marketdata.feed import FeedConnection
from engine.runtime.service import Readiness, Service, ServiceContext
from plumbing.backoff import Backoff


class _AgeCollector(Collector):
    """trading_market_data_age_seconds{venue,symbol,feed}, computed at scrape time."""

    def __init__(self, service: FeedService) -> None:
        self._service = service

    def collect(self) -> Any:
        family = GaugeMetricFamily(
            "trading_market_data_age_seconds",
            "Seconds since the last market data message (local receive time)",
            labels=["venue", "symbol", "feed"],
        )
        now = self._service.clock.monotonic_ns()
        for feed in self._service.feeds:
            for symbol in feed.symbols:
                age = feed.staleness.symbol_age_ns(symbol, now)
                if age is not None:
                    family.add_metric([feed.venue, symbol, feed.feed_id], age / 1e9)
        yield family


class FeedService(Service):
    name = "feed"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        venue = self.config.venue
        self.venue = venue.name
        self.symbols = [s.upper() for s in venue.symbols]
        self.publisher = Publisher(
            self.bus,
            max_queue=self.config.bus.publish_queue_max,
            overflow=Overflow.BLOCK,
            on_batch_latency=self.metrics.bus_publish_latency.observe,
            on_degraded=lambda d: self.metrics.bus_degraded.labels(service=self.name).set(int(d)),
        )
        self.http: aiohttp.ClientSession | None = None
        self.feeds: list[FeedConnection] = []
        feed_cfg = self.config.feed
        self.arbiter = FeedArbiter(
            [f"feed{i}" for i in range(len(venue.ws_urls))],
            lag_threshold_ms=feed_cfg.switch_lag_ms,
            hysteresis_ms=feed_cfg.switch_hysteresis_ms,
            failback_ms=feed_cfg.failback_ms,
        )
        self._last_book_id: dict[str, int] = {}
        self.published = {"trade": 0, "quote": 0, "book": 0}
        self.metrics.registry.register(_AgeCollector(self))

    async def on_start(self) -> None:
        self.http = aiohttp.ClientSession()
        venue = self.config.venue
        self.feeds = [
            FeedConnection(
                feed_id=f"feed{i}",
                venue=self.venue,
                ws_base_url=url,
                rest_url=venue.rest_url,
                snapshot_path=SNAPSHOT_PATHS[venue.market],
                depth_stream=venue.depth_stream,
                symbols=self.symbols,
                config=self.config.feed,
                clock=self.clock,
                metrics=self.metrics,
                sink=self,
                http=self.http,
            )
            for i, url in enumerate(venue.ws_urls)
        ]

    async def _supervise(self, feed: FeedConnection) -> None:
        """One feed's bug must not take the other feeds down: log it, count it, restart it."""
        backoff = Backoff(base_ms=200, cap_ms=10_000)
        while True:
            try:
                await feed.run()
            except Exception as exc:
                feed.connected = False
                self.metrics.feed_crashes.labels(venue=self.venue, feed=feed.feed_id).inc()
                self.log.error(
                    "feed_connection_crashed", feed=feed.feed_id, error=repr(exc), exc_info=exc
                )
                await asyncio.sleep(backoff.next_delay_ms() / 1000)

    @property
    def active(self) -> FeedConnection:
        return self.feeds[self.arbiter.feeds.index(self.arbiter.active)]

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.publisher.run(), name="feed-publisher")
            readers = [
                tasks.create_task(self._supervise(f), name=f"feed-{f.feed_id}") for f in self.feeds
            ]
            readers.append(tasks.create_task(self._arbitrate(), name="feed-arbiter"))
            await self.stopping.wait()
            # socket reads and snapshot fetches are safe to cancel; then publish what arrived
            for reader in readers:
                reader.cancel()
            self.publisher.stop()

    async def on_stop(self) -> None:
        if self.http is not None:
            await self.http.close()

    # --- FeedSink ------------------------------------------------------------------------ ----

    async def on_trade(
        self, feed: FeedConnection, trade: RawTrade, recv_ns: int, recv_mono_ns: int
    ) -> None:
        if not self.arbiter.arrived(feed.feed_id, (trade.s, "t", trade.t), recv_mono_ns):
            return
        message = Trade(
            correlation_id=f"{self.venue}:{trade.s}:t{trade.t}",
            venue=self.venue,
            symbol=trade.s,
            trade_id=trade.t,
            price=float(trade.p),
            qty=float(trade.q),
            buyer_is_maker=trade.m,
            exchange_ts_ms=trade.T,
            recv_ts_ns=recv_ns,
            feed=feed.feed_id,
        )
        self.published["trade"] += 1
        await self.publisher.put(md_stream(self.venue, trade.s), message, recv_mono_ns)

    async def on_quote(
        self, feed: FeedConnection, quote: RawBookTicker, recv_ns: int, recv_mono_ns: int
    ) -> None:
        if not self.arbiter.arrived(feed.feed_id, (quote.s, "q", quote.u), recv_mono_ns):
            return
        message = Quote(
            correlation_id=f"{self.venue}:{quote.s}:q{quote.u}",
            venue=self.venue,
            symbol=quote.s,
            update_id=quote.u,
            bid_price=float(quote.b),
            bid_qty=float(quote.B),
            ask_price=float(quote.a),
            ask_qty=float(quote.A),
            recv_ts_ns=recv_ns,
            feed=feed.feed_id,
        )
        self.published["quote"] += 1
        await self.publisher.put(md_stream(self.venue, quote.s), message, recv_mono_ns)

    async def on_mark(
        self, feed: FeedConnection, mark: RawMarkPrice, recv_ns: int, recv_mono_ns: int
    ) -> None:
        """Futures mark price and funding: published once whichever feed brings it first."""
        if not self.arbiter.arrived(feed.feed_id, (mark.s, "m", mark.E), recv_mono_ns):
            return
        message = MarkPrice(
            correlation_id=f"{self.venue}:{mark.s}:m{mark.E}",
            venue=self.venue,
            symbol=mark.s,
            mark_price=float(mark.p),
            index_price=float(mark.i),
            funding_rate=float(mark.r),
            next_funding_ms=mark.T,
            exchange_ts_ms=mark.E,
            recv_ts_ns=recv_ns,
            feed=feed.feed_id,
        )
        self.published["mark"] = self.published.get("mark", 0) + 1
        await self.publisher.put(md_stream(self.venue, mark.s), message, recv_mono_ns)

    def on_depth_arrival(
        self, feed: FeedConnection, symbol: str, update_id: int, recv_mono_ns: int
    ) -> None:
        """Depth diffs count for lag (the book itself is published from the active feed)."""
        self.arbiter.arrived(feed.feed_id, (symbol, "d", update_id), recv_mono_ns)

    async def on_book(
        self,
        feed: FeedConnection,
        symbol: str,
        sync: DepthSync,
        exchange_ts_ms: int,
        recv_ns: int,
    ) -> None:
        if feed.feed_id != self.arbiter.active:
            return
        await self._publish_book(feed, symbol, sync, exchange_ts_ms, recv_ns)

    async def _publish_book(
        self, feed: FeedConnection, symbol: str, sync: DepthSync, exchange_ts_ms: int, recv_ns: int
    ) -> None:
        book = sync.book
        if book.update_id <= self._last_book_id.get(symbol, -1):
            return
        self._last_book_id[symbol] = book.update_id
        depth = self.config.feed.book_levels_published
        message = BookTop(
            correlation_id=f"{self.venue}:{symbol}:b{book.update_id}",
            venue=self.venue,
            symbol=symbol,
            update_id=book.update_id,
            bids=book.bids.top(depth),
            asks=book.asks.top(depth),
            exchange_ts_ms=exchange_ts_ms,
            recv_ts_ns=recv_ns,
            feed=feed.feed_id,
        )
        self.published["book"] += 1
        await self.publisher.put(md_stream(self.venue, symbol), message)

    async def on_feed_event(
        self, feed: FeedConnection, symbol: str, event: str, reason: str
    ) -> None:
        message = FeedEvent(
            venue=self.venue,
            symbol=symbol,
            feed=feed.feed_id,
            event=event,
            reason=reason,
            ts_ns=self.clock.time_ns(),
        )
        await self.publisher.put(md_stream(self.venue, symbol), message)

    async def _arbitrate(self) -> None:
        interval = self.config.feed.stale_check_interval_ms / 1000 / 2
        while True:
            await asyncio.sleep(interval)
            for feed in self.feeds:
                self.arbiter.set_health(feed.feed_id, feed.healthy())
                self.metrics.feed_lag.labels(venue=self.venue, feed=feed.feed_id).set(
                    self.arbiter.lag_ms(feed.feed_id)
                )
            switch = self.arbiter.decide(self.clock.monotonic_ns())
            if switch is not None:
                await self._on_switch(switch)

    async def _on_switch(self, switch: Switch) -> None:
        reason_kind = (
            "fail-back"
            if switch.reason.startswith("fail-back")
            else "lag"
            if " lags " in switch.reason
            else "unhealthy"
        )
        self.metrics.feed_switches.labels(
            venue=self.venue, to=switch.active, reason=reason_kind
        ).inc()
        for feed in self.feeds:
            self.metrics.feed_active.labels(venue=self.venue, feed=feed.feed_id).set(
                int(feed.feed_id == switch.active)
            )
        self.log.warning(
            "feed_switched", previous=switch.previous, active=switch.active, reason=switch.reason
        )
        active = self.active
        for symbol in self.symbols:
            await self.on_feed_event(
                active, symbol, "switch", f"{switch.previous} -> {switch.active}: {switch.reason}"
            )
            sync = active.syncs[symbol]
            if sync.synced:  # the new active feed's book, at once
                await self._publish_book(active, symbol, sync, 0, self.clock.time_ns())

    # --- health -------------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        if not self.feeds:
            return Readiness(False, ("no feeds configured",))
        active = self.active
        stale = active.silent_streams(self.config.feed.reconnect_on_stale)
        reasons = []
        if not active.connected:
            reasons.append(f"{active.feed_id} disconnected")
        if unsynced := active.unsynced():
            reasons.append(f"book not synced: {','.join(unsynced)}")
        if stale:
            reasons.append(f"stale: {','.join(stale)}")
        if self.publisher.degraded:
            reasons.append("bus degraded")
        return Readiness(not reasons, tuple(reasons))

    def status(self) -> dict[str, Any]:
        now = self.clock.monotonic_ns()
        feeds = {}
        for feed in self.feeds:
            ages = {}
            for symbol in feed.symbols:
                age = feed.staleness.symbol_age_ns(symbol, now)
                ages[symbol] = None if age is None else round(age / 1e6, 1)
            feeds[feed.feed_id] = {
                "connected": feed.connected,
                "healthy": feed.healthy(),
                "connections": feed.connections,
                "stale_reconnects": feed.stale_reconnects,
                "thresholds_ms": {
                    f"{symbol}/{kind}": round(feed.staleness.threshold_ns(symbol, kind) / 1e6)
                    for symbol in feed.symbols
                    for kind in KINDS
                },
                "data_age_ms": ages,
                "book_update_id": {s: sync.book.update_id for s, sync in feed.syncs.items()},
                "synced": {s: sync.synced for s, sync in feed.syncs.items()},
                "depth_gaps": {s: sync.gaps for s, sync in feed.syncs.items()},
            }
        return {
            "active_feed": self.arbiter.active,
            "feed_switches": self.arbiter.switches,
            "feed_lag_ms": {f: round(self.arbiter.lag_ms(f), 2) for f in self.arbiter.feeds},
            "feeds": feeds,
            "published": dict(self.published),
            "bus_degraded": self.publisher.degraded,
            "publish_queue": len(self.publisher),
        }
