"""Everything of the execution service that exists only once the venue answers, built as one.

    connect_venue(...) ─► ccxt client (its responses feed the rate limiter)
                        ─► VenueGateway ─► load_markets: the symbols' instruments
                        ─► OrderDesk ◄─► ParentOrders, UserStream (when configured)

A standby connects at start, like a leader: "hot" means the venue is reachable and its markets
are loaded before the lease is won. Until `connect_venue` returns the service holds no
`VenueSession` at all (one Optional, not one per part), and a connection that fails half way
closes the client it opened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.bus.base import Bus
from engine.config import ExecutionConfig, Secrets, VenueConfig
from engine.core.algos import Instrument, MarketView
from engine.core.clock import Clock
from engine.core.errors import StormproofError
from engine.core.orders import OrderRecord
from engine.core.pushhealth import PushHealth
from engine.execution.desk import OrderDesk
from engine.execution.gateway import VenueGateway
from engine.execution.journal import Journal
from engine.execution.parents import ParentOrders
from engine.execution.user_stream import UserStream
from engine.execution.venue import make_binance
from engine.execution.venue_pacer import VenueRateLimiter
from engine.runtime.metrics import EngineMetrics


@dataclass(frozen=True, kw_only=True)
class VenueSession:
    """The venue-bound parts of one execution instance, for the life of its process."""

    exchange: Any
    """The ccxt client (closed by `close`)."""
    gateway: VenueGateway
    desk: OrderDesk
    parents: ParentOrders
    user_stream: UserStream | None
    """None when the push channel is off (`execution.user_stream = false`): REST polling only."""
    instruments: dict[str, Instrument]
    """Venue symbol -> tick, lot and minimums, from the venue's markets."""

    async def close(self) -> None:
        await self.exchange.close()


def _instrument(market: dict[str, Any]) -> Instrument:
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}

    def dec(value: Any, default: str) -> Decimal:
        return Decimal(str(value)) if value not in (None, 0, "") else Decimal(default)

    return Instrument(
        tick_size=dec(precision.get("price"), "0.00000001"),
        lot_size=dec(precision.get("amount"), "0.00000001"),
        min_qty=dec((limits.get("amount") or {}).get("min"), "0"),
        min_notional=dec((limits.get("cost") or {}).get("min"), "0"),
    )


async def connect_venue(
    *,
    venue_config: VenueConfig,
    exec_config: ExecutionConfig,
    secrets: Secrets,
    journal: Journal,
    limiter: VenueRateLimiter,
    push: PushHealth,
    bus: Bus,
    clock: Clock,
    metrics: EngineMetrics,
    stopping: asyncio.Event,
    market: Callable[[str], MarketView | None],
    may_send: Callable[[], bool],
    may_resend: Callable[[OrderRecord], bool],
) -> VenueSession:
    """Connect to the venue, load its markets and build the parts that use it.

    `market` gives the touch for the algos, `may_send` says whether this instance may send now
    (its leadership), `may_resend` whether an order that never reached the venue may be sent
    again (halts, reductions): the service's answers, asked at each use."""
    venue = venue_config.name
    symbols = [s.upper() for s in venue_config.symbols]
    exchange = make_binance(venue_config, secrets, on_response=limiter.observe)
    try:
        gateway = VenueGateway(
            exchange=exchange,
            limiter=limiter,
            config=exec_config,
            metrics=metrics,
            venue=venue,
            stopping=stopping,
        )
        await gateway.call("load_markets", side_effect=False)
        unified: dict[str, str] = {}
        instruments: dict[str, Instrument] = {}
        for symbol in symbols:
            listed = exchange.markets_by_id.get(symbol)
            if not listed:
                raise StormproofError(f"venue does not list symbol {symbol}")
            unified[symbol] = listed[0]["symbol"]
            instruments[symbol] = _instrument(listed[0])
            if venue_config.market != "spot" and venue_config.leverage:
                # idempotent at the venue: a retry or a second instance sets the same value
                await gateway.call(
                    "set_leverage", venue_config.leverage, unified[symbol], side_effect=False
                )
    except BaseException:
        await exchange.close()
        raise
    parents: ParentOrders | None = None
    desk = OrderDesk(
        journal=journal,
        gateway=gateway,
        bus=bus,
        clock=clock,
        metrics=metrics,
        venue=venue,
        unified=unified,
        push=push,
        may_send=may_send,
        is_algo_parent=lambda intent_id: parents is not None and parents.is_parent(intent_id),
        unknown_grace_ns=2 * venue_config.request_timeout_ms * 1_000_000,
        may_resend=may_resend,
        futures=venue_config.market != "spot",
    )
    parents = ParentOrders(
        journal=journal,
        desk=desk,
        bus=bus,
        clock=clock,
        venue=venue,
        instruments=instruments,
        market=market,
        workers=exec_config.max_orders_in_flight,
    )
    desk.on_change = parents.on_order_changed
    user_stream = None
    if exec_config.user_stream:
        user_stream = UserStream(
            venue=venue_config,
            secrets=secrets,
            desk=desk,
            push=push,
            clock=clock,
            markets={s: exchange.markets[u] for s, u in unified.items()},
        )
    return VenueSession(
        exchange=exchange,
        gateway=gateway,
        desk=desk,
        parents=parents,
        user_stream=user_stream,
        instruments=instruments,
    )
