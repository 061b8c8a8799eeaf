"""Fills by push: the venue's user data stream through ccxt.pro (`watch_orders`).

Every executionReport goes to the order desk, which records the state and the trade it carries
(idempotent on trade id). ccxt.pro keeps the connection, subscription and keep-alive; this loop
only restarts the watch with backoff and full jitter when it fails, and tells PushHealth, whose
staleness switches the desk's REST polling to its fast interval. Nothing is lost when the stream
drops an event: the desk notices missing fills (filled quantity ahead of recorded trades) and
fetches them, and the poller covers state changes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt.pro as ccxtpro

from engine.config import Secrets, VenueConfig
from engine.core.clock import Clock
from engine.core.pushhealth import PushHealth
from engine.execution.desk import OrderDesk
from engine.execution.venue import binance_api_urls, rehosted
from plumbing.backoff import Backoff
from plumbing.logging import get_logger
from plumbing.ratelimited_log import RateLimitedLog
from plumbing.waits import wait_set

log = get_logger("engine.execution.user_stream")


def make_binance_pro(venue: VenueConfig, secrets: Secrets) -> Any:
    ws_base = (venue.user_stream_url or venue.ws_urls[0]).rstrip("/")
    if venue.market != "spot":
        return _make_futures_pro(venue, secrets, ws_base)
    exchange = ccxtpro.binance(
        {
            "apiKey": secrets.api_key.reveal(),
            "secret": secrets.api_secret.reveal(),
            "timeout": venue.request_timeout_ms,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
                "recvWindow": venue.recv_window_ms,
            },
        }
    )
    exchange.urls["api"] = {
        **binance_api_urls(venue.rest_url),
        "ws": {
            "spot": f"{ws_base}/ws",
            "margin": f"{ws_base}/ws",
            "ws-api": {"spot": f"{ws_base}/ws-api/v3"},
        },
    }
    return exchange


def _make_futures_pro(venue: VenueConfig, secrets: Secrets, ws_base: str) -> Any:
    """ccxt.pro's USD-M or COIN-M client: the user stream by listen key (REST to get and keep
    it alive, `/ws/<key>` or USD-M's `/private/ws?listenKey=`), ORDER_TRADE_UPDATE events."""
    maker = ccxtpro.binanceusdm if venue.market == "usdm" else ccxtpro.binancecoinm
    exchange = maker(
        {
            "apiKey": secrets.api_key.reveal(),
            "secret": secrets.api_secret.reveal(),
            "timeout": venue.request_timeout_ms,
            "options": {"fetchCurrencies": False, "recvWindow": venue.recv_window_ms},
        }
    )
    exchange.urls["api"] = {
        **rehosted(exchange.urls["api"], venue.rest_url),
        "ws": {kind: f"{ws_base}/ws" for kind in ("spot", "margin", "linear", "inverse")},
    }
    return exchange


class UserStream:
    def __init__(
        self,
        *,
        venue: VenueConfig,
        secrets: Secrets,
        desk: OrderDesk,
        push: PushHealth,
        clock: Clock,
        markets: dict[str, Any],
    ) -> None:
        self.venue = venue
        self.secrets = secrets
        self.desk = desk
        self.push = push
        self.clock = clock
        self.markets = markets
        self._stopping = asyncio.Event()
        self._errors = RateLimitedLog(log, clock, interval_ms=10_000)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        exchange = make_binance_pro(self.venue, self.secrets)
        exchange.set_markets(list(self.markets.values()))
        backoff = Backoff(base_ms=200, cap_ms=10_000)
        watch: asyncio.Task[Any] | None = None
        stop = asyncio.create_task(self._stopping.wait(), name="user-stream-stop")
        try:
            while not self._stopping.is_set():
                self.push.on_connected(self.clock.time_ns())
                watch = asyncio.create_task(exchange.watch_orders(), name="user-stream-watch")
                done, _ = await asyncio.wait({watch, stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    break
                try:
                    orders = watch.result()
                except Exception as exc:
                    self.push.on_disconnected()
                    self._errors.warning(
                        type(exc).__name__, "user_stream_failed", error=str(exc)[:200]
                    )
                    delay = backoff.next_delay_ms()
                    await wait_set(self._stopping, delay / 1000)
                    continue
                backoff.reset()
                for order in orders:
                    info = order.get("info") or {}
                    if info.get("e") == "executionReport":
                        await self.desk.on_execution_report(info)
                    elif "X" in info and "z" in info:  # futures: ccxt keeps the update's "o"
                        pushed = {"e": "ORDER_TRADE_UPDATE", "o": info}
                        await self.desk.on_execution_report(pushed)
        finally:
            self.push.on_disconnected()
            for task in (watch, stop):
                if task is not None and not task.done():
                    task.cancel()
            await asyncio.gather(
                *(t for t in (watch, stop) if t is not None), return_exceptions=True
            )
            await exchange.close()
