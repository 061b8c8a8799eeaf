"""Adoption: the venue orders a journal's lost tail recorded, found again. Pure decisions.

With `execution.journal_durability = "process"` a journal commit is a write to the OS, not to
the disk. A machine crash (or a database server crash) may therefore cost the journal its most
recent writes: never an earlier one (SQLite's WAL and PostgreSQL's WAL are both replayed up to
the first record that did not reach the disk), so what survives is a prefix. The venue still
has every order those lost writes recorded, under a clientOrderId derived from its intent id
(engine.core.ids), and the bus still has the intents (order requests stay on `orders.{venue}`
until trimmed, acknowledged or not). Recovery puts the two together before anything is sent:

    journal: clientOrderIds, parents ─┐
    bus: order requests since         ├─► plan_adoption ─► adopt    journal it (state and fills
         horizon.requests_since_ns    │                           from the venue), publish it;
    journal: parents (their intents)  │                           never send it
    venue: allOrders since            │                 ─► parents  algo intents whose parent
         horizon.venue_since_ms ──────┘                           record was lost: restore it
                                                        ─► unknown  our id rule, no intent the
                                                                    bus or journal still holds

A request still pending on the stream is then redelivered and finds its order in the journal
(the desk's "redelivered -> reconcile" path), so it is completed from the venue, never placed
again.

The horizon: every write the journal lost came after the last write it kept, and an order is
journaled before it is sent, so a lost order reached the venue after the journal's last
surviving write (less a slack for writes stamped out of order and for the venue's clock; a
request outside Binance's largest recvWindow, 60 s, is refused, so our clocks agree within
that). Its intent was approved before it was sent: possibly long before when requests queued
while execution was down, which `adoption_lookback_ms` covers. An empty journal may have lost
everything: the horizon is then the lookback before now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

import msgspec

from engine.core.ids import family, parse_client_order_id
from engine.core.messages import Intent, OrderRequest, OrderType, Side, TimeInForce
from engine.core.orders import OrderRecord, OrderState

SLACK_NS = 60 * 1_000_000_000
"""Writes stamped out of order, and the venue's clock against ours (Binance refuses a request
more than recvWindow, at most 60 s, away from its own time)."""


class ListedOrder(msgspec.Struct, frozen=True, kw_only=True):
    """One order as the venue lists it (Binance GET /api/v3/allOrders)."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    order_type: str
    """Binance's type: MARKET, LIMIT, LIMIT_MAKER, ..."""
    qty: Decimal
    price: Decimal
    time_in_force: str
    status: str
    filled_qty: Decimal
    quote_qty: Decimal
    time_ms: int


class Horizon(msgspec.Struct, frozen=True, kw_only=True):
    venue_since_ms: int
    """Ask the venue for the orders placed at or after this time (its clock, ms)."""
    requests_since_ns: int
    """Order requests approved at or after this time are the candidate intents."""


class RestoredParent(msgspec.Struct, frozen=True, kw_only=True):
    intent: Intent
    created_ts_ns: int
    state: str
    """active, or canceling when the bus holds a cancel request for it."""


class Unexplained(msgspec.Struct, frozen=True, kw_only=True):
    order: ListedOrder
    reason: str


class AdoptionPlan(msgspec.Struct, frozen=True, kw_only=True):
    adopt: tuple[OrderRecord, ...] = ()
    """New journal records, SUBMITTING as the lost insert had them; the caller then applies the
    venue's state and fills to each, as to any answer from the venue."""
    parents: tuple[RestoredParent, ...] = ()
    unknown: tuple[Unexplained, ...] = ()


def last_write_ns(orders: Iterable[OrderRecord], parent_created_ns: Iterable[int]) -> int | None:
    """The time of the journal's most recent surviving write, as its records stamp it; None
    when it holds nothing."""
    stamps = [max(o.created_ts_ns, o.sent_ts_ns, o.updated_ts_ns) for o in orders]
    stamps.extend(parent_created_ns)
    return max(stamps) if stamps else None


def adoption_horizon(*, last_write_ns: int | None, now_ns: int, lookback_ns: int) -> Horizon:
    """Where to look for what a lost tail recorded (see the module's docstring)."""
    if lookback_ns <= 0:
        raise ValueError(f"lookback must be positive, got {lookback_ns}")
    last = now_ns - lookback_ns if last_write_ns is None else min(last_write_ns, now_ns)
    return Horizon(
        venue_since_ms=max(0, (last - SLACK_NS) // 1_000_000),
        requests_since_ns=last - SLACK_NS - lookback_ns,
    )


def plan_adoption(
    *,
    journal_orders: Mapping[str, str],
    journal_parents: Iterable[str],
    requests: Sequence[OrderRequest],
    parent_intents: Sequence[Intent],
    venue_orders: Sequence[ListedOrder],
    venue: str,
) -> AdoptionPlan:
    """What to adopt, which parents to restore, and what no intent explains.

    `journal_orders`: clientOrderId -> intent id of every order the journal has;
    `journal_parents`: the intent ids of every parent it has (any state);
    `requests`: the order requests the bus holds since the horizon (new and cancel);
    `parent_intents`: the intents of the journal's unfinished parents (their children may be
    placed long after their request left the horizon);
    `venue_orders`: the venue's orders since the horizon, every symbol."""
    intents: dict[str, Intent] = {}
    approved: dict[str, int] = {}
    canceled: set[str] = set()
    for request in requests:
        intent = request.intent
        if intent.action == "cancel":
            canceled.add(intent.cancel_intent_id)
        elif intent.intent_id and intent.intent_id not in intents:
            intents[intent.intent_id] = intent
            approved[intent.intent_id] = request.approved_ts_ns
    for intent in parent_intents:
        intents.setdefault(intent.intent_id, intent)
    by_family = {family(i): intent for i, intent in intents.items()}

    adopt: list[OrderRecord] = []
    unknown: list[Unexplained] = []
    for listed in sorted(venue_orders, key=lambda o: (o.time_ms, o.venue_order_id)):
        if listed.client_order_id in journal_orders:
            continue
        parsed = parse_client_order_id(listed.client_order_id)
        if parsed is None:
            continue  # not under our rule: another client on the account, a manual order
        token, child = parsed
        owner = by_family.get(token)
        problem = _mismatch(listed, owner, child)
        if owner is None or problem:
            unknown.append(Unexplained(order=listed, reason=problem))
            continue
        adopt.append(_record(listed, owner, child, venue))

    parents_known = set(journal_parents)
    with_children = set(journal_orders.values()) | {o.intent_id for o in adopt}
    restored = tuple(
        RestoredParent(
            intent=intent,
            created_ts_ns=approved.get(intent_id, intent.created_ts_ns),
            state="canceling" if intent_id in canceled else "active",
        )
        for intent_id, intent in intents.items()
        if intent.algo and intent_id not in parents_known and intent_id in with_children
    )
    return AdoptionPlan(adopt=tuple(adopt), parents=restored, unknown=tuple(unknown))


def _mismatch(listed: ListedOrder, intent: Intent | None, child: int) -> str:
    if intent is None:
        return "no intent on the bus or in the journal has this clientOrderId's family"
    if listed.symbol != intent.symbol:
        return f"placed on {listed.symbol}, its intent is for {intent.symbol}"
    if listed.side is not intent.side:
        return f"a {listed.side.value} order, its intent is a {intent.side.value}"
    if not intent.algo and child != 0:
        return f"child {child} of an intent sent as one order"
    if listed.order_type not in OrderType.__members__:
        return f"an order type we never send ({listed.order_type})"
    return ""


def _record(listed: ListedOrder, intent: Intent, child: int, venue: str) -> OrderRecord:
    placed_ns = listed.time_ms * 1_000_000
    order_type = OrderType(listed.order_type)
    tif = listed.time_in_force
    pending = OrderRecord(
        client_order_id=listed.client_order_id,
        intent_id=intent.intent_id,
        child_index=child,
        venue=venue,
        symbol=listed.symbol,
        side=listed.side,
        order_type=order_type,
        qty=listed.qty,
        limit_price=None if order_type is OrderType.MARKET else listed.price,
        time_in_force=TimeInForce(tif) if tif in TimeInForce.__members__ else TimeInForce.GTC,
        correlation_id=intent.correlation_id,
        created_ts_ns=placed_ns,
        updated_ts_ns=placed_ns,
        reference_price=intent.reference_price,
    )
    submitting = pending.moved_to(OrderState.SUBMITTING, ts_ns=placed_ns)
    return msgspec.structs.replace(submitting, sent_ts_ns=placed_ns)


__all__ = [
    "SLACK_NS",
    "AdoptionPlan",
    "Horizon",
    "ListedOrder",
    "RestoredParent",
    "Unexplained",
    "adoption_horizon",
    "last_write_ns",
    "plan_adoption",
]
