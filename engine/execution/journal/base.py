"""The journal contract, shared by every backend (SQLite embedded, PostgreSQL for production).

Write-ahead: an order is journaled before it is sent, and every state change and fill is
journaled before it is published. Fills are keyed on (venue, trade_id): recording the same fill
twice is a no-op. An order update only lands if its `seq` is newer than the stored one.

Parents: an intent worked by an execution algo (maker-first, split, TWAP) is journaled as a
parent (the intent itself, when it started, active | canceling | done) before its first child;
the algo's decisions depend only on the parent and its children, so a restarted or newly elected
instance resumes it from the journal.

Fencing: a journal shared by an active/standby pair carries the highest leadership epoch ever
claimed (meta key `epoch`). `claim(epoch)` records a new leader's epoch and refuses an older
one; every write checks, inside its own transaction, that the journal's epoch is not newer than
the writer's, and raises FencingError otherwise. A deposed leader therefore cannot write; and
since an order is journaled before it is sent, it cannot send either. Epoch 0 means a single
instance without leadership (no other writer can exist).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

import msgspec

from engine.core.messages import Fill, OrderType, Side, TimeInForce
from engine.core.orders import OrderRecord, OrderState


class ParentRecord(msgspec.Struct, frozen=True, kw_only=True):
    intent_id: str
    payload: str
    """The Intent as JSON (engine.core.messages.encode)."""
    created_ts_ns: int
    state: str = "active"
    """active | canceling | done"""
    outcome: str = ""
    reason: str = ""


PARENT_STATES = ("active", "canceling", "done")


class Journal(Protocol):
    @property
    def epoch(self) -> int:
        """The fencing epoch this instance writes with (set by claim)."""
        ...

    async def open(self) -> None: ...

    async def claim(self, epoch: int) -> None:
        """Become the writer with this epoch; FencingError if a newer epoch was claimed."""
        ...

    async def insert_order(self, order: OrderRecord) -> bool: ...

    async def update_order(self, order: OrderRecord) -> bool: ...

    async def get_order(self, client_order_id: str) -> OrderRecord | None: ...

    async def open_orders(self) -> list[OrderRecord]: ...

    async def orders_for_intent(self, intent_id: str) -> list[OrderRecord]: ...

    async def all_orders(self) -> list[OrderRecord]: ...

    async def record_fill(self, fill: Fill) -> bool: ...

    async def fills(self) -> list[Fill]: ...

    async def fills_for_order(self, client_order_id: str) -> list[Fill]: ...

    async def insert_parent(self, parent: ParentRecord) -> bool:
        """Journal a new parent; False (and nothing written) if the intent id exists."""
        ...

    async def update_parent(
        self, intent_id: str, *, state: str, outcome: str = "", reason: str = ""
    ) -> bool:
        """Move a parent forward (active → canceling → done); never backwards."""
        ...

    async def get_parent(self, intent_id: str) -> ParentRecord | None: ...

    async def active_parents(self) -> list[ParentRecord]:
        """Parents not done, oldest first."""
        ...

    async def parent_ids(self) -> set[str]:
        """The intent id of every parent ever journaled (which intents are algo parents)."""
        ...

    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...

    async def make_durable(self) -> None:
        """Make every write committed so far durable, whatever the durability mode. The caller
        is about to let the bus forget a request whose effect the venue cannot reveal to a
        recovery (an algo parent no child of which has reached the venue yet, a cancel's
        marks): such a write must not be lost with an un-synced tail. It is never on an
        order's path: the order has left. A no-op at "fsync", where every commit is durable."""
        ...

    async def close(self) -> None: ...


ADDED_COLUMNS = (("orders", "reduce_only", "INTEGER NOT NULL DEFAULT 0"),)
"""Columns added after a journal's first release: an older journal gets them when opened."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    intent_id TEXT NOT NULL,
    child_index INTEGER NOT NULL,
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    order_type TEXT NOT NULL,
    qty TEXT NOT NULL,
    limit_price TEXT,
    time_in_force TEXT NOT NULL,
    state TEXT NOT NULL,
    venue_order_id TEXT NOT NULL DEFAULT '',
    filled_qty TEXT NOT NULL DEFAULT '0',
    quote_qty TEXT NOT NULL DEFAULT '0',
    reason TEXT NOT NULL DEFAULT '',
    correlation_id TEXT NOT NULL DEFAULT '',
    created_ts_ns INTEGER NOT NULL,
    sent_ts_ns INTEGER NOT NULL DEFAULT 0,
    updated_ts_ns INTEGER NOT NULL DEFAULT 0,
    tick_recv_ts_ns INTEGER NOT NULL DEFAULT 0,
    reference_price REAL NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL DEFAULT 0,
    reduce_only INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS orders_by_intent ON orders(intent_id);
CREATE INDEX IF NOT EXISTS orders_by_state ON orders(state);
CREATE TABLE IF NOT EXISTS parents (
    intent_id TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    created_ts_ns INTEGER NOT NULL,
    state TEXT NOT NULL,
    outcome TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS parents_by_state ON parents(state);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fills (
    venue TEXT NOT NULL,
    trade_id INTEGER NOT NULL,
    client_order_id TEXT NOT NULL,
    intent_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty TEXT NOT NULL,
    price TEXT NOT NULL,
    commission TEXT NOT NULL,
    commission_asset TEXT NOT NULL,
    is_maker INTEGER NOT NULL,
    venue_ts_ms INTEGER NOT NULL,
    correlation_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (venue, trade_id)
);
CREATE INDEX IF NOT EXISTS fills_by_order ON fills(client_order_id);
"""

ORDER_COLUMNS = (
    "client_order_id",
    "intent_id",
    "child_index",
    "venue",
    "symbol",
    "side",
    "order_type",
    "qty",
    "limit_price",
    "time_in_force",
    "state",
    "venue_order_id",
    "filled_qty",
    "quote_qty",
    "reason",
    "correlation_id",
    "created_ts_ns",
    "sent_ts_ns",
    "updated_ts_ns",
    "tick_recv_ts_ns",
    "reference_price",
    "seq",
    "reduce_only",
)


def order_row(order: OrderRecord) -> tuple[Any, ...]:
    return (
        order.client_order_id,
        order.intent_id,
        order.child_index,
        order.venue,
        order.symbol,
        order.side.value,
        order.order_type.value,
        str(order.qty),
        None if order.limit_price is None else str(order.limit_price),
        order.time_in_force.value,
        order.state.value,
        order.venue_order_id,
        str(order.filled_qty),
        str(order.quote_qty),
        order.reason,
        order.correlation_id,
        order.created_ts_ns,
        order.sent_ts_ns,
        order.updated_ts_ns,
        order.tick_recv_ts_ns,
        order.reference_price,
        order.seq,
        int(order.reduce_only),
    )


def order_from_row(row: Any) -> OrderRecord:
    return OrderRecord(
        client_order_id=row["client_order_id"],
        intent_id=row["intent_id"],
        child_index=row["child_index"],
        venue=row["venue"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        order_type=OrderType(row["order_type"]),
        qty=Decimal(row["qty"]),
        limit_price=None if row["limit_price"] is None else Decimal(row["limit_price"]),
        time_in_force=TimeInForce(row["time_in_force"]),
        state=OrderState(row["state"]),
        venue_order_id=row["venue_order_id"],
        filled_qty=Decimal(row["filled_qty"]),
        quote_qty=Decimal(row["quote_qty"]),
        reason=row["reason"],
        correlation_id=row["correlation_id"],
        created_ts_ns=row["created_ts_ns"],
        sent_ts_ns=row["sent_ts_ns"],
        updated_ts_ns=row["updated_ts_ns"],
        tick_recv_ts_ns=row["tick_recv_ts_ns"],
        reference_price=row["reference_price"],
        seq=row["seq"],
        reduce_only=bool(row["reduce_only"]),
    )


def fill_from_row(row: Any) -> Fill:
    return Fill(
        correlation_id=row["correlation_id"],
        venue=row["venue"],
        symbol=row["symbol"],
        trade_id=row["trade_id"],
        client_order_id=row["client_order_id"],
        intent_id=row["intent_id"],
        side=Side(row["side"]),
        qty=Decimal(row["qty"]),
        price=Decimal(row["price"]),
        commission=Decimal(row["commission"]),
        commission_asset=row["commission_asset"],
        is_maker=bool(row["is_maker"]),
        venue_ts_ms=row["venue_ts_ms"],
    )


def parent_from_row(row: Any) -> ParentRecord:
    return ParentRecord(
        intent_id=row["intent_id"],
        payload=row["payload"],
        created_ts_ns=row["created_ts_ns"],
        state=row["state"],
        outcome=row["outcome"],
        reason=row["reason"],
    )
