"""Resolving an order at the venue, and position drift: the pure decisions of recovery.

The execution service asks the venue about an order by clientOrderId (on start for every
non-terminal journal order, after a send timed out, when the poller sees a change) and hands the
answer to `resolve_order`, which says what to do:

    venue knows it ──► with_venue_status ──┬─► Apply(order)      journal it (then its fills)
                                           ├─► Unchanged()       the journal already says so
                                           └─► Conflict(reason)  the venue's answer is illegal
                                                                 for our state: log, alert
    venue: unknown order
        PENDING ────────────────────────────► SendNow(order)     journaled, never sent
        SUBMITTING | UNKNOWN, age < grace ──► Wait(reason)       the request may be in flight
        SUBMITTING | UNKNOWN, age >= grace ─► SendNow(PENDING)   it never reached the venue
        OPEN | PARTIALLY_FILLED | terminal ─► Vanished(reason)   the venue lost it: alert

This mirrors engine.execution.service (_reconcile, _on_not_at_venue, _apply_venue_order).
Age is measured from sent_ts_ns (or created_ts_ns when never sent). A resend keeps the same
clientOrderId. Its safety rests on the grace period (the service uses twice the request timeout)
being longer than the venue's recvWindow: a request older than recvWindow is refused by the
venue, so once the grace has passed the first request can no longer land. Binance itself only
refuses a duplicate clientOrderId while the first order is still open, so the duplicate check
alone would not prevent a double after a fast fill.

`resend=False` (the caller wants the order canceled, or its parent is done) turns each SendNow
into Apply(order moved to REJECTED): an order that never reached the venue is not sent any more.

Unchanged carries no order: fills are keyed by venue trade id, so the caller still fetches the
venue's trades when the order has filled quantity the journal has no fills for.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from engine.core.errors import OrderStateError
from engine.core.orders import OrderRecord, OrderState


class VenueOrder(msgspec.Struct, frozen=True, kw_only=True):
    """What the venue says about one order (Binance GET /api/v3/order, by origClientOrderId)."""

    client_order_id: str
    venue_order_id: str
    status: str
    """The Binance status string (NEW, PARTIALLY_FILLED, FILLED, CANCELED, ...)."""
    filled_qty: Decimal
    quote_qty: Decimal


class Apply(msgspec.Struct, frozen=True, kw_only=True):
    """Journal this record: the venue moved the order on (or it will not be sent any more)."""

    order: OrderRecord


class Unchanged(msgspec.Struct, frozen=True, kw_only=True):
    """The journal already says what the venue says."""


class SendNow(msgspec.Struct, frozen=True, kw_only=True):
    """The order is not at the venue and cannot arrive there any more: send it (same id)."""

    order: OrderRecord
    """In PENDING state; sending moves it to SUBMITTING (journaled first)."""
    reason: str


class Wait(msgspec.Struct, frozen=True, kw_only=True):
    """Not at the venue yet, but the request may still be in flight: ask again later."""

    reason: str


class Vanished(msgspec.Struct, frozen=True, kw_only=True):
    """The venue does not know an order it acknowledged: alert, never resend."""

    reason: str


class Conflict(msgspec.Struct, frozen=True, kw_only=True):
    """The venue's answer cannot be applied to our record (backwards, unknown status, another
    order): alert, leave the journal as it is."""

    reason: str


Resolution = Apply | Unchanged | SendNow | Wait | Vanished | Conflict


def resolve_order(
    order: OrderRecord,
    venue: VenueOrder | None,
    *,
    now_ns: int,
    grace_ns: int,
    resend: bool = True,
) -> Resolution:
    """Decide what the venue's answer about `order` means; `venue` None is "unknown order"."""
    if venue is not None:
        if venue.client_order_id != order.client_order_id:
            return Conflict(
                reason=f"venue answered about {venue.client_order_id!r}"
                f" when asked about {order.client_order_id!r}"
            )
        try:
            updated = order.with_venue_status(
                venue_status=venue.status,
                filled_qty=venue.filled_qty,
                quote_qty=venue.quote_qty,
                venue_order_id=venue.venue_order_id,
                ts_ns=now_ns,
            )
        except OrderStateError as exc:
            return Conflict(reason=str(exc))
        return Unchanged() if updated is order else Apply(order=updated)

    age_ns = now_ns - (order.sent_ts_ns or order.created_ts_ns)
    if order.state is OrderState.PENDING:
        return _send_or_drop(order, now_ns=now_ns, resend=resend, why="journaled, never sent")
    if order.state in (OrderState.SUBMITTING, OrderState.UNKNOWN):
        if age_ns < grace_ns:
            return Wait(
                reason=f"{order.state.value} order not at the venue yet"
                f" ({age_ns} ns old, grace {grace_ns} ns): the request may be in flight"
            )
        return _send_or_drop(
            msgspec.structs.replace(order, state=OrderState.PENDING),
            now_ns=now_ns,
            resend=resend,
            why=f"{order.state.value} order never reached the venue ({age_ns} ns old)",
        )
    return Vanished(reason=f"{order.state.value} order unknown at the venue")


def _send_or_drop(order: OrderRecord, *, now_ns: int, resend: bool, why: str) -> Resolution:
    if resend:
        return SendNow(order=order, reason=why)
    return Apply(order=order.moved_to(OrderState.REJECTED, ts_ns=now_ns, reason=f"not sent: {why}"))


def venue_position(*, balance: Decimal, baseline: Decimal) -> Decimal:
    """Our position as the venue sees it: the base-asset balance minus the balance we had
    before we traded."""
    return balance - baseline


def position_drift_percent(*, expected: Decimal, actual: Decimal, tolerance: Decimal) -> float:
    """How far the journal's position (expected) is from the venue's (actual), in percent of the
    larger; 0.0 within tolerance (commission dust, lot rounding)."""
    if tolerance < 0:
        raise ValueError(f"tolerance must not be negative, got {tolerance}")
    difference = abs(expected - actual)
    if difference <= tolerance:
        return 0.0
    return float(100 * difference / max(abs(expected), abs(actual)))


__all__ = [
    "Apply",
    "Conflict",
    "Resolution",
    "SendNow",
    "Unchanged",
    "Vanished",
    "VenueOrder",
    "Wait",
    "position_drift_percent",
    "resolve_order",
    "venue_position",
]
