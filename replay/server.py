"""One process: the replay feed (WebSocket), the exchange simulator (REST) and the control API,
all driven by one replay loop over the recording.

For each record, in receive-time order: wait until it is due (pacing), update the replayed market
(books, and the matching engine: trades cross resting orders, book changes replenish liquidity),
then hand the message to the feed's subscribers. Updating the market before serving the message
keeps the depth endpoint at or ahead of every diff a client has received, as the procedure for
building a local book requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from plumbing.heap import settle_heap
from plumbing.http_limits import HttpLimits, serve_bounded
from plumbing.logging import get_logger
from replay.binance import DepthSnapshot, TradeEvent
from replay.control import build_control_app
from replay.depth_conflate import DepthConflator
from replay.depth_sync import DepthDiff
from replay.derived import DerivedStreams
from replay.derived_futures import FuturesStreams, force_order_event, mark_price_event
from replay.exchange import http11
from replay.exchange.formats import fmt
from replay.exchange.futures.api import FuturesApi
from replay.exchange.futures.engine import FuturesMatchingEngine
from replay.exchange.futures.userdata import FuturesUserDataHub
from replay.exchange.matching import MatchingEngine
from replay.exchange.rest import SimulatorApi
from replay.exchange.symbols import ExchangeInfo
from replay.exchange.userdata import UserDataHub
from replay.exchange.venue_faults import VenueFault, VenueFaultBook
from replay.exchange.venue_limits import RateLimiter, RateLimits
from replay.exchange.wsapi import PrivateStreams
from replay.feed_server import FeedLimits, FeedServer
from replay.lane.compiled import AVAILABLE as FAST_LANE_BUILT
from replay.lane.fastlane import FastLane
from replay.mark_price import MarkPrice, MarkPriceConfig, MarkPriceModel
from replay.market_kind import MarketKind, detect_market_kind
from replay.midtape import MidTape
from replay.pacing import Pacer, PacingStats
from replay.recording import Record, RecordCursor, read_many
from replay.stream_messages import (
    FUTURES_TIME_KEYS_BY_KIND,
    TIME_KEYS_BY_KIND,
    Classified,
    EventTimeMap,
    classify,
    decode_quote_with_time,
    first_event_ms,
    rebase,
)
from replay.tools.drops import Drop, find_drop, trade_prices

log = get_logger("replay.server")


@dataclass(frozen=True, kw_only=True)
class SimAccount:
    api_key: str
    api_secret: str
    balances: dict[str, Decimal]


@dataclass(frozen=True, kw_only=True)
class ReplayServerConfig:
    recordings: list[Path]
    speed: float | None = 1.0
    rebase: bool = True
    host: str = "127.0.0.1"
    ws_port: int = 9443
    rest_port: int = 9080
    control_port: int = 9081
    control_token: str = ""
    accounts: list[SimAccount] = field(default_factory=list)
    exchange_info_path: Path | None = None
    maker_fee: Decimal = Decimal("0.001")
    taker_fee: Decimal = Decimal("0.001")
    start_paused: bool = False
    client_queue: int = 10_000
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 60.0
    max_stall_s: float = 10.0
    rate_limits: RateLimits = field(default_factory=RateLimits)
    fault_seed: int = 0
    symbols: list[str] | None = None
    """Symbols to list; default: those found in the first records of the recording."""
    fast_lane: bool = True
    """Use the compiled max-speed lane when it is built (off: the Python path only)."""
    rest_limits: http11.ServerLimits = field(default_factory=http11.ServerLimits)
    """Bounds of the exchange simulator's REST server (docs/limits.md)."""
    feed_limits: FeedLimits = field(default_factory=FeedLimits)
    """Bounds of the WebSocket port: the feed, the WebSocket API, listen-key streams."""
    control_limits: HttpLimits = field(default_factory=HttpLimits)
    """Bounds of the control API."""
    market: MarketKind | None = None
    """Spot, USD-M or COIN-M; default: what the recording says (replay/market_kind.py)."""
    mark_price: MarkPriceConfig = field(default_factory=MarkPriceConfig)
    """Futures: how the mark price and funding are derived (replay/mark_price.py)."""
    futures_maker_fee: Decimal = Decimal("0.0002")
    futures_taker_fee: Decimal = Decimal("0.0005")
    """Binance's futures base tier (USD-M 0.02% / 0.05%)."""


def scan_symbols(paths: Iterable[Path], limit: int = 5000) -> list[str]:
    """Symbols named by the streams of the first records (cheap: no full read)."""
    found: list[str] = []
    for i, record in enumerate(read_many(paths)):
        if i >= limit:
            break
        if record.payload.startswith(b'{"stream":"'):
            end = record.payload.index(b"@")
            symbol = record.payload[11:end].decode().upper()
            if symbol not in found:
                found.append(symbol)
    return found


class _DiffDetails(msgspec.Struct):
    T: int = 0
    ps: str | None = None


def _diff_details(data: bytes) -> tuple[int, str | None]:
    """A futures diff's transaction time and COIN-M pair (the conflated stream repeats them)."""
    try:
        details = msgspec.json.decode(data, type=_DiffDetails)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 0, None
    return details.T, details.ps


def _has_numbers(trade: TradeEvent) -> bool:
    """Whether price and quantity read as numbers (the market and the statistics need them)."""
    try:
        float(trade.p)
        float(trade.q)
    except ValueError:
        return False
    return True


def offline_venue(recording: Path, account: SimAccount, *, records: int = 3000) -> ReplayServer:
    """A venue standing on a recording's first `records` records, with no socket and no rate
    limit: for tests and benchmarks that call its handlers directly."""
    config = ReplayServerConfig(
        recordings=[recording],
        speed=None,
        ws_port=0,
        rest_port=0,
        control_port=0,
        accounts=[account],
        rate_limits=RateLimits(weight_per_window=10**9, orders_per_10s=10**9, orders_per_day=10**9),
    )
    venue = ReplayServer(config)
    venue.load_market(islice(read_many([recording]), records))
    return venue


class ReplayServer:
    def __init__(self, config: ReplayServerConfig) -> None:
        self.config = config
        for path in config.recordings:
            if not Path(path).exists():
                raise FileNotFoundError(f"recording not found: {path}")
        symbols = config.symbols or scan_symbols(config.recordings)
        if not symbols:
            raise ValueError("no Binance streams found in the recording")
        self.symbols = symbols
        self.kind = config.market or detect_market_kind(config.recordings)
        limits = config.rate_limits
        self.exchange_info = ExchangeInfo(
            symbols,
            config.exchange_info_path,
            kind=self.kind,
            rate_limits=[
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    **(
                        {"interval": "MINUTE", "intervalNum": 1}
                        if limits.weight_window_s == 60
                        else {"interval": "SECOND", "intervalNum": int(limits.weight_window_s)}
                    ),
                    "limit": limits.weight_per_window,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "SECOND",
                    "intervalNum": 10,
                    "limit": limits.orders_per_10s,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "DAY",
                    "intervalNum": 1,
                    "limit": limits.orders_per_day,
                },
            ],
        )
        self.matching: MatchingEngine
        if self.kind.is_futures:
            self.matching = FuturesMatchingEngine(
                self.exchange_info.rules,
                inverse=self.kind is MarketKind.COINM,
                clock_ms=lambda: time.time_ns() // 1_000_000,
                maker_fee=config.futures_maker_fee,
                taker_fee=config.futures_taker_fee,
            )
        else:
            self.matching = MatchingEngine(
                self.exchange_info.rules,
                clock_ms=lambda: time.time_ns() // 1_000_000,
                maker_fee=config.maker_fee,
                taker_fee=config.taker_fee,
            )
        self.initial_balances: dict[str, dict[str, Decimal]] = {}
        for account in config.accounts:
            self.matching.add_account(account.api_key, dict(account.balances))
            self.initial_balances[account.api_key] = dict(account.balances)
        from replay.market import ReplayMarket

        self.market = ReplayMarket(symbols, self.matching)
        self.mid_tape = MidTape(symbols, self._mid)
        self.feed = FeedServer(
            host=config.host,
            port=config.ws_port,
            max_queue=config.client_queue,
            ping_interval_s=config.ping_interval_s,
            ping_timeout_s=config.ping_timeout_s,
            max_stall_s=config.max_stall_s,
            limits=config.feed_limits,
        )
        self.derived = DerivedStreams()
        self.conflator = DepthConflator()
        """Futures: the diff-depth rates the recording lacks, from the one it holds."""
        self.futures = (
            FuturesStreams(MarkPriceModel(config.mark_price)) if self.kind.is_futures else None
        )
        self._time_keys = FUTURES_TIME_KEYS_BY_KIND if self.kind.is_futures else TIME_KEYS_BY_KIND
        self._event_ms = 0
        self._funding_seen_ms: dict[str, int] = {}
        """The latest recorded event time of a quote or trade (futures: the mark's clock)."""
        self.pacing = PacingStats()
        self._seek_to: int | None = None
        secrets_by_key = {a.api_key: a.api_secret for a in config.accounts}
        self.limiter = RateLimiter(limits)
        self.venue_faults = VenueFaultBook(seed=config.fault_seed)
        self.hub = (
            FuturesUserDataHub(self.matching)
            if isinstance(self.matching, FuturesMatchingEngine)
            else UserDataHub(self.matching)
        )
        api_class = FuturesApi if self.kind.is_futures else SimulatorApi
        self.api = api_class(
            matching=self.matching,
            exchange_info=self.exchange_info,
            market=self.market,
            secrets_by_key=secrets_by_key,
            hub=self.hub,
            limiter=self.limiter,
            faults=self.venue_faults,
            kind=self.kind,
            mark_of=self.mark_now if self.futures is not None else None,
        )
        self.private = PrivateStreams(
            matching=self.matching,
            hub=self.hub,
            limiter=self.limiter,
            secrets_by_key=secrets_by_key,
            max_messages_per_s=config.feed_limits.max_messages_per_s,
        )
        self.feed.private = self.private
        self._user_stream_dropped = False
        self.pacer = Pacer(config.speed)
        self.lane = (
            FastLane(
                rebase=config.rebase,
                feed=self.feed,
                market=self.market,
                derived=self.derived,
                matching=self.matching,
            )
            if FAST_LANE_BUILT and config.fast_lane and not self.kind.is_futures
            else None  # the compiled lane knows spot's payloads and continuity rule only
        )
        if config.start_paused:
            self.pacer.paused = True
        self._resumed = asyncio.Event()
        if not config.start_paused:
            self._resumed.set()
        self.state = "starting"
        self.listening = False
        self.records = 0
        self.messages = 0
        self.malformed = 0
        self.disconnects = 0
        self._time_map: EventTimeMap | None = None
        self._seeking = False
        self._seek_pending = asyncio.Event()
        self._last_mapped_ms = 0
        self._runners: list[web.AppRunner] = []
        self._rest_server: http11.HttpServer | None = None
        self.rest_port = config.rest_port
        self.control_port = config.control_port
        self._burst_until_ns = 0
        self._burst_base: float | None = None
        self._burst_multiplier = 1.0

    # --- control ------------------------------------------------------------------------------

    def pause(self) -> None:
        self.pacer.pause(time.monotonic_ns())
        self._resumed.clear()
        self.state = "paused" if self.state == "running" else self.state

    def resume(self) -> None:
        self.pacer.resume(time.monotonic_ns())
        self._time_map = None
        self._resumed.set()
        if self.state == "paused":
            self.state = "running"

    def set_speed(self, speed: float | None) -> None:
        self.pacer.set_speed(speed, time.monotonic_ns())
        self._time_map = None  # re-anchor event times at the next message

    def burst(self, multiplier: float, duration_ms: int) -> dict[str, Any]:
        """A synthetic market burst: the replay runs `multiplier` times faster for `duration_ms`,
        then returns to the speed it had before (a flash crash or a market open compresses
        minutes of messages into seconds). A burst during a burst replaces it; it is always
        relative to the speed before the first one, never compounded."""
        if not 1 < multiplier <= 1000:
            raise ValueError("multiplier must be > 1 and <= 1000")
        if not 0 < duration_ms <= 600_000:
            raise ValueError("duration_ms must be > 0 and <= 600000")
        base = self._burst_base if self._burst_until_ns else self.pacer.speed
        if base is None:
            raise ValueError("the replay runs at max speed: there is nothing to multiply")
        self._burst_base = base
        self._burst_multiplier = multiplier
        self._burst_until_ns = time.monotonic_ns() + duration_ms * 1_000_000
        self.set_speed(base * multiplier)
        status = self.burst_status()
        assert status is not None
        return status

    def burst_status(self) -> dict[str, Any] | None:
        if not self._burst_until_ns:
            return None
        return {
            "multiplier": self._burst_multiplier,
            "base_speed": self._burst_base,
            "ends_in_ms": max(0, (self._burst_until_ns - time.monotonic_ns()) // 1_000_000),
        }

    def _end_burst_if_due(self) -> None:
        if self._burst_until_ns and time.monotonic_ns() >= self._burst_until_ns:
            self._burst_until_ns = 0
            self.set_speed(self._burst_base)

    def seek(self, recv_ns: int) -> None:
        """Move the replay to a receive time (forwards or backwards). The market is rebuilt up to
        that point without serving anything, so books stay consistent; clients see an update-id
        jump and resynchronise, as after a real outage."""
        self._seek_to = recv_ns
        self._seeking = False  # a seek during a seek: its direction is judged again
        self._time_map = None
        if self.state == "finished":
            self.state = "running"
            self._seek_pending.set()

    async def find_drop(self, *, symbol: str, min_drop_pct: float, within_s: float) -> Drop | None:
        """The first fall of `min_drop_pct` within `within_s` in the recordings (a scan of the
        files on a worker thread: the replay and its clients go on meanwhile)."""
        recordings = list(self.config.recordings)

        def scan() -> Drop | None:
            prices = trade_prices(read_many(recordings), symbol)
            return find_drop(prices, min_drop_pct=min_drop_pct, within_ns=int(within_s * 1e9))

        return await asyncio.to_thread(scan)

    def add_venue_fault(self, **request: Any) -> VenueFault:
        fault = self.venue_faults.add(now_ns=time.time_ns(), **request)
        self.apply_venue_state()
        return fault

    def apply_venue_state(self) -> None:
        """Faults that change the venue's state rather than single requests."""
        now = time.time_ns()
        partial = self.venue_faults.active_of("partial_fills", now)
        self.matching.fill_cap = Decimal(str(partial.params["fraction"])) if partial else None
        self.matching.fill_cap_fault = partial
        delay = self.venue_faults.active_of("user_stream_delay", now)
        self.hub.delay_ms = float(delay.params["delay_ms"]) if delay else 0.0
        drop = self.venue_faults.active_of("user_stream_drop", now)
        self.hub.paused = drop is not None
        if drop is not None and not self._user_stream_dropped:
            drop.applied += self.private.drop_all()
        self._user_stream_dropped = drop is not None

    async def housekeeping(self) -> None:
        """Time-driven venue state: delayed user events, fault expiry (also while paused)."""
        while True:
            await asyncio.sleep(0.02)
            self.mid_tape.sample(time.time_ns() // 1_000_000)
            self.hub.release_delayed()
            self.apply_venue_state()
            self._end_burst_if_due()
            self.feed.tick()

    def _mid(self, symbol: str) -> float | None:
        book = self.market.book(symbol)
        return None if book is None else book.mid()

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "speed": "max" if self.pacer.speed is None else self.pacer.speed,
            "burst": self.burst_status(),
            "paused": self.pacer.paused,
            "position_recv_ns": self.pacer.position_recv_ns,
            "seeking": self._seek_to is not None,
            "records": self.records,
            "messages": self.messages,
            "malformed": self.malformed,
            "recorded_disconnects": self.disconnects,
            "clients": len(self.feed.clients),
            "client_list": [c.describe() for c in self.feed.clients.values()],
            "pacing_error": self.pacing.percentiles(),
            "active_faults": len(self.feed.faults.active(time.time_ns())),
            "slow_disconnects": self.feed.slow_disconnects,
            "limits": {
                "ws_rate_disconnects": self.feed.rate_disconnects,
                "ws_refused_connections": self.feed.refused_connections,
                "ws_api_ban_disconnects": self.private.ban_disconnects,
                "rest_connections": (
                    len(self._rest_server.connections) if self._rest_server is not None else 0
                ),
                "rest_expired": (
                    dict(self._rest_server.expired) if self._rest_server is not None else {}
                ),
            },
            "books": {
                s: {"synced": sync.synced, "update_id": sync.book.update_id}
                for s, sync in self.market.syncs.items()
            },
            "orders": len(self.matching.orders),
            "user_stream_subscribers": len(self.hub.subscriber_ids()),
            "rest_requests": self.api.requests,
            "rate_limits": self.api.limiter.stats(),
            "fills": len(self.matching.fills),
            "symbols": self.symbols,
            "market": self.kind.value,
            "derived_streams": (
                {"mark_price_pushes": self.futures.pushed, "config": self._mark_config()}
                if self.futures is not None
                else None
            ),
            "exchange_info_source": self.exchange_info.source,
            "fast_lane": {
                "compiled": FAST_LANE_BUILT,
                "enabled": self.lane is not None,
                "records": self.lane.records if self.lane is not None else 0,
            },
        }

    # --- run ----------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.feed.start()
        self._rest_server = await http11.serve(
            self.api.handle, self.config.host, self.config.rest_port, self.config.rest_limits
        )
        self.rest_port = self._rest_server.port
        control = build_control_app(self, self.config.control_token, self.config.control_limits)
        runner, self.control_port = await serve_bounded(
            control,
            host=self.config.host,
            port=self.config.control_port,
            limits=self.config.control_limits,
        )
        self._runners.append(runner)
        self.listening = True
        self.state = "paused" if self.pacer.paused else "running"
        log.info(
            "replay_listening",
            ws_port=self.feed.port,
            rest_port=self.rest_port,
            control_port=self.control_port,
            symbols=self.symbols,
            speed=self.config.speed or "max",
            fast_lane=self.lane is not None,
        )
        if not FAST_LANE_BUILT:
            log.warning(
                "replay_fast_lane_missing",
                detail="replay.lane._speedups is not built (pip install -e . builds it): "
                "max speed runs on the Python path only",
            )

    async def stop(self) -> None:
        await self.feed.stop()
        if self._rest_server is not None:
            await self._rest_server.close()
            self._rest_server = None
        for runner in self._runners:
            await runner.cleanup()
        self.listening = False

    async def replay(self) -> None:
        while True:
            restart = await self._replay_pass()
            if restart:
                self._market_cut()  # rebuilt from the start, silently, up to the target
                continue
            if self._seek_to is not None:
                # a seek past the last record: the market stands at the end of the recording
                # and the replay is finished, as if it had played to the end (not seeking)
                log.warning(
                    "replay_seek_past_end",
                    seek_to_ns=self._seek_to,
                    last_record_ns=self.pacer.position_recv_ns,
                )
                self._seek_to = None
                self._seeking = False
            self.state = "finished"
            log.info("replay_finished", records=self.records, messages=self.messages)
            # a seek after the end starts another pass
            await self._seek_pending.wait()
            self._seek_pending.clear()

    async def _replay_pass(self) -> bool:
        """One pass over the recordings; returns True when a backwards seek needs a new pass."""
        since_yield = 0
        for path in self.config.recordings:
            cursor = RecordCursor(path)
            while cursor.fill():
                if self._fast_lane_open():
                    paced_now = None if self.pacer.is_max else time.monotonic_ns()
                    done, crowded = self._run_lane(cursor, 256 - since_yield, now_ns=paced_now)
                    if crowded:
                        self.feed.update_room()
                    if done:
                        since_yield += done
                        if since_yield >= 256:  # let REST, control and clients run
                            since_yield = 0
                            await asyncio.sleep(0)
                        continue
                record = cursor.next()
                if record is None:
                    break
                if self._seek_to is not None:
                    if not self._seeking and self._seek_to < self.pacer.position_recv_ns:
                        self._seeking = True
                        return True  # backwards: start over from the first record
                    if not self._seeking:
                        self.conflator.reset()  # what the windows held is skipped
                    self._seeking = True
                    if record.recv_ns < self._seek_to:
                        self._apply_market(record)
                        self.pacer.position_recv_ns = record.recv_ns  # where the market is now
                        since_yield += 1
                        if since_yield >= 2048:  # a long seek must not stall control and clients
                            since_yield = 0
                            await asyncio.sleep(0)
                        continue
                    self._seek_to = None
                    self._seeking = False
                    self.pacer.restart(record.recv_ns)
                    log.info("replay_seeked", position_recv_ns=record.recv_ns)
                if not self._resumed.is_set():
                    await self._resumed.wait()
                if self.pacer.is_max:
                    self.pacer.position_recv_ns = record.recv_ns
                    if not self.feed.has_room:
                        await self.feed.wait_for_room()
                    since_yield += 1
                    if since_yield >= 256:  # let REST, control and clients run at max speed
                        since_yield = 0
                        await asyncio.sleep(0)
                else:
                    now = time.monotonic_ns()
                    due = self.pacer.due_ns(record.recv_ns, now)
                    if due > now:
                        await self._sleep_until(due)
                    self.pacing.record(time.monotonic_ns() - due)
                self._process(record)
                if self.feed.faults.faults:  # held messages exist only while faults do
                    self.feed.tick()
        return False

    def _run_lane(
        self, cursor: RecordCursor, budget: int, *, now_ns: int | None
    ) -> tuple[int, bool]:
        """Up to `budget` records through the compiled lane; when paced (`now_ns` given), only
        those due by `now_ns`, each one's pacing error recorded. Returns (records done, a
        client's queue reached half its limit)."""
        assert self.lane is not None
        time_map = self._time_map
        mapping = None
        last_ms = 0
        if time_map is not None:
            last_ms = time_map.last_ms
            mapping = (time_map.anchor_event_ms, time_map.anchor_wall_ms, time_map.speed or 0.0)
        pacing = None
        if now_ns is not None:
            schedule = self.pacer.schedule()
            if schedule is None:
                return 0, False  # the next record anchors the schedule: the Python path's
            pacing = (*schedule, now_ns)
        run = self.lane.run(cursor, budget, time_map=mapping, last_ms=last_ms, pacing=pacing)
        if run.records:
            self.records += run.records
            self.messages += run.records
            if run.recvs is None:
                self.pacer.position_recv_ns = run.last_recv_ns  # as the max-speed path sets it
            else:
                sent = time.monotonic_ns()  # after the whole run: never flatters the error
                for recv_ns in run.recvs:
                    self.pacing.record(sent - self.pacer.due_ns(recv_ns, sent))
            if time_map is not None and run.last_ms > time_map.last_ms:
                time_map.last_ms = run.last_ms
                self._last_mapped_ms = run.last_ms
        if run.error is not None:
            raise run.error  # after the records done before it are accounted for
        return run.records, run.crowded

    def _fast_lane_open(self) -> bool:
        """The compiled lane takes records only in the state it mirrors: resumed, not seeking,
        no feed fault, room in every client's queue (when paced, it takes those already due)."""
        return (
            self.lane is not None
            and self._seek_to is None
            and self._resumed.is_set()
            and not self.feed.faults.faults
            and self.feed.has_room
        )

    @staticmethod
    async def _sleep_until(due_ns: int) -> None:
        """asyncio timers wake up to a millisecond late: sleep to just before the due time, then
        yield to the loop until it comes (other tasks still run while we spin)."""
        remaining = due_ns - time.monotonic_ns()
        if remaining > 1_500_000:
            await asyncio.sleep((remaining - 1_000_000) / 1e9)
        while time.monotonic_ns() < due_ns:  # noqa: ASYNC110 - a spin that yields, by design
            await asyncio.sleep(0)

    def _market_cut(self) -> None:
        """The recorded connection ended (or the replay starts over): books and conflated
        windows start again from what comes next."""
        self.market.on_disconnect()
        self.conflator.reset()

    def _apply_market(self, record: Record) -> None:
        """Update books from a record without serving it (seeking)."""
        if record.is_disconnect:
            self._market_cut()
            return
        try:
            item = classify(record.payload)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            return
        self._update_books(item)

    def _update_books(self, item: Classified) -> None:
        if item.kind == "snapshot":
            assert isinstance(item.event, DepthSnapshot)
            self.market.on_snapshot(item.event)
        elif item.kind == "depth":
            assert isinstance(item.event, DepthDiff)
            self.market.on_diff(item.symbol, item.event)

    def load_market(self, records: Iterable[Record]) -> None:
        """Apply records to the replayed market and the venue without pacing or serving them:
        a venue standing on a recording, for tools and benchmarks that call its API directly."""
        for record in records:
            self._process(record)

    def _process(self, record: Record) -> None:
        self.records += 1
        if record.is_disconnect:
            self.disconnects += 1
            self._market_cut()
            return
        try:
            item = classify(record.payload, lazy_quotes=True)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            self.malformed += 1
            return
        kind, event = item.kind, item.event
        if kind == "depth" or kind == "snapshot":
            self._update_books(item)
            if kind == "snapshot":
                return
        elif kind == "bookTicker":
            self.derived.on_quote(item.symbol, item.data)
            if self.futures is not None and not self._futures_quote(item):
                return
        trade = event if kind == "trade" and isinstance(event, TradeEvent) else None
        if trade is not None and not _has_numbers(trade):
            self.malformed += 1
            return
        if trade is not None:
            self.market.on_trade(trade)
        if self.feed.wanted(item.stream):
            self._emit(item.stream, item.data, record.payload, self._time_keys.get(kind))
        else:
            self.messages += 1  # nobody listens: served to no one, and nothing to rebase
        if trade is not None:
            for stream, data in self.derived.on_trade(trade, self.feed.wanted):
                self._emit(stream, data, None, None)
            if self.futures is not None:
                self._event_ms = max(self._event_ms, trade.E)
                for stream, data in self.futures.on_trade(trade, self.feed.wanted):
                    self._emit(stream, data, None, TIME_KEYS_BY_KIND["trade"])
        if self.futures is not None and kind in ("bookTicker", "trade"):
            self._emit_marks(item.symbol)
            self._mark_to_venue(item.symbol)
        if self.futures is not None and kind == "depth":
            assert isinstance(event, DepthDiff)
            data = item.data
            for stream, conflated in self.conflator.on_diff(
                item.symbol,
                item.stream,
                event,
                details=lambda: _diff_details(data),
                wanted=self.feed.wanted,
            ):
                self._emit(stream, conflated, None, self._time_keys.get("depth"))

    # --- futures ------------------------------------------------------------------------------

    def _futures_quote(self, item: Classified) -> bool:
        """Feed a futures bookTicker to the mark price; False (counted malformed) when its
        prices or time do not read."""
        try:
            quote, event_ms = decode_quote_with_time(item.data)
            self.futures.on_quote(item.symbol, float(quote.b), float(quote.a))  # type: ignore[union-attr]
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            self.malformed += 1
            return False
        self._event_ms = max(self._event_ms, event_ms)
        return True

    def _mark_to_venue(self, symbol: str) -> None:
        """The simulated venue follows the mark: funding at each funding time the replay's
        event time passed, liquidation of positions under maintenance (with `forceOrder` on
        the feed, as the exchange publishes its liquidations)."""
        engine = self.matching
        if not isinstance(engine, FuturesMatchingEngine) or not engine.ledger.accounts:
            return
        assert self.futures is not None
        model, event_ms = self.futures.model, self._event_ms
        seen = self._funding_seen_ms.get(symbol)
        self._funding_seen_ms[symbol] = event_ms
        if seen is not None:
            for funding_ms in model.funding_times(seen, event_ms):
                at = model.mark(symbol, funding_ms)
                if at is not None:
                    engine.apply_funding(
                        symbol, rate=Decimal(repr(at.funding_rate)), mark=Decimal(repr(at.mark))
                    )
        mark = model.mark(symbol, event_ms)
        if mark is None:
            return
        for liquidation in engine.on_mark(symbol, Decimal(repr(mark.mark))):
            stream = f"{symbol.lower()}@forceOrder"
            if self.feed.wanted(stream):
                now = time.time_ns() // 1_000_000
                qty = fmt(abs(liquidation.qty))
                price = fmt(liquidation.price)
                payload = force_order_event(
                    symbol=symbol,
                    side="SELL" if liquidation.qty > 0 else "BUY",
                    qty=qty,
                    price=price,
                    avg_price=price,
                    event_ms=now,
                    trade_ms=now,
                )
                self.messages += 1
                self.feed.broadcast(stream, payload, None)

    def _emit_marks(self, symbol: str) -> None:
        assert self.futures is not None
        for stream, mark in self.futures.due(symbol, self._event_ms, self.feed.wanted):
            self.messages += 1
            self.feed.broadcast(stream, mark_price_event(self._served(mark)), None)

    def _served(self, mark: MarkPrice) -> MarkPrice:
        """A mark's times on the replay's clock (rebased as every served message is); its next
        funding time is mapped without moving the clock, being in the future."""
        if not self.config.rebase:
            return mark
        if self._time_map is None:
            self._time_map = EventTimeMap(
                anchor_event_ms=mark.event_ms,
                anchor_wall_ms=max(time.time_ns() // 1_000_000, self._last_mapped_ms),
                speed=self.pacer.speed,
            )
        time_map = self._time_map
        served = replace(
            mark,
            event_ms=time_map(mark.event_ms),
            next_funding_ms=time_map.peek(mark.next_funding_ms),
        )
        self._last_mapped_ms = time_map.last_ms
        return served

    def mark_now(self, symbol: str) -> MarkPrice | None:
        """A symbol's mark price at the latest replayed event, in served time (premiumIndex)."""
        if self.futures is None or self._event_ms == 0:
            return None
        mark = self.futures.model.mark(symbol, self._event_ms)
        if mark is None or not self.config.rebase or self._time_map is None:
            return mark
        time_map = self._time_map
        return replace(
            mark,
            event_ms=time_map.peek(mark.event_ms),
            next_funding_ms=time_map.peek(mark.next_funding_ms),
        )

    def set_mark_price(self, **changes: Any) -> dict[str, Any]:
        """Move the derived market's levers (premium, funding_rate, mark_shift ...): a game
        day's funding spike or mark/last divergence. Raises ValueError for an unknown lever."""
        if self.futures is None:
            raise ValueError("this replay is spot: it has no mark price")
        known = set(MarkPriceConfig.__dataclass_fields__)
        unknown = set(changes) - known
        if unknown:
            raise ValueError(
                f"unknown mark price setting(s): {sorted(unknown)}; known: {sorted(known)}"
            )
        self.futures.model.reconfigure(replace(self.futures.model.config, **changes))
        log.info("mark_price_reconfigured", **changes)
        return self._mark_config()

    def _mark_config(self) -> dict[str, Any]:
        assert self.futures is not None
        config = self.futures.model.config
        return {name: getattr(config, name) for name in MarkPriceConfig.__dataclass_fields__}

    def _emit(
        self, stream: str, data: bytes, wrapped: bytes | None, time_keys: tuple[bytes, ...] | None
    ) -> None:
        if self.config.rebase and time_keys != ():
            if self._time_map is None:
                first = first_event_ms(data)
                if first is not None:
                    wall = max(time.time_ns() // 1_000_000, self._last_mapped_ms)
                    self._time_map = EventTimeMap(
                        anchor_event_ms=first, anchor_wall_ms=wall, speed=self.pacer.speed
                    )
            if self._time_map is not None:
                data = rebase(data, self._time_map, time_keys or TIME_KEYS_BY_KIND["ticker"])
                wrapped = None
                self._last_mapped_ms = self._time_map.last_ms
        self.messages += 1
        self.feed.broadcast(stream, data, wrapped)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """The server process's life (`replay serve`)."""
        await self.start()
        log.info("heap_settled", **settle_heap())  # no full-collection stall in the pacing
        replay = asyncio.create_task(self.replay(), name="replay-loop")
        chores = asyncio.create_task(self.housekeeping(), name="housekeeping")
        stopper = asyncio.create_task(stop.wait(), name="stop")
        try:
            await asyncio.wait([stopper, replay, chores], return_when=asyncio.FIRST_COMPLETED)
            if replay.done() and not replay.cancelled() and replay.exception() is not None:
                raise replay.exception()  # type: ignore[misc]
            if not stopper.done():
                await stopper  # recording finished: keep serving until told to stop
        finally:
            for task in (replay, chores, stopper):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(replay, chores, stopper, return_exceptions=True)
            await self.stop()
