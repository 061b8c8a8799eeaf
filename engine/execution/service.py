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
epoch 0 from the start, and /startupz turns green only after recovery. Which of these an
instance is, is one pure state machine (engine.core.leadership.Leadership): the service feeds
it the elector's callbacks, the journal's claim, recovery's end and any FencingError, and does
what each transition says.

The service builds nothing from configuration: its parts come ready from
engine.execution.assembly (journal, rate limiter, elector, consumers), and its venue-bound
parts (engine.execution.venue_session) are built once, at start, when the venue answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.bus.base import CONTROL, Delivery, md_stream, orders_stream, replay_stream
from engine.bus.consumer import RetryLater, StreamConsumer
from engine.core.algos import MarketView
from engine.core.errors import (
    FencingError,
    JournalUnavailableError,
    StormproofError,
    VenueError,
)
from engine.core.ids import client_order_id
from engine.core.leadership import Leadership
from engine.core.messages import (
    ContractTerms,
    Control,
    FundingPaid,
    Intent,
    OrderRequest,
    Quote,
    VenuePosition,
    intent_done,
)
from engine.core.orders import OrderRecord
from engine.core.positions import order_reduces
from engine.core.pushhealth import PushHealth
from engine.core.reconcile import position_drift_percent
from engine.execution.journal import Journal
from engine.execution.lease.base import OnDeposed, OnElected
from engine.execution.lease.elector import LeaderElector
from engine.execution.recovery import RecoveryReport, recover, venue_contracts
from engine.execution.venue_pacer import VenueRateLimiter
from engine.execution.venue_session import VenueSession
from engine.runtime.service import Readiness, Service, ServiceContext
from plumbing.logging import bound_contextvars

ElectorFactory = Callable[[OnElected, OnDeposed], LeaderElector]
"""A LeaderElector for this instance, given the service's on_elected and on_deposed."""
ConsumerFactory = Callable[..., StreamConsumer]
"""A StreamConsumer of the execution group: streams, handler, start and per-stream options."""
VenueConnector = Callable[..., Awaitable[VenueSession]]
"""`connect_venue` with everything but the service's own answers (stopping, market,
may_send, may_resend) bound."""


@dataclass(frozen=True, kw_only=True)
class ExecutionParts:
    """What an ExecutionService is made of; engine.execution.assembly builds them from config."""

    journal: Journal
    limiter: VenueRateLimiter
    push: PushHealth
    stopping: asyncio.Event
    """The service's stop event, which the limiter watches: a request waiting for its permit
    is not sent once the service stops."""
    elect: ElectorFactory | None
    """None without a lease backend (backend "none"): the single instance leads with epoch 0."""
    consume: ConsumerFactory
    connect_venue: VenueConnector


class LeadershipLost(StormproofError):
    """This instance was the leader and is not any more: exit, come back as a standby."""


def _order_lane(delivery: Delivery) -> str:
    """Requests about the same intent keep their order (a cancel never overtakes its order)."""
    message = delivery.message
    if isinstance(message, OrderRequest):
        intent = message.intent
        return intent.cancel_intent_id if intent.action == "cancel" else intent.intent_id
    return delivery.entry_id


class ExecutionService(Service):
    name = "execution"

    def __init__(self, ctx: ServiceContext, parts: ExecutionParts) -> None:
        super().__init__(ctx)
        self.stopping = parts.stopping  # the event the injected rate limiter watches
        config = self.config
        self.venue = config.venue.name
        self.symbols = [s.upper() for s in config.venue.symbols]
        self.exec_config = config.execution
        self.parts = parts
        self.journal = parts.journal
        self.limiter = parts.limiter
        self.push = parts.push
        self.session: VenueSession | None = None
        self._drift_seen: dict[str, tuple[Decimal, bool]] = {}
        """Futures: per symbol, the last venue-less-fills difference and whether it was logged."""
        """The venue-bound parts, from the moment the venue answered at start."""
        self.touch: dict[str, MarketView] = {}
        self.recovery: RecoveryReport | None = None
        self.halted = ""
        """Why this instance refuses new entries (a drift halt, an ops halt); "" when not."""
        self.reducing = ""
        """Why only reductions may be resent now (a pause, a flatten); "" when not."""
        self.leadership = Leadership()
        self.open_orders: list[OrderRecord] = []
        """Refreshed by the poller, for /status (which must not wait on the journal)."""
        self._elected = asyncio.Event()
        """Wakes run() when `leadership` turns ELECTED: it claims and recovers."""
        self._deposed = asyncio.Event()
        """Wakes the leadership watcher when `leadership` turns DEPOSED: the leader work stops."""
        self.elector = (
            None if parts.elect is None else parts.elect(self._on_elected, self._on_deposed)
        )
        self.orders_consumer = parts.consume(
            streams=[orders_stream(self.venue)],
            handler=self._on_request,
            start="earliest",
            concurrency=self.exec_config.max_orders_in_flight,
            key=_order_lane,
        )
        self.control_consumer = parts.consume(
            streams=[CONTROL], handler=self._on_control, start="latest"
        )
        self.md_consumer = parts.consume(
            streams=[md_stream(self.venue, s) for s in self.symbols],
            handler=self._on_market_data,
            start="latest",
        )
        self.stoppables = [self.orders_consumer, self.control_consumer, self.md_consumer]

    def _connected(self) -> VenueSession:
        if self.session is None:
            raise StormproofError("execution used before its venue was connected")
        return self.session

    # --- lifecycle ----------------------------------------------------------------------------

    async def on_start(self) -> None:
        await self.bus.ping()
        await self.journal.open()
        self.session = await self.parts.connect_venue(
            stopping=self.stopping,
            market=self.touch.get,
            may_send=self._may_send,
            may_resend=self._may_resend,
        )
        if self.elector is None:
            self.leadership.on_elected(0)
            await self._lead()  # a single instance: /startupz after recovery
        else:
            self.log.info("execution_standby", lease=self.config.lease.backend)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            if self.elector is not None:
                tasks.create_task(self.elector.run(), name="execution-lease")
                if not await self._wait_for_election():
                    self.elector.stop()
                    return
                await self._lead()
                if self.leadership.deposed:
                    # deposed before the claim or during recovery: no leader work starts (it
                    # would claim the group's pending orders the new leader is waiting for)
                    raise LeadershipLost("leadership lost: exiting so as to restart as a standby")
            tasks.create_task(self._leader_work(), name="execution-leader")

    async def _wait_for_election(self) -> bool:
        elected = asyncio.create_task(self._elected.wait(), name="execution-elected")
        stopping = asyncio.create_task(self.stopping.wait(), name="execution-stop-wait")
        try:
            done, _ = await asyncio.wait({elected, stopping}, return_when=asyncio.FIRST_COMPLETED)
            return elected in done
        finally:
            for task in (elected, stopping):
                task.cancel()
            await asyncio.gather(elected, stopping, return_exceptions=True)

    async def _lead(self) -> None:
        """Claim the journal with our epoch and recover; only then take requests."""
        session = self._connected()
        epoch = self.leadership.epoch
        if self.leadership.deposed or epoch is None:
            return  # the term ended before it was claimed: the leader work stops at once
        await self.journal.claim(epoch)
        if not self.leadership.on_claimed():
            return
        self.metrics.leader.set(1)
        self.metrics.leader_epoch.set(epoch)
        await self._restore_halt()
        self.recovery = await recover(
            journal=self.journal,
            desk=session.desk,
            parents=session.parents,
            gateway=session.gateway,
            bus=self.bus,
            clock=self.clock,
            metrics=self.metrics,
            venue=self.venue,
            symbols=self.symbols,
            instruments=session.instruments,
            drift_halt_percent=self.exec_config.drift_halt_percent,
            republish_window_ms=self.exec_config.republish_window_ms,
            adoption_lookback_ms=self.exec_config.adoption_lookback_ms,
            adoption_required=self.exec_config.journal_durability == "process",
        )
        self.leadership.on_recovered()
        if session.desk.futures:
            await self._publish_contract_terms(session)
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
            positions={p.symbol: str(p.qty) for p in session.desk.positions.all()},
        )

    async def _leader_work(self) -> None:
        session = self._connected()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.md_consumer.run(), name="execution-md")
                tasks.create_task(self.control_consumer.run(), name="execution-control")
                tasks.create_task(self.orders_consumer.run(), name="execution-orders")
                tasks.create_task(self._fenced(session.parents.run()), name="execution-parents")
                tasks.create_task(self._fenced(self._poll()), name="execution-poller")
                if session.desk.futures:
                    tasks.create_task(
                        self._fenced(self._poll_positions()), name="execution-positions"
                    )
                tasks.create_task(self._watch_leadership(), name="execution-fence")
                if session.user_stream is not None:
                    tasks.create_task(
                        self._fenced(session.user_stream.run()), name="execution-user-stream"
                    )
        finally:
            self.metrics.leader.set(0)
        if self.leadership.deposed:
            raise LeadershipLost("leadership lost: exiting so as to restart as a standby")

    async def _fenced(self, work: Coroutine[Any, Any, None]) -> None:
        """A FencingError anywhere means a newer leader exists: depose, never crash."""
        try:
            await work
        except* FencingError as group:
            self.log.error("execution_fenced", error=str(group.exceptions[0]))
            self._on_fenced(str(group.exceptions[0]))

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
        if self.session is not None:
            self.session.parents.stop()
            if self.session.user_stream is not None:
                self.session.user_stream.stop()
        if self.elector is not None and self.stopping.is_set():
            self.elector.stop()

    async def _on_elected(self, epoch: int) -> None:
        if self.leadership.on_elected(epoch):
            self._elected.set()

    async def _on_deposed(self, epoch: int, reason: str) -> None:
        if self.leadership.on_deposed(epoch, reason):
            self.log.error("execution_deposed", epoch=epoch, reason=reason)
            self._deposed.set()

    def _on_fenced(self, reason: str) -> None:
        if self.leadership.on_fenced(f"fenced: {reason}"):
            self._deposed.set()

    def _may_send(self) -> bool:
        return self.leadership.may_send(lease_held=self.elector is None or self.elector.is_leader)

    async def on_stop(self) -> None:
        if self.session is not None:
            await self.session.close()
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
                self._on_fenced(str(exc))
                raise RetryLater(str(exc)) from exc
            except JournalUnavailableError as exc:
                raise RetryLater(str(exc)) from exc

    async def _new_intent(self, intent: Intent) -> None:
        session = self._connected()
        if self.halted and not intent.reduce_only:
            await self._refuse(intent, f"execution halted: {self.halted}")
            return
        position = session.desk.positions.get(self.venue, intent.symbol).qty
        if intent.algo:
            await session.parents.submit(intent, position_qty=position)
            # the parent's record is all a recovery would have of it until a child reaches the
            # venue: durable before the bus forgets the request (its children go out meanwhile)
            await self.journal.make_durable()
            return
        qty = min(intent.qty, abs(position)) if intent.reduce_only else intent.qty
        if intent.reduce_only and not order_reduces(intent.side, qty, position):
            # nothing of ours to reduce that way: an answer, not an order the venue would refuse
            await self._refuse(intent, f"reduce-only: our position is {position}")
            return
        now = self.clock.time_ns()
        await session.desk.place(
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
                reduce_only=intent.reduce_only,
            )
        )

    async def _refuse(self, intent: Intent, reason: str) -> None:
        """The intent ends here, rejected, with no order: its client is told why."""
        await self.bus.publish(
            f"exec.{self.venue}",
            intent_done(
                intent,
                filled_qty=Decimal(0),
                outcome="rejected",
                reason=reason[:300],
                children=0,
                ts_ns=self.clock.time_ns(),
            ),
        )

    async def _cancel_intent(self, intent: Intent) -> None:
        session = self._connected()
        if not await session.parents.cancel(intent.cancel_intent_id):
            for order in await self.journal.orders_for_intent(intent.cancel_intent_id):
                if not order.state.is_terminal:
                    await session.desk.cancel(order)
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
        if self.reducing and self.session is not None:
            position = self.session.desk.positions.get(self.venue, order.symbol).qty
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
        session = self._connected()
        fast = self.exec_config.poll_interval_ms / 1000
        slow = fast * 10
        last = 0
        # a deposed leader's poller ends with the rest of its leader work (nothing else stops it)
        while not self.leadership.deposed and not await self.pause(fast):
            now = self.clock.time_ns()
            stale = session.user_stream is None or self.push.stale(now)
            if not stale and now - last < slow * 1e9:
                with contextlib.suppress(JournalUnavailableError):
                    self.open_orders = await self.journal.open_orders()
                continue
            last = now
            try:
                self.open_orders = await self.journal.open_orders()
                await session.desk.poll_once()
            except JournalUnavailableError as exc:
                self.log.warning("poll_journal_unavailable", error=str(exc)[:200])
            if session.user_stream is not None:
                self.metrics.user_stream_age.labels(venue=self.venue).set(
                    (now - self.push.last_event_ns) / 1e9 if self.push.last_event_ns else 0
                )

    async def _poll_positions(self) -> None:
        """Futures: the venue's positions, published on exec.{venue} as VenuePosition for risk
        (liquidation price and distance, the breaker) and compared with the journal's (drift)."""
        session = self._connected()
        symbols = list(session.desk.unified)
        interval = self.exec_config.position_poll_ms / 1000
        funding_every_ns = self.exec_config.funding_poll_ms * 1_000_000
        funding_since_ms: dict[str, int] = {}
        last_funding_ns = 0
        baselines = await self._position_baselines(symbols)
        while not self.leadership.deposed and not await self.pause(interval):
            if self.clock.time_ns() - last_funding_ns >= funding_every_ns:
                last_funding_ns = self.clock.time_ns()
                await self._poll_funding(session, symbols, funding_since_ms)
            asked_ns = self.clock.time_ns()
            try:
                raw = await session.gateway.call(
                    "fetch_positions",
                    [session.desk.unified[s] for s in symbols],
                    side_effect=False,
                )
            except VenueError as exc:
                self.log.warning("position_poll_failed", error=str(exc)[:200])
                continue
            held = venue_contracts(raw)
            out: list[tuple[str, Any]] = []
            for symbol in symbols:
                contracts, mark, position = held.get(symbol, (Decimal(0), Decimal(0), None))
                reported = position or {}
                liquidation = reported.get("liquidationPrice")
                leverage = reported.get("leverage")
                out.append(
                    (
                        f"exec.{self.venue}",
                        VenuePosition(
                            venue=self.venue,
                            symbol=symbol,
                            contracts=contracts,
                            entry_price=Decimal(str(reported.get("entryPrice") or 0)),
                            mark_price=float(mark),
                            liquidation_price=float(liquidation) if liquidation else None,
                            unrealized_pnl=Decimal(str(reported.get("unrealizedPnl") or 0)),
                            notional=Decimal(str(reported.get("notional") or 0)),
                            leverage=int(leverage) if leverage else None,
                            ts_ns=asked_ns,
                            baseline_contracts=baselines.get(symbol, Decimal(0)),
                        ),
                    )
                )
                self._note_drift(session, symbol, contracts - baselines.get(symbol, Decimal(0)))
            await self.bus.publish_many(out)

    async def _publish_contract_terms(self, session: VenueSession) -> None:
        """Futures: each symbol's contract as the venue's markets define it, for risk (an
        inverse contract's order is valued in contracts x face value)."""
        now = self.clock.time_ns()
        out: list[tuple[str, Any]] = []
        for symbol, unified in session.desk.unified.items():
            market = session.gateway.exchange.markets.get(unified) or {}
            out.append(
                (
                    f"exec.{self.venue}",
                    ContractTerms(
                        venue=self.venue,
                        symbol=symbol,
                        contract_size=Decimal(str(market.get("contractSize") or 1)),
                        inverse=bool(market.get("inverse")),
                        ts_ns=now,
                    ),
                )
            )
        await self.bus.publish_many(out)

    async def _position_baselines(self, symbols: list[str]) -> dict[str, Decimal]:
        """What recovery recorded the account held before this journal began, per symbol."""
        out: dict[str, Decimal] = {}
        for symbol in symbols:
            try:
                stored = await self.journal.get_meta(f"baseline.position.{symbol}")
            except JournalUnavailableError as exc:
                self.log.warning("position_baseline_unreadable", error=str(exc)[:200])
                continue
            if stored is not None:
                out[symbol] = Decimal(stored)
        return out

    def _note_drift(self, session: VenueSession, symbol: str, venue_own: Decimal) -> None:
        """Futures: the venue's position (ours: less the baseline) against our fills'. A
        difference while an order is being worked is expected; one that stays the same over two
        polls is a position changed out of band (a close by hand, an auto-deleverage): logged
        once and on the drift gauge (its alert pages), which goes back to 0 when they agree.
        Risk's flatten trusts the venue's report; the next recovery halts on it beyond
        position_drift_halt_pct."""
        ours = session.desk.positions.get(self.venue, symbol).qty
        drift = venue_own - ours
        if abs(drift) <= self.config.risk.flat_tolerance_qty:
            drift = Decimal(0)
        previous, reported = self._drift_seen.get(symbol, (Decimal(0), False))
        steady = drift != 0 and drift == previous
        gauge = self.metrics.position_drift.labels(venue=self.venue, symbol=symbol)
        if drift == 0:
            gauge.set(0.0)
        elif steady:
            gauge.set(position_drift_percent(expected=ours, actual=venue_own, tolerance=Decimal(0)))
            if not reported:
                self.log.warning(
                    "venue_position_differs",
                    symbol=symbol,
                    venue=str(venue_own),
                    fills=str(ours),
                    drift=str(drift),
                )
        self._drift_seen[symbol] = (drift, (reported and drift == previous) or steady)

    async def _poll_funding(
        self, session: VenueSession, symbols: list[str], since_ms: dict[str, int]
    ) -> None:
        """Futures: funding settlements from the venue's income history, published as
        FundingPaid (consumers count each tran id once; a record is published again at most
        when its time equals the last one seen)."""
        out: list[tuple[str, Any]] = []
        for symbol in symbols:
            try:
                records = await session.gateway.call(
                    "fetch_funding_history",
                    session.desk.unified[symbol],
                    since_ms.get(symbol),
                    None,
                    side_effect=False,
                )
            except VenueError as exc:
                self.log.warning("funding_poll_failed", symbol=symbol, error=str(exc)[:200])
                continue
            for record in records:
                stamp = int(record.get("timestamp") or 0)
                since_ms[symbol] = max(since_ms.get(symbol, 0), stamp)
                out.append(
                    (
                        f"exec.{self.venue}",
                        FundingPaid(
                            venue=self.venue,
                            symbol=symbol,
                            tran_id=str(record.get("id") or ""),
                            income=Decimal(str(record.get("amount") or 0)),
                            asset=str(record.get("code") or ""),
                            venue_ts_ms=stamp,
                        ),
                    )
                )
        if out:
            await self.bus.publish_many(out)

    # --- health -------------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        venue_ok = self.session is not None and self.session.gateway.ok
        if self.leadership.leader_epoch is None:
            return Readiness.of({"hot standby: venue reachable": venue_ok})
        return Readiness.of(
            {
                "recovered": self.leadership.recovered,
                "orders consumer connected": self.orders_consumer.connected,
                "venue reachable": venue_ok,
                "leader": self._may_send(),
            }
        )

    def status(self) -> dict[str, Any]:
        now = self.clock.time_ns()
        session = self.session
        return {
            "role": self.leadership.role,
            "leader_epoch": self.leadership.leader_epoch,
            "leadership": self.leadership.state.value,
            "lease": None if self.elector is None else self.elector.state(),
            "halted": self.halted or None,
            "positions": (
                {p.symbol: str(p.qty) for p in session.desk.positions.all()}
                if session is not None
                else {}
            ),
            "orders_sent": session.desk.sent if session is not None else 0,
            "open_orders": [_order_status(o) for o in self.open_orders[:100]],
            "parents": session.parents.state() if session is not None else [],
            "user_stream": (
                self.push.state(now)
                if session is not None and session.user_stream is not None
                else None
            ),
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
