"""The execution gateway service: approved order requests in, venue orders out.

    orders.{venue} ─► direct intent ─────────────► OrderDesk.place (write-ahead journal, send)
                   └► algo intent ─► ParentOrders ─┘      ▲ push: UserStream (ccxt.pro)
    control        ─► halt / resume (a drift halt)         ▲ poll: REST, fast while push is stale
    md.{venue}.*   ─► touch prices for the algos

Leadership: with a lease backend, instances campaign (LeaderElector); the one elected claims
the journal with its fencing epoch, recovers (engine.execution.recovery) and only then consumes
requests. A standby is "hot": journal open, venue connected, markets loaded, ready to recover.
A deposed leader stops at once: the journal refuses its writes (FencingError), the desk refuses
to send once the local lease term has ended, and the process exits so that its supervisor
restarts it as a standby. Without a lease (backend "none") the single instance is leader with
epoch 0 from the start, and /startupz turns green only after recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

from engine.bus.base import CONTROL, Delivery, md_stream, orders_stream, replay_stream
from engine.bus.consumer import RetryLater, StreamConsumer
from engine.core.algos import Instrument, MarketView
from engine.core.errors import FencingError, JournalUnavailableError, StormproofError
from engine.core.ids import client_order_id
from engine.core.messages import Control, Intent, IntentDone, OrderRequest, Quote
from engine.core.orders import OrderRecord
from engine.core.positions import order_reduces
from engine.core.pushhealth import PushHealth
from engine.execution.desk import OrderDesk
from engine.execution.gateway import VenueGateway
from engine.execution.journal import make_journal
from engine.execution.lease import LeaderElector, lease_backend
from engine.execution.parents import ParentOrders
from engine.execution.ratelimit import VenueRateLimiter, from_config, prometheus_callback
from engine.execution.recovery import RecoveryReport, recover
from engine.execution.user_stream import UserStream
from engine.execution.venue import make_binance
from engine.runtime.service import Readiness, Service, ServiceContext
from plumbing.logging import bound_contextvars


class LeadershipLost(StormproofError):
    """This instance was the leader and is not any more: exit, come back as a standby."""


def _order_lane(delivery: Delivery) -> str:
    """Requests about the same intent keep their order (a cancel never overtakes its order)."""
    message = delivery.message
    if isinstance(message, OrderRequest):
        intent = message.intent
        return intent.cancel_intent_id if intent.action == "cancel" else intent.intent_id
    return delivery.entry_id


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


class ExecutionService(Service):
    name = "execution"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        config = self.config
        self.venue = config.venue.name
        self.symbols = [s.upper() for s in config.venue.symbols]
        self.exec_config = config.execution
        self.journal = make_journal(self.exec_config, ctx.settings.secrets)
        self.limiter = VenueRateLimiter(
            from_config(config.venue, self.exec_config),
            self.clock,
            metrics_callback=prometheus_callback(self.metrics, self.venue),
            stop=self.stopping,
        )
        self.exchange: Any = None
        self.gateway: VenueGateway | None = None
        self.push = PushHealth(stale_after_ns=self.exec_config.user_stream_stale_ms * 1_000_000)
        self.unified: dict[str, str] = {}
        self.instruments: dict[str, Instrument] = {}
        self.touch: dict[str, MarketView] = {}
        self.desk: OrderDesk | None = None
        self.parents: ParentOrders | None = None
        self.user_stream: UserStream | None = None
        self.recovery: RecoveryReport | None = None
        self.halted = ""
        """Why this instance refuses new entries (a drift halt, an ops halt); "" when not."""
        self.reducing = ""
        """Why only reductions may be resent now (a pause, a flatten); "" when not."""
        self.leader_epoch: int | None = None
        self.recovered = False
        self.open_orders: list[OrderRecord] = []
        """Refreshed by the poller, for /status (which must not wait on the journal)."""
        self._deposed = asyncio.Event()
        self._elected: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        backend = lease_backend(
            config.lease,
            default_redis_url=config.bus.redis_url,
            username=ctx.settings.secrets.redis_username,
            password=ctx.settings.secrets.redis_password.reveal(),
        )
        self.elector: LeaderElector | None = None
        if backend is not None:
            self.elector = LeaderElector(
                backend,
                holder=f"execution-{ctx.instance}",
                ttl_ms=config.lease.ttl_ms,
                renew_interval_ms=config.lease.renew_interval_ms,
                clock=self.clock,
                on_elected=self._on_elected,
                on_deposed=self._on_deposed,
            )
        bus_cfg = config.bus
        common: dict[str, Any] = dict(
            consumer=f"execution-{ctx.instance}",
            count=bus_cfg.read_count,
            block_ms=bus_cfg.read_block_ms,
            claim_min_idle_ms=bus_cfg.claim_min_idle_ms,
            # the leader is the group's only consumer: what others left pending is its own
            first_claim_min_idle_ms=0,
        )
        self.orders_consumer = StreamConsumer(
            self.bus,
            group="execution",
            streams=[orders_stream(self.venue)],
            handler=self._on_request,
            start="earliest",
            concurrency=self.exec_config.max_orders_in_flight,
            key=_order_lane,
            **common,
        )
        self.control_consumer = StreamConsumer(
            self.bus,
            group="execution",
            streams=[CONTROL],
            handler=self._on_control,
            start="latest",
            **common,
        )
        self.md_consumer = StreamConsumer(
            self.bus,
            group="execution",
            streams=[md_stream(self.venue, s) for s in self.symbols],
            handler=self._on_market_data,
            start="latest",
            **common,
        )
        self.stoppables = [self.orders_consumer, self.control_consumer, self.md_consumer]
        self._unknown_grace_ns = 2 * config.venue.request_timeout_ms * 1_000_000

    # --- lifecycle ----------------------------------------------------------------------------

    async def on_start(self) -> None:
        await self.bus.ping()
        await self.journal.open()
        self.exchange = make_binance(
            self.config.venue, self.ctx.settings.secrets, on_response=self.limiter.observe
        )
        self.gateway = VenueGateway(
            exchange=self.exchange,
            limiter=self.limiter,
            config=self.exec_config,
            metrics=self.metrics,
            venue=self.venue,
            stopping=self.stopping,
        )
        await self.gateway.call("load_markets", side_effect=False)
        for symbol in self.symbols:
            market = self.exchange.markets_by_id.get(symbol)
            if not market:
                raise StormproofError(f"venue does not list symbol {symbol}")
            self.unified[symbol] = market[0]["symbol"]
            self.instruments[symbol] = _instrument(market[0])
        self.desk = OrderDesk(
            journal=self.journal,
            gateway=self.gateway,
            bus=self.bus,
            clock=self.clock,
            metrics=self.metrics,
            venue=self.venue,
            unified=self.unified,
            push=self.push,
            may_send=self._may_send,
            is_algo_parent=lambda intent_id: (
                self.parents is not None and self.parents.is_parent(intent_id)
            ),
            unknown_grace_ns=self._unknown_grace_ns,
            may_resend=self._may_resend,
        )
        self.parents = ParentOrders(
            journal=self.journal,
            desk=self.desk,
            bus=self.bus,
            clock=self.clock,
            venue=self.venue,
            instruments=self.instruments,
            market=self.touch.get,
            workers=self.exec_config.max_orders_in_flight,
        )
        self.desk.on_change = self.parents.on_order_changed
        if self.exec_config.user_stream:
            self.user_stream = UserStream(
                venue=self.config.venue,
                secrets=self.ctx.settings.secrets,
                desk=self.desk,
                push=self.push,
                clock=self.clock,
                markets={s: self.exchange.markets[u] for s, u in self.unified.items()},
            )
        if self.elector is None:
            await self._lead(0)  # a single instance: /startupz after recovery
        else:
            self.log.info("execution_standby", lease=self.config.lease.backend)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            if self.elector is not None:
                tasks.create_task(self.elector.run(), name="execution-lease")
                epoch = await self._wait_for_election()
                if epoch is None:
                    self.elector.stop()
                    return
                await self._lead(epoch)
            tasks.create_task(self._leader_work(), name="execution-leader")

    async def _wait_for_election(self) -> int | None:
        elected = asyncio.create_task(self._elected.get(), name="execution-elected")
        stopping = asyncio.create_task(self.stopping.wait(), name="execution-stop-wait")
        try:
            done, _ = await asyncio.wait({elected, stopping}, return_when=asyncio.FIRST_COMPLETED)
            return elected.result() if elected in done else None
        finally:
            for task in (elected, stopping):
                task.cancel()
            await asyncio.gather(elected, stopping, return_exceptions=True)

    async def _lead(self, epoch: int) -> None:
        """Claim the journal with our epoch and recover; only then take requests."""
        assert self.desk is not None
        assert self.parents is not None
        assert self.gateway is not None
        await self.journal.claim(epoch)
        self.leader_epoch = epoch
        self.metrics.leader.set(1)
        self.metrics.leader_epoch.set(epoch)
        await self._restore_halt()
        self.recovery = await recover(
            journal=self.journal,
            desk=self.desk,
            parents=self.parents,
            gateway=self.gateway,
            bus=self.bus,
            clock=self.clock,
            metrics=self.metrics,
            venue=self.venue,
            symbols=self.symbols,
            instruments=self.instruments,
            drift_halt_percent=self.exec_config.drift_halt_percent,
            republish_window_ms=self.exec_config.republish_window_ms,
            adoption_lookback_ms=self.exec_config.adoption_lookback_ms,
            adoption_required=self.exec_config.journal_durability == "process",
        )
        self.recovered = True
        if self.recovery.halt_reason:
            self.halted = self.recovery.halt_reason
            self.log.error("execution_halted_on_recovery", reason=self.halted)
            await self.bus.publish(
                CONTROL,
                Control(
                    command="halt", reason=self.halted[:200], issued_ts_ns=self.clock.time_ns()
                ),
            )
        self.log.info(
            "execution_leading",
            epoch=epoch,
            duration_ms=self.recovery.duration_ms,
            adopted=self.recovery.orders_adopted,
            parents_restored=self.recovery.parents_restored,
            unexplained=len(self.recovery.unexplained),
            reconciled=self.recovery.orders_reconciled,
            fills_recovered=self.recovery.fills_recovered,
            parents=self.recovery.parents_resumed,
            drift=self.recovery.drift_percent,
            positions={p.symbol: str(p.qty) for p in self.desk.positions.all()},
        )

    async def _leader_work(self) -> None:
        assert self.parents is not None
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.md_consumer.run(), name="execution-md")
                tasks.create_task(self.control_consumer.run(), name="execution-control")
                tasks.create_task(self.orders_consumer.run(), name="execution-orders")
                tasks.create_task(self._fenced(self.parents.run()), name="execution-parents")
                tasks.create_task(self._fenced(self._poll()), name="execution-poller")
                tasks.create_task(self._watch_leadership(), name="execution-fence")
                if self.user_stream is not None:
                    tasks.create_task(
                        self._fenced(self.user_stream.run()), name="execution-user-stream"
                    )
        finally:
            self.metrics.leader.set(0)
        if self._deposed.is_set():
            raise LeadershipLost("leadership lost: exiting so as to restart as a standby")

    async def _fenced(self, work: Coroutine[Any, Any, None]) -> None:
        """A FencingError anywhere means a newer leader exists: depose, never crash."""
        try:
            await work
        except* FencingError as group:
            self.log.error("execution_fenced", error=str(group.exceptions[0]))
            self._deposed.set()

    async def _watch_leadership(self) -> None:
        """Stop every leader task when leadership ends (or the service stops)."""
        deposed = asyncio.create_task(self._deposed.wait(), name="execution-deposed")
        stopping = asyncio.create_task(self.stopping.wait(), name="execution-stopping")
        try:
            await asyncio.wait({deposed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (deposed, stopping):
                task.cancel()
            await asyncio.gather(deposed, stopping, return_exceptions=True)
        for consumer in self.stoppables:
            consumer.stop()
        if self.parents is not None:
            self.parents.stop()
        if self.user_stream is not None:
            self.user_stream.stop()
        if self.elector is not None and self.stopping.is_set():
            self.elector.stop()

    async def _on_elected(self, epoch: int) -> None:
        if self._elected.empty() and self.leader_epoch is None:
            self._elected.put_nowait(epoch)

    async def _on_deposed(self, epoch: int, reason: str) -> None:
        if self.leader_epoch is not None and epoch == self.leader_epoch:
            self.log.error("execution_deposed", epoch=epoch, reason=reason)
            self._deposed.set()

    def _may_send(self) -> bool:
        if self._deposed.is_set() or self.leader_epoch is None:
            return False
        return self.elector is None or self.elector.is_leader

    async def on_stop(self) -> None:
        if self.exchange is not None:
            await self.exchange.close()
        await self.journal.close()

    # --- requests -----------------------------------------------------------------------------

    async def _on_request(self, delivery: Delivery) -> None:
        request = delivery.message
        if not isinstance(request, OrderRequest):
            return
        intent = request.intent
        with bound_contextvars(correlation_id=intent.correlation_id, intent_id=intent.intent_id):
            try:
                if intent.action == "cancel":
                    await self._cancel_intent(intent)
                else:
                    await self._new_intent(intent)
            except FencingError as exc:
                self.log.error("execution_fenced", error=str(exc))
                self._deposed.set()
                raise RetryLater(str(exc)) from exc
            except JournalUnavailableError as exc:
                raise RetryLater(str(exc)) from exc

    async def _new_intent(self, intent: Intent) -> None:
        assert self.desk is not None
        assert self.parents is not None
        if self.halted and not intent.reduce_only:
            await self.bus.publish(
                f"exec.{self.venue}",
                IntentDone(
                    correlation_id=intent.correlation_id,
                    venue=intent.venue,
                    symbol=intent.symbol,
                    intent_id=intent.intent_id,
                    side=intent.side,
                    qty=intent.qty,
                    filled_qty=Decimal(0),
                    outcome="rejected",
                    reason=f"execution halted: {self.halted}"[:300],
                    children=0,
                    ts_ns=self.clock.time_ns(),
                ),
            )
            return
        position = self.desk.positions.get(self.venue, intent.symbol).qty
        if intent.algo:
            await self.parents.submit(intent, position_qty=position)
            # the parent's record is all a recovery would have of it until a child reaches the
            # venue: durable before the bus forgets the request (its children go out meanwhile)
            await self.journal.make_durable()
            return
        qty = min(intent.qty, abs(position)) if intent.reduce_only else intent.qty
        now = self.clock.time_ns()
        await self.desk.place(
            OrderRecord(
                client_order_id=client_order_id(intent.intent_id, 0),
                intent_id=intent.intent_id,
                child_index=0,
                venue=intent.venue,
                symbol=intent.symbol,
                side=intent.side,
                order_type=intent.order_type,
                qty=qty,
                limit_price=intent.limit_price,
                time_in_force=intent.time_in_force,
                correlation_id=intent.correlation_id,
                created_ts_ns=now,
                updated_ts_ns=now,
                tick_recv_ts_ns=intent.tick_recv_ts_ns,
                reference_price=intent.reference_price,
            )
        )

    async def _cancel_intent(self, intent: Intent) -> None:
        assert self.desk is not None
        assert self.parents is not None
        if not await self.parents.cancel(intent.cancel_intent_id):
            for order in await self.journal.orders_for_intent(intent.cancel_intent_id):
                if not order.state.is_terminal:
                    await self.desk.cancel(order)
        # a parent canceling, an order marked never to be resent: the venue cannot tell a
        # recovery about either, so they are durable before the bus forgets the cancel
        await self.journal.make_durable()

    async def _restore_halt(self) -> None:
        """A halt (or a pause, a flatten) issued while this instance was down or standing by
        holds from its first act: recovery must not resend what it stopped. The control stream's
        commands are folded in order; the control consumer later sees the same ones again,
        which changes nothing."""
        for delivery in await replay_stream(self.bus, CONTROL):
            if isinstance(delivery.message, Control):
                self._apply_control(delivery.message)
        if self.halted or self.reducing:
            self.log.warning(
                "execution_starts_restricted", halted=self.halted, reducing=self.reducing
            )

    def _apply_control(self, message: Control) -> None:
        reason = message.reason or f"ops {message.command}"
        if message.command == "halt":
            self.halted = self.halted or reason
        elif message.command in ("pause", "flatten"):
            self.reducing = self.reducing or reason
        elif message.command == "resume":
            self.halted = self.reducing = ""

    def _may_resend(self, order: OrderRecord) -> bool:
        if self.halted:
            return False
        if self.reducing and self.desk is not None:
            position = self.desk.positions.get(self.venue, order.symbol).qty
            return order_reduces(order.side, order.remaining_qty, position)
        return True

    async def _on_control(self, delivery: Delivery) -> None:
        message = delivery.message
        if not isinstance(message, Control):
            return
        was = (self.halted, self.reducing)
        self._apply_control(message)
        if (self.halted, self.reducing) != was:
            self.log.warning(
                "execution_trading_state",
                command=message.command,
                halted=self.halted,
                reducing=self.reducing,
            )

    async def _on_market_data(self, delivery: Delivery) -> None:
        message = delivery.message
        if isinstance(message, Quote) and message.bid_price > 0 and message.ask_price > 0:
            self.touch[message.symbol] = MarketView(
                bid=Decimal(repr(message.bid_price)),
                ask=Decimal(repr(message.ask_price)),
                ts_ns=message.recv_ts_ns,
            )

    async def _poll(self) -> None:
        """REST polling: fast while the push channel is stale (or off), a slow safety net
        otherwise."""
        assert self.desk is not None
        fast = self.exec_config.poll_interval_ms / 1000
        slow = fast * 10
        last = 0
        # a deposed leader's poller ends with the rest of its leader work (nothing else stops it)
        while not self._deposed.is_set() and not await self.pause(fast):
            now = self.clock.time_ns()
            stale = self.user_stream is None or self.push.stale(now)
            if not stale and now - last < slow * 1e9:
                with contextlib.suppress(JournalUnavailableError):
                    self.open_orders = await self.journal.open_orders()
                continue
            last = now
            try:
                self.open_orders = await self.journal.open_orders()
                await self.desk.poll_once()
            except JournalUnavailableError as exc:
                self.log.warning("poll_journal_unavailable", error=str(exc)[:200])
            if self.user_stream is not None:
                self.metrics.user_stream_age.labels(venue=self.venue).set(
                    (now - self.push.last_event_ns) / 1e9 if self.push.last_event_ns else 0
                )

    # --- health -------------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        venue_ok = self.gateway is not None and self.gateway.ok
        if self.leader_epoch is None:
            return Readiness.of({"hot standby: venue reachable": venue_ok})
        return Readiness.of(
            {
                "recovered": self.recovered,
                "orders consumer connected": self.orders_consumer.connected,
                "venue reachable": venue_ok,
                "leader": self._may_send(),
            }
        )

    def status(self) -> dict[str, Any]:
        now = self.clock.time_ns()
        desk = self.desk
        return {
            "role": "leader" if self.leader_epoch is not None else "standby",
            "leader_epoch": self.leader_epoch,
            "lease": None if self.elector is None else self.elector.state(),
            "halted": self.halted or None,
            "positions": (
                {p.symbol: str(p.qty) for p in desk.positions.all()} if desk is not None else {}
            ),
            "orders_sent": desk.sent if desk is not None else 0,
            "open_orders": [_order_status(o) for o in self.open_orders[:100]],
            "parents": self.parents.state() if self.parents is not None else [],
            "user_stream": self.push.state(now) if self.user_stream is not None else None,
            "rate_limit": self.limiter.governor.state(),
            "recovery": None if self.recovery is None else _recovery_status(self.recovery),
        }


def _order_status(o: OrderRecord) -> dict[str, Any]:
    return {
        "client_order_id": o.client_order_id,
        "intent_id": o.intent_id,
        "symbol": o.symbol,
        "side": o.side.value,
        "type": o.order_type.value,
        "qty": str(o.qty),
        "filled": str(o.filled_qty),
        "price": None if o.limit_price is None else str(o.limit_price),
        "state": o.state.value,
    }


def _recovery_status(report: RecoveryReport) -> dict[str, Any]:
    return {
        "duration_ms": report.duration_ms,
        "orders_adopted": report.orders_adopted,
        "parents_restored": report.parents_restored,
        "unexplained_orders": report.unexplained,
        "orders_reconciled": report.orders_reconciled,
        "fills_recovered": report.fills_recovered,
        "parents_resumed": report.parents_resumed,
        "drift_percent": report.drift_percent,
        "drift": report.drift_detail,
        "halt_reason": report.halt_reason or None,
    }


__all__ = ["ExecutionService", "LeadershipLost", "RetryLater"]
