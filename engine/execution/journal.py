"""Write-ahead order journal.

An order is journaled (PENDING) before it is sent, and every state change and fill is journaled
before it is published. SQLite in WAL mode with synchronous=FULL is the embedded default: a
committed row survives kill -9 and power loss. Fills are keyed on (venue, trade_id), so recording
the same fill twice is a no-op. All calls run on one dedicated thread: sqlite3 connections are not
shared across threads, and the event loop never waits on an fsync.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from engine.core.messages import Fill, OrderType, Side, TimeInForce
from engine.core.orders import TERMINAL_STATES, OrderRecord, OrderState

_SCHEMA = """
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
    seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS orders_by_intent ON orders(intent_id);
CREATE INDEX IF NOT EXISTS orders_by_state ON orders(state);
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
"""

_ORDER_COLUMNS = (
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
)


class Journal(Protocol):
    async def insert_order(self, order: OrderRecord) -> bool: ...
    async def update_order(self, order: OrderRecord) -> bool: ...
    async def get_order(self, client_order_id: str) -> OrderRecord | None: ...
    async def open_orders(self) -> list[OrderRecord]: ...
    async def orders_for_intent(self, intent_id: str) -> list[OrderRecord]: ...
    async def record_fill(self, fill: Fill) -> bool: ...
    async def fills(self) -> list[Fill]: ...
    async def close(self) -> None: ...


def _order_row(order: OrderRecord) -> tuple[Any, ...]:
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
    )


def order_from_row(row: sqlite3.Row | dict[str, Any]) -> OrderRecord:
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
    )


def fill_from_row(row: sqlite3.Row | dict[str, Any]) -> Fill:
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


class SqliteJournalSync:
    """The synchronous journal; also what offline tools (the harness summary) read."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only:
            uri = f"file:{self.path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        self._db.row_factory = sqlite3.Row

    def insert_order(self, order: OrderRecord) -> bool:
        placeholders = ",".join("?" * len(_ORDER_COLUMNS))
        cursor = self._db.execute(
            f"INSERT OR IGNORE INTO orders ({','.join(_ORDER_COLUMNS)}) VALUES ({placeholders})",
            _order_row(order),
        )
        return cursor.rowcount == 1

    def update_order(self, order: OrderRecord) -> bool:
        """Write a newer version of an order; an older or equal seq is ignored (False)."""
        assignments = ",".join(f"{c}=?" for c in _ORDER_COLUMNS[1:])
        cursor = self._db.execute(
            f"UPDATE orders SET {assignments} WHERE client_order_id=? AND seq<?",
            (*_order_row(order)[1:], order.client_order_id, order.seq),
        )
        return cursor.rowcount == 1

    def get_order(self, client_order_id: str) -> OrderRecord | None:
        row = self._db.execute(
            "SELECT * FROM orders WHERE client_order_id=?", (client_order_id,)
        ).fetchone()
        return None if row is None else order_from_row(row)

    def open_orders(self) -> list[OrderRecord]:
        terminal = tuple(s.value for s in TERMINAL_STATES)
        rows = self._db.execute(
            f"SELECT * FROM orders WHERE state NOT IN ({','.join('?' * len(terminal))})"
            " ORDER BY created_ts_ns",
            terminal,
        ).fetchall()
        return [order_from_row(r) for r in rows]

    def orders_for_intent(self, intent_id: str) -> list[OrderRecord]:
        rows = self._db.execute(
            "SELECT * FROM orders WHERE intent_id=? ORDER BY child_index", (intent_id,)
        ).fetchall()
        return [order_from_row(r) for r in rows]

    def all_orders(self) -> list[OrderRecord]:
        rows = self._db.execute("SELECT * FROM orders ORDER BY created_ts_ns").fetchall()
        return [order_from_row(r) for r in rows]

    def record_fill(self, fill: Fill) -> bool:
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO fills (venue, trade_id, client_order_id, intent_id, symbol,"
            " side, qty, price, commission, commission_asset, is_maker, venue_ts_ms,"
            " correlation_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                fill.venue,
                fill.trade_id,
                fill.client_order_id,
                fill.intent_id,
                fill.symbol,
                fill.side.value,
                str(fill.qty),
                str(fill.price),
                str(fill.commission),
                fill.commission_asset,
                int(fill.is_maker),
                fill.venue_ts_ms,
                fill.correlation_id,
            ),
        )
        return cursor.rowcount == 1

    def fills(self) -> list[Fill]:
        rows = self._db.execute("SELECT * FROM fills ORDER BY venue_ts_ms, trade_id").fetchall()
        return [fill_from_row(r) for r in rows]

    def close(self) -> None:
        self._db.close()


class SqliteJournal:
    """Async facade: every call runs on the journal's own thread."""

    def __init__(self, path: str | Path) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._sync: SqliteJournalSync | None = None
        self._path = path

    async def open(self) -> None:
        self._sync = await self._run(SqliteJournalSync, self._path)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def sync(self) -> SqliteJournalSync:
        if self._sync is None:
            raise RuntimeError("journal is not open")
        return self._sync

    async def insert_order(self, order: OrderRecord) -> bool:
        return bool(await self._run(self.sync.insert_order, order))

    async def update_order(self, order: OrderRecord) -> bool:
        return bool(await self._run(self.sync.update_order, order))

    async def get_order(self, client_order_id: str) -> OrderRecord | None:
        result: OrderRecord | None = await self._run(self.sync.get_order, client_order_id)
        return result

    async def open_orders(self) -> list[OrderRecord]:
        result: list[OrderRecord] = await self._run(self.sync.open_orders)
        return result

    async def orders_for_intent(self, intent_id: str) -> list[OrderRecord]:
        result: list[OrderRecord] = await self._run(self.sync.orders_for_intent, intent_id)
        return result

    async def record_fill(self, fill: Fill) -> bool:
        return bool(await self._run(self.sync.record_fill, fill))

    async def fills(self) -> list[Fill]:
        result: list[Fill] = await self._run(self.sync.fills)
        return result

    async def close(self) -> None:
        if self._sync is not None:
            await self._run(self._sync.close)
            self._sync = None
        self._executor.shutdown(wait=True)
