"""The feed service: venue connections in, deduplicated market data out on md.{venue}.{symbol}.

With several endpoints for one venue (redundant feeds) every connection runs at once; each event
is published once, by whichever connection delivers it first (trade ids and update ids only move
forward), so the bus never sees a duplicate and the freshest feed wins. The book is published
from the active feed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.bus.base import md_stream
from engine.bus.publisher import Overflow, Publisher
from engine.core.book import DepthSync
from engine.core.messages import BookTop, FeedEvent, Quote, Trade
from engine.marketdata.binance import RawBookTicker, RawTrade
from engine.marketdata.feed import FeedConnection
from engine.runtime.service import Readiness, Service, ServiceContext


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
            on_latency=self.metrics.bus_publish_latency.observe,
            on_degraded=lambda d: self.metrics.bus_degraded.labels(service=self.name).set(int(d)),
        )
        self.http: aiohttp.ClientSession | None = None
        self.feeds: list[FeedConnection] = []
        self.active_feed = 0
        self._last_trade_id: dict[str, int] = {}
        self._last_quote_id: dict[str, int] = {}
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
                symbols=self.symbols,
                config=self.config.feed,
                clock=self.clock,
                metrics=self.metrics,
                sink=self,
                http=self.http,
            )
            for i, url in enumerate(venue.ws_urls)
        ]

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.publisher.run(), name="feed-publisher")
            readers = [tasks.create_task(f.run(), name=f"feed-{f.feed_id}") for f in self.feeds]
            await self.stopping.wait()
            # socket reads and snapshot fetches are safe to cancel; then publish what arrived
            for reader in readers:
                reader.cancel()
            self.publisher.stop()

    async def on_stop(self) -> None:
        if self.http is not None:
            await self.http.close()

    # --- FeedSink ------------------------------------------------------------------------ ----

    async def on_trade(self, feed: FeedConnection, trade: RawTrade, recv_ns: int) -> None:
        if trade.t <= self._last_trade_id.get(trade.s, -1):
            return
        self._last_trade_id[trade.s] = trade.t
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
        await self.publisher.put(md_stream(self.venue, trade.s), message)

    async def on_quote(self, feed: FeedConnection, quote: RawBookTicker, recv_ns: int) -> None:
        if quote.u <= self._last_quote_id.get(quote.s, -1):
            return
        self._last_quote_id[quote.s] = quote.u
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
        await self.publisher.put(md_stream(self.venue, quote.s), message)

    async def on_book(
        self,
        feed: FeedConnection,
        symbol: str,
        sync: DepthSync,
        exchange_ts_ms: int,
        recv_ns: int,
    ) -> None:
        if feed is not self.feeds[self.active_feed]:
            return
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

    # --- health -------------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        active = self.feeds[self.active_feed] if self.feeds else None
        if active is None:
            return Readiness(False, ("no feeds configured",))
        stale = [s for s in active.stale_streams() if not s.endswith("/trade")]
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
                "connections": feed.connections,
                "data_age_ms": ages,
                "book_update_id": {s: sync.book.update_id for s, sync in feed.syncs.items()},
                "synced": {s: sync.synced for s, sync in feed.syncs.items()},
            }
        return {
            "active_feed": self.feeds[self.active_feed].feed_id if self.feeds else None,
            "feeds": feeds,
            "published": dict(self.published),
            "bus_degraded": self.publisher.degraded,
            "publish_queue": len(self.publisher),
        }
