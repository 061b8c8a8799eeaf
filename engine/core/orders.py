"""The order state machine.

    PENDING ─► SUBMITTING ─► OPEN ─► PARTIALLY_FILLED ─► FILLED
                   │           │            │
                   │           └────────────┴─► CANCELED | EXPIRED
                   ├─► REJECTED
                   └─► UNKNOWN (the send timed out) ─► resolved by querying clientOrderId

The venue is the source of truth: a venue-reported status may move an order forward past states
we never saw (SUBMITTING straight to FILLED), but never backwards, and filled quantity never
decreases. PENDING is journaled before anything is sent; that is what makes the send idempotent.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

import msgspec

from engine.core.errors import OrderStateError
from engine.core.messages import OrderType, Side, TimeInForce


class OrderState(StrEnum):
    PENDING = "PENDING"
    SUBMITTING = "SUBMITTING"
    OPEN = "OPEN"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED}
)

_FROM_VENUE_OR_TIMEOUT = frozenset(
    {
        OrderState.OPEN,
        OrderState.PARTIALLY_FILLED,
        OrderState.FILLED,
        OrderState.CANCELED,
        OrderState.REJECTED,
        OrderState.EXPIRED,
        OrderState.UNKNOWN,
    }
)

ALLOWED_TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    OrderState.PENDING: frozenset({OrderState.SUBMITTING, OrderState.REJECTED}),
    OrderState.SUBMITTING: _FROM_VENUE_OR_TIMEOUT,
    OrderState.UNKNOWN: _FROM_VENUE_OR_TIMEOUT,
    OrderState.OPEN: frozenset(
        {
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCELED,
            OrderState.EXPIRED,
            OrderState.UNKNOWN,
        }
    ),
    OrderState.PARTIALLY_FILLED: frozenset(
        {OrderState.FILLED, OrderState.CANCELED, OrderState.EXPIRED, OrderState.UNKNOWN}
    ),
    OrderState.FILLED: frozenset(),
    OrderState.CANCELED: frozenset(),
    OrderState.REJECTED: frozenset(),
    OrderState.EXPIRED: frozenset(),
}

# Binance order statuses (REST and executionReport) mapped onto ours.
VENUE_STATUS: dict[str, OrderState] = {
    "NEW": OrderState.OPEN,
    "PENDING_NEW": OrderState.OPEN,
    "PARTIALLY_FILLED": OrderState.PARTIALLY_FILLED,
    "FILLED": OrderState.FILLED,
    "CANCELED": OrderState.CANCELED,
    "PENDING_CANCEL": OrderState.OPEN,
    "REJECTED": OrderState.REJECTED,
    "EXPIRED": OrderState.EXPIRED,
    "EXPIRED_IN_MATCH": OrderState.EXPIRED,
}


# Final at the venue: once the venue closed an order it never reopens it.
VENUE_FINAL_STATES = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.EXPIRED})


def is_stale_report(current: OrderState, venue_status: str) -> bool:
    """A report that says an order the venue already closed is still working was sent before
    it closed: a pushed NEW arriving after the cancel's REST answer, or a poll snapshot taken
    before it. It is old news, not a conflict (a REJECTED of ours is not final at the venue: a
    report that contradicts it is a conflict)."""
    target = VENUE_STATUS.get(venue_status)
    return current in VENUE_FINAL_STATES and target is not None and not target.is_terminal


def can_transition(current: OrderState, target: OrderState) -> bool:
    return target == current or target in ALLOWED_TRANSITIONS[current]


def transition(current: OrderState, target: OrderState) -> OrderState:
    if not can_transition(current, target):
        raise OrderStateError(f"illegal order transition {current} -> {target}")
    return target


class OrderRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One child order as the journal knows it."""

    client_order_id: str
    intent_id: str
    child_index: int
    venue: str
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    limit_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    state: OrderState = OrderState.PENDING
    venue_order_id: str = ""
    filled_qty: Decimal = Decimal(0)
    quote_qty: Decimal = Decimal(0)
    reason: str = ""
    correlation_id: str = ""
    created_ts_ns: int = 0
    sent_ts_ns: int = 0
    updated_ts_ns: int = 0
    tick_recv_ts_ns: int = 0
    reference_price: float = 0.0
    seq: int = 0
    reduce_only: bool = False
    """Sent with the venue's reduce-only flag (futures): it can never open or flip a position."""

    @property
    def remaining_qty(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def avg_price(self) -> Decimal | None:
        if self.filled_qty == 0:
            return None
        return self.quote_qty / self.filled_qty

    def moved_to(self, target: OrderState, *, ts_ns: int, reason: str = "") -> OrderRecord:
        return msgspec.structs.replace(
            self,
            state=transition(self.state, target),
            updated_ts_ns=ts_ns,
            reason=reason or self.reason,
            seq=self.seq + 1,
        )

    def with_venue_status(
        self,
        *,
        venue_status: str,
        filled_qty: Decimal,
        quote_qty: Decimal,
        venue_order_id: str,
        ts_ns: int,
        reason: str = "",
    ) -> OrderRecord:
        """Apply what the venue says about this order; returns self when nothing changed."""
        target = VENUE_STATUS.get(venue_status)
        if target is None:
            raise OrderStateError(f"unknown venue order status {venue_status!r}")
        if self.state.is_terminal and target == self.state and filled_qty == self.filled_qty:
            return self
        if filled_qty < self.filled_qty:
            raise OrderStateError(
                f"filled quantity of {self.client_order_id} went backwards:"
                f" {self.filled_qty} -> {filled_qty}"
            )
        if (
            target == self.state
            and filled_qty == self.filled_qty
            and venue_order_id
            in (
                "",
                self.venue_order_id,
            )
        ):
            return self
        return msgspec.structs.replace(
            self,
            state=transition(self.state, target),
            filled_qty=filled_qty,
            quote_qty=quote_qty,
            venue_order_id=venue_order_id or self.venue_order_id,
            updated_ts_ns=ts_ns,
            reason=reason or self.reason,
            seq=self.seq + 1,
        )
