"""Any interleaving of acks, fills, cancels, timeouts and restarts ends with journal positions
equal to venue fills.

A pure model venue (orders by clientOrderId, Binance's duplicate rule and recvWindow) and a model
executor built only from the real pure pieces (OrderRecord.moved_to / with_venue_status,
resolve_order, client_order_id, PositionBook, the algos' step) are driven by a hypothesis state
machine. The executor's journal survives restarts; its memory (the requests it awaits, the
cancels it wants) does not; requests already on the wire still reach the venue after a restart.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from engine.core.algos import (
    CancelChild,
    Finished,
    Instrument,
    MarketView,
    PlaceChild,
    child_order,
    make_algo,
)
from engine.core.errors import OrderStateError
from engine.core.ids import client_order_id
from engine.core.messages import Fill, Intent, OrderType, Side
from engine.core.orders import VENUE_STATUS, OrderRecord, OrderState
from engine.core.positions import PositionBook
from engine.core.reconcile import (
    Apply,
    Conflict,
    SendNow,
    Unchanged,
    Vanished,
    VenueOrder,
    Wait,
    position_drift_percent,
    resolve_order,
    venue_position,
)

pytestmark = pytest.mark.unit

D = Decimal
VENUE = "binance"
SYMBOL = "BTCUSDT"
LOT = D("0.001")
PRICE = D("100.00")
INSTRUMENT = Instrument(tick_size=D("0.01"), lot_size=LOT, min_qty=LOT, min_notional=D("0.2"))
MS = 1_000_000
REQUEST_TIMEOUT_NS = 5 * MS
GRACE_NS = 2 * REQUEST_TIMEOUT_NS  # what the execution service uses
RECV_WINDOW_NS = REQUEST_TIMEOUT_NS  # the venue refuses a request older than this: < grace
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
_NOTHING = D(0)


# --- the model venue ------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A new-order request on the wire, signed with the time it was sent."""

    request_id: int
    generation: int
    order: OrderRecord
    sent_ns: int


@dataclass
class ModelOrder:
    client_order_id: str
    venue_order_id: str
    side: Side
    qty: Decimal
    status: str = "NEW"
    trades: list[tuple[int, Decimal, Decimal]] = field(default_factory=list)

    @property
    def filled(self) -> Decimal:
        return sum((qty for _, qty, _ in self.trades), D(0))

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def view(self) -> VenueOrder:
        return VenueOrder(
            client_order_id=self.client_order_id,
            venue_order_id=self.venue_order_id,
            status=self.status,
            filled_qty=self.filled,
            quote_qty=sum((qty * price for _, qty, price in self.trades), D(0)),
        )


class ModelVenue:
    """Orders by clientOrderId. Like Binance, a duplicate clientOrderId is refused only while the
    first order is open, and a request older than recvWindow is refused."""

    def __init__(self) -> None:
        self.orders: list[ModelOrder] = []
        self._ids = itertools.count(1)

    def new_order(
        self, request: Request, *, now_ns: int, refuse: bool = False, fill: Decimal = _NOTHING
    ) -> VenueOrder | str:
        """Accept (and match `fill` of it at once), or refuse with the venue's message."""
        order = request.order
        if now_ns - request.sent_ns > RECV_WINDOW_NS:
            return "InvalidNonce: Timestamp for this request is outside of the recvWindow."
        if any(o.client_order_id == order.client_order_id and o.is_open for o in self.orders):
            return "InvalidOrder: Duplicate order sent."
        if refuse:
            return "InsufficientFunds: Account has insufficient balance for requested action."
        placed = ModelOrder(
            client_order_id=order.client_order_id,
            venue_order_id=str(next(self._ids)),
            side=order.side,
            qty=order.qty,
        )
        self.orders.append(placed)
        if fill > 0:
            self.fill(placed, min(fill, placed.qty))
        return placed.view()

    def find(self, coid: str) -> ModelOrder | None:
        """GET /api/v3/order?origClientOrderId=: the latest order under that id."""
        return next((o for o in reversed(self.orders) if o.client_order_id == coid), None)

    def fill(self, order: ModelOrder, qty: Decimal) -> None:
        order.trades.append((next(self._ids), qty, PRICE))
        order.status = "FILLED" if order.filled == order.qty else "PARTIALLY_FILLED"

    def cancel(self, coid: str) -> None:
        order = self.find(coid)
        if order is not None and order.is_open:
            order.status = "CANCELED"

    def fills(self, order: ModelOrder, intent_id: str) -> list[Fill]:
        return [
            Fill(
                venue=VENUE,
                symbol=SYMBOL,
                trade_id=trade_id,
                client_order_id=order.client_order_id,
                intent_id=intent_id,
                side=order.side,
                qty=qty,
                price=price,
                commission=D(0),
                commission_asset="USDT",
                is_maker=False,
                venue_ts_ms=0,
            )
            for trade_id, qty, price in order.trades
        ]


# --- the model executor ---------------------------------------------------------------------

IntentSpec = tuple[str, Side, int, dict[str, float | int | str]]


@st.composite
def intent_specs(draw: st.DrawFn) -> IntentSpec:
    algo = draw(st.sampled_from(["", "split", "twap", "maker_first"]))
    params: dict[str, float | int | str] = {}
    if algo == "split":
        params = {
            "max_child_qty": str(draw(st.integers(1, 5)) * LOT),
            "max_concurrent": draw(st.integers(1, 3)),
        }
    elif algo == "twap":
        params = {"duration_ms": draw(st.integers(1, 40)), "slices": draw(st.integers(1, 5))}
    elif algo == "maker_first":
        params = {"timeout_ms": draw(st.integers(0, 40))}
    return algo, draw(st.sampled_from(Side)), draw(st.integers(1, 12)), params


INTENT_SPECS = intent_specs()


@dataclass
class Journal:
    """Survives restarts."""

    intents: dict[str, tuple[Intent, int]] = field(default_factory=dict)
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    fills: dict[int, Fill] = field(default_factory=dict)
    finished: dict[str, Finished] = field(default_factory=dict)


@dataclass
class Memory:
    """Lost on restart."""

    awaiting: dict[int, str] = field(default_factory=dict)
    canceling: set[str] = field(default_factory=set)


class ExecutionModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000 * MS
        self.venue = ModelVenue()
        self.journal = Journal()
        self.memory = Memory()
        self.generation = 0
        self.wire: list[Request] = []
        self.request_ids = itertools.count(1)
        self.alerts: list[str] = []

    # -- executor pieces (the execution service's decisions, with the real pure functions)

    @property
    def market(self) -> MarketView:
        return MarketView(bid=PRICE - D("0.01"), ask=PRICE + D("0.01"), ts_ns=self.now)

    def _send(self, order: OrderRecord) -> None:
        """Journal SUBMITTING first, then put the request on the wire."""
        sending = msgspec.structs.replace(
            order.moved_to(OrderState.SUBMITTING, ts_ns=self.now), sent_ts_ns=self.now
        )
        self.journal.orders[sending.client_order_id] = sending
        request = Request(next(self.request_ids), self.generation, sending, self.now)
        self.wire.append(request)
        self.memory.awaiting[request.request_id] = sending.client_order_id

    def _record(self, order: OrderRecord) -> None:
        """Journal the order and every venue trade of it (fills keyed by trade id)."""
        self.journal.orders[order.client_order_id] = order
        placed = self.venue.find(order.client_order_id)
        if order.filled_qty > 0 and placed is not None:
            for fill in self.venue.fills(placed, order.intent_id):
                self.journal.fills.setdefault(fill.trade_id, fill)

    def _on_response(self, request: Request, answer: VenueOrder | str) -> None:
        coid = self.memory.awaiting.pop(request.request_id, None)
        if coid is None:
            return  # nobody waits for it any more (timed out, or the process restarted)
        order = self.journal.orders[coid]
        if isinstance(answer, str):
            if "Duplicate" in answer or "recvWindow" in answer:  # ambiguous / retryable
                self.journal.orders[coid] = order.moved_to(
                    OrderState.UNKNOWN, ts_ns=self.now, reason=answer
                )
            else:  # fatal
                self.journal.orders[coid] = order.moved_to(
                    OrderState.REJECTED, ts_ns=self.now, reason=answer
                )
            return
        try:
            updated = order.with_venue_status(
                venue_status=answer.status,
                filled_qty=answer.filled_qty,
                quote_qty=answer.quote_qty,
                venue_order_id=answer.venue_order_id,
                ts_ns=self.now,
            )
        except OrderStateError as exc:
            self.alerts.append(f"send response rejected: {exc}")
            return
        self._record(updated)

    def _deliver(
        self, request: Request, *, respond: bool, refuse: bool = False, fill: Decimal = _NOTHING
    ) -> None:
        self.wire.remove(request)
        answer = self.venue.new_order(request, now_ns=self.now, refuse=refuse, fill=fill)
        if respond and request.generation == self.generation:
            self._on_response(request, answer)

    def _reconcile_all(self) -> None:
        busy = set(self.memory.awaiting.values())
        for coid, order in sorted(self.journal.orders.items()):
            if order.state.is_terminal or coid in busy:
                continue
            placed = self.venue.find(coid)
            parent_done = order.intent_id in self.journal.finished
            resolution = resolve_order(
                order,
                None if placed is None else placed.view(),
                now_ns=self.now,
                grace_ns=GRACE_NS,
                resend=not parent_done and coid not in self.memory.canceling,
            )
            match resolution:
                case Apply(order=updated):
                    self._record(updated)
                case Unchanged():
                    self._record(order)
                case SendNow(order=pending):
                    assert pending.state is OrderState.PENDING
                    assert pending.client_order_id == coid
                    self._send(pending)
                case Wait():
                    pass
                case Vanished(reason=reason) | Conflict(reason=reason):
                    self.alerts.append(f"{coid}: {reason}")

    def _children(self, intent_id: str) -> list[OrderRecord]:
        return [o for o in self.journal.orders.values() if o.intent_id == intent_id]

    # -- rules

    def _submit(self, spec: IntentSpec) -> None:
        algo, side, lots, params = spec
        intent_id = f"intent-{len(self.journal.intents)}"
        intent = Intent(
            intent_id=intent_id,
            source="model",
            venue=VENUE,
            symbol=SYMBOL,
            side=side,
            qty=lots * LOT,
            order_type=OrderType.MARKET,
            algo=algo,  # type: ignore[arg-type]
            algo_params=params,
        )
        self.journal.intents[intent_id] = (intent, self.now)

    @initialize(specs=st.lists(INTENT_SPECS, min_size=1, max_size=3))
    def strategy_sends_intents(self, specs: list[IntentSpec]) -> None:
        for spec in specs:
            self._submit(spec)

    @precondition(lambda self: len(self.journal.intents) < 4)
    @rule(spec=INTENT_SPECS)
    def strategy_sends_another_intent(self, spec: IntentSpec) -> None:
        self._submit(spec)

    def _algos_step(self) -> None:
        """Every unfinished parent's algo, rebuilt from the journal (as after a restart)."""
        for intent_id, (intent, start_ns) in sorted(self.journal.intents.items()):
            if intent_id in self.journal.finished:
                continue
            algo = make_algo(intent, start_ns=start_ns, instrument=INSTRUMENT)
            children = self._children(intent_id)
            for action in algo.step(now_ns=self.now, market=self.market, children=children):
                if isinstance(action, PlaceChild):
                    record = child_order(intent, action, now_ns=self.now)
                    assert record.client_order_id not in self.journal.orders, "child reused"
                    self.journal.orders[record.client_order_id] = record  # write-ahead
                elif isinstance(action, CancelChild):
                    self.memory.canceling.add(action.client_order_id)
                    current = self.journal.orders[action.client_order_id]
                    if current.state is OrderState.PENDING:  # never sent: nothing to cancel
                        self.journal.orders[action.client_order_id] = current.moved_to(
                            OrderState.REJECTED, ts_ns=self.now, reason="canceled before send"
                        )
                    else:
                        self.venue.cancel(action.client_order_id)
                else:
                    assert not [c for c in children if not c.state.is_terminal]
                    self.journal.finished[intent_id] = action

    def _send_pending(self) -> None:
        for order in sorted(self.journal.orders.values(), key=lambda o: o.client_order_id):
            if order.state is OrderState.PENDING and order.client_order_id not in (
                self.memory.canceling
            ):
                self._send(order)

    @rule(then=st.sampled_from(["sends", "sends", "sends", "crashes", "sends, crashes"]))
    def executor_works(self, then: str) -> None:
        """One cycle of the execution service: resolve what is open at the venue, step every
        algo, send the children it journaled; it may crash right after journaling them, or
        after sending them (before any answer). Only the journal survives a crash."""
        self._reconcile_all()
        self._algos_step()
        if then.startswith("sends"):
            self._send_pending()
        if then.endswith("crashes"):
            self._restart()

    @precondition(lambda self: self.wire)
    @rule(
        data=st.data(),
        outcome=st.sampled_from(["answered", "answered", "response lost", "request lost"]),
        refuse=st.integers(0, 5),
        fill_lots=st.sampled_from([0, 0, 1, 2, 12]),
    )
    def network_carries_a_send(
        self, data: st.DataObject, outcome: str, refuse: int, fill_lots: int
    ) -> None:
        """The request reaches the venue (which may match some of it at once) and the answer
        comes back; or the answer is lost; or the request never reaches the venue."""
        request = data.draw(st.sampled_from(self.wire))
        if outcome == "request lost":
            self.wire.remove(request)
        else:
            self._deliver(
                request, respond=outcome == "answered", refuse=refuse == 0, fill=fill_lots * LOT
            )

    @precondition(lambda self: self.memory.awaiting)
    @rule(data=st.data())
    def send_times_out(self, data: st.DataObject) -> None:
        request_id = data.draw(st.sampled_from(sorted(self.memory.awaiting)))
        coid = self.memory.awaiting.pop(request_id)
        order = self.journal.orders[coid]
        self.journal.orders[coid] = order.moved_to(OrderState.UNKNOWN, ts_ns=self.now)

    @precondition(lambda self: any(o.is_open for o in self.venue.orders))
    @rule(data=st.data(), lots=st.integers(1, 12))
    def venue_fills(self, data: st.DataObject, lots: int) -> None:
        order = data.draw(st.sampled_from([o for o in self.venue.orders if o.is_open]))
        self.venue.fill(order, min(lots * LOT, order.qty - order.filled))

    @precondition(lambda self: any(o.is_open for o in self.venue.orders))
    @rule(data=st.data())
    def venue_cancels(self, data: st.DataObject) -> None:
        order = data.draw(st.sampled_from([o for o in self.venue.orders if o.is_open]))
        self.venue.cancel(order.client_order_id)

    def _restart(self) -> None:
        """Everything but the journal is lost; requests on the wire may still land."""
        self.memory = Memory()
        self.generation += 1

    @rule(ns=st.integers(1, GRACE_NS) | st.just(GRACE_NS + 1))
    def clock_advances(self, ns: int) -> None:
        """Time passes (sometimes just past the grace of every send in flight)."""
        self.now += ns

    # -- invariants

    @invariant()
    def no_two_venue_orders_share_a_client_order_id(self) -> None:
        coids = [o.client_order_id for o in self.venue.orders]
        assert len(coids) == len(set(coids)), "duplicate venue order"

    @invariant()
    def every_venue_order_was_journaled_first(self) -> None:
        for placed in self.venue.orders:
            order = self.journal.orders.get(placed.client_order_id)
            assert order is not None
            assert order.client_order_id == client_order_id(order.intent_id, order.child_index)

    @invariant()
    def the_journal_never_knows_more_fills_than_the_venue(self) -> None:
        for coid, order in self.journal.orders.items():
            placed = self.venue.find(coid)
            venue_filled = D(0) if placed is None else placed.filled
            journal_fills = sum(
                (f.qty for f in self.journal.fills.values() if f.client_order_id == coid), D(0)
            )
            assert order.filled_qty <= venue_filled and journal_fills <= venue_filled

    @invariant()
    def no_intent_is_over_filled_at_the_venue(self) -> None:
        for intent_id, (intent, _) in self.journal.intents.items():
            coids = {c.client_order_id for c in self._children(intent_id)}
            filled = sum((o.filled for o in self.venue.orders if o.client_order_id in coids), D(0))
            assert filled <= intent.qty

    @invariant()
    def nothing_vanished_or_conflicted(self) -> None:
        assert self.alerts == []

    # -- the end: recover, then the journal must agree with the venue

    def teardown(self) -> None:
        if not hasattr(self, "journal"):
            return
        for request_id in sorted(self.memory.awaiting):  # every pending send times out
            coid = self.memory.awaiting.pop(request_id)
            self.journal.orders[coid] = self.journal.orders[coid].moved_to(
                OrderState.UNKNOWN, ts_ns=self.now
            )
        for request in list(self.wire):  # the wire drains: late requests land or are refused
            self._deliver(request, respond=False)
        self._restart()
        for _ in range(4):  # recovery rounds, with a reliable network
            self.now += GRACE_NS + 1
            self._reconcile_all()
            for request in list(self.wire):
                self._deliver(request, respond=True)

        self.no_two_venue_orders_share_a_client_order_id()
        self.every_venue_order_was_journaled_first()
        self.nothing_vanished_or_conflicted()
        for coid, order in self.journal.orders.items():
            placed = self.venue.find(coid)
            journal_fills = sum(
                (f.qty for f in self.journal.fills.values() if f.client_order_id == coid), D(0)
            )
            if placed is None:
                assert order.state is OrderState.REJECTED and order.filled_qty == 0
                assert journal_fills == 0
                continue
            assert order.state is VENUE_STATUS[placed.status], coid
            assert order.filled_qty == placed.filled == journal_fills, coid
        from_journal, from_venue = PositionBook(), PositionBook()
        for fill in self.journal.fills.values():
            from_journal.apply(fill)
        for placed in self.venue.orders:
            for fill in self.venue.fills(placed, intent_id=""):
                from_venue.apply(fill)
        mine, theirs = from_journal.get(VENUE, SYMBOL), from_venue.get(VENUE, SYMBOL)
        assert (mine.qty, mine.quote_flow, mine.fills) == (
            theirs.qty,
            theirs.quote_flow,
            theirs.fills,
        )
        assert position_drift_percent(expected=mine.qty, actual=theirs.qty, tolerance=D(0)) == 0


ExecutionModel.TestCase.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
TestAnyInterleavingEndsWithJournalPositionsEqualToVenueFills = ExecutionModel.TestCase


# --- resolve_order, one decision at a time ---------------------------------------------------


def record(state: OrderState, **kw: object) -> OrderRecord:
    base: dict[str, object] = dict(
        client_order_id="c1",
        intent_id="i1",
        child_index=0,
        venue=VENUE,
        symbol=SYMBOL,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=D("1"),
        limit_price=D("100"),
        state=state,
        created_ts_ns=100,
    )
    base.update(kw)
    return OrderRecord(**base)  # type: ignore[arg-type]


def at_venue(status: str, filled: str = "0", coid: str = "c1") -> VenueOrder:
    return VenueOrder(
        client_order_id=coid,
        venue_order_id="77",
        status=status,
        filled_qty=D(filled),
        quote_qty=D(filled) * 100,
    )


def test_what_the_venue_says_is_applied_through_the_state_machine() -> None:
    order = record(OrderState.UNKNOWN, sent_ts_ns=100)
    resolution = resolve_order(order, at_venue("PARTIALLY_FILLED", "0.4"), now_ns=200, grace_ns=50)
    assert isinstance(resolution, Apply)
    assert resolution.order.state is OrderState.PARTIALLY_FILLED
    assert (resolution.order.filled_qty, resolution.order.venue_order_id) == (D("0.4"), "77")
    assert resolve_order(resolution.order, at_venue("PARTIALLY_FILLED", "0.4"), now_ns=300,
                         grace_ns=50) == Unchanged()  # fmt: skip


def test_an_illegal_venue_answer_is_a_conflict_not_an_exception() -> None:
    filled = record(OrderState.PARTIALLY_FILLED, filled_qty=D("0.5"), venue_order_id="77")
    assert isinstance(resolve_order(filled, at_venue("NEW"), now_ns=1, grace_ns=1), Conflict)
    assert isinstance(
        resolve_order(filled, at_venue("PARTIALLY_FILLED", "0.1"), now_ns=1, grace_ns=1), Conflict
    )
    assert isinstance(resolve_order(filled, at_venue("WEIRD"), now_ns=1, grace_ns=1), Conflict)
    other = at_venue("NEW", coid="c2")
    assert isinstance(resolve_order(filled, other, now_ns=1, grace_ns=1), Conflict)


def test_a_pending_order_the_venue_does_not_know_is_sent_now() -> None:
    order = record(OrderState.PENDING)
    assert resolve_order(order, None, now_ns=10**12, grace_ns=50) == SendNow(
        order=order, reason="journaled, never sent"
    )


@pytest.mark.parametrize("state", [OrderState.SUBMITTING, OrderState.UNKNOWN])
def test_a_sent_order_not_at_the_venue_waits_out_the_grace_then_is_sent_again(
    state: OrderState,
) -> None:
    order = record(state, sent_ts_ns=1_000)
    assert isinstance(resolve_order(order, None, now_ns=1_049, grace_ns=50), Wait)
    resolution = resolve_order(order, None, now_ns=1_050, grace_ns=50)
    assert isinstance(resolution, SendNow)
    assert resolution.order == msgspec.structs.replace(order, state=OrderState.PENDING)
    # never sent: the age counts from the journal time
    assert isinstance(resolve_order(record(state), None, now_ns=151, grace_ns=50), SendNow)


def test_an_order_of_a_canceled_parent_that_never_reached_the_venue_is_not_sent() -> None:
    for order in (record(OrderState.PENDING), record(OrderState.UNKNOWN, sent_ts_ns=100)):
        resolution = resolve_order(order, None, now_ns=10**6, grace_ns=50, resend=False)
        assert isinstance(resolution, Apply) and resolution.order.state is OrderState.REJECTED
    young = record(OrderState.SUBMITTING, sent_ts_ns=100)
    assert isinstance(resolve_order(young, None, now_ns=120, grace_ns=50, resend=False), Wait)


@pytest.mark.parametrize(
    "state",
    [OrderState.OPEN, OrderState.PARTIALLY_FILLED, OrderState.FILLED, OrderState.CANCELED],
)
def test_an_acknowledged_order_the_venue_no_longer_knows_has_vanished(state: OrderState) -> None:
    assert isinstance(resolve_order(record(state), None, now_ns=10**9, grace_ns=50), Vanished)


def test_position_drift_is_zero_within_tolerance_and_relative_to_the_larger_otherwise() -> None:
    assert position_drift_percent(expected=D("1"), actual=D("1.00005"), tolerance=D("0.0001")) == 0
    assert position_drift_percent(expected=D("1"), actual=D("0.8"), tolerance=D(0)) == 20.0
    assert position_drift_percent(expected=D("-0.5"), actual=D(0), tolerance=D(0)) == 100.0
    assert position_drift_percent(expected=D(0), actual=D(0), tolerance=D(0)) == 0.0
    assert venue_position(balance=D("1.25"), baseline=D("1")) == D("0.25")
    with pytest.raises(ValueError, match="tolerance"):
        position_drift_percent(expected=D(1), actual=D(1), tolerance=D(-1))


# --- the order state machine under random venue reports --------------------------------------

RANK = {
    OrderState.PENDING: 0,
    OrderState.SUBMITTING: 1,
    OrderState.UNKNOWN: 1,
    OrderState.OPEN: 2,
    OrderState.PARTIALLY_FILLED: 3,
    OrderState.FILLED: 4,
    OrderState.CANCELED: 4,
    OrderState.REJECTED: 4,
    OrderState.EXPIRED: 4,
}


@settings(max_examples=300, deadline=None)
@given(
    start=st.sampled_from([OrderState.SUBMITTING, OrderState.UNKNOWN]),
    reports=st.lists(
        st.tuples(st.sampled_from([*VENUE_STATUS, "BOGUS"]), st.integers(0, 10)), max_size=25
    ),
)
def test_venue_reports_never_move_an_order_backwards_nor_decrease_its_fills(
    start: OrderState, reports: list[tuple[str, int]]
) -> None:
    order = record(start, qty=D("10"))
    for status, filled in reports:
        try:
            updated = order.with_venue_status(
                venue_status=status,
                filled_qty=D(filled),
                quote_qty=D(filled) * 100,
                venue_order_id="77",
                ts_ns=1,
            )
        except OrderStateError:
            continue  # refused, and the record is immutable: nothing changed
        assert RANK[updated.state] >= RANK[order.state]
        assert updated.filled_qty >= order.filled_qty
        assert not order.state.is_terminal or updated.state is order.state
        assert updated is order or updated.seq == order.seq + 1
        order = updated
