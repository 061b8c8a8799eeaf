"""The PostgreSQL journal: production and active/standby pairs (contract in journal/base.py).

One connection, one call at a time (an asyncio.Lock), autocommit outside explicit transactions.
Every write is one transaction that first share-locks the `epoch` meta row: writers of the same
epoch do not block each other, while `claim()` takes that row FOR UPDATE and therefore waits for
every write in flight; a write that starts after the claim sees the new epoch and is refused.

Durability (`execution.journal_durability`), set per session:

- "fsync": synchronous_commit on. A commit returns once its WAL record is flushed to the
  server's disk: it survives a crash of the server and of its machine.
- "process": synchronous_commit off. A commit returns once the server has it in memory; the WAL
  writer flushes it within 3 x wal_writer_delay (600 ms by default). It survives any crash of
  the engine; a crash of the server or its machine may lose the last commits, never an earlier
  one (PostgreSQL replays its WAL up to the last record flushed: the database stays consistent,
  a prefix of its transactions), and recovery finds the orders they recorded at the venue
  (engine/core/adoption.py). The fencing claim is always a synchronous commit: a lost epoch
  would let a deposed leader write again; `make_durable()` is one too, for what the venue
  cannot reveal.

A lost connection raises JournalUnavailableError naming only host, port and database (never
the password); the next call reconnects. A write that fails that way may or may not have
committed: read it back before acting on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row

from engine.config import JournalDurability
from engine.core.errors import ConfigError, FencingError, JournalUnavailableError
from engine.core.messages import Fill
from engine.core.orders import TERMINAL_STATES, OrderRecord
from engine.execution.journal.base import (
    ORDER_COLUMNS,
    PARENT_STATES,
    ParentRecord,
    fill_from_row,
    order_from_row,
    order_row,
    parent_from_row,
)
from plumbing.waits import raise_if_cancelled

T = TypeVar("T")
Connection = psycopg.AsyncConnection[DictRow]

# Decimals are TEXT, as in SQLite, so that they round-trip exactly (scale included).
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
    created_ts_ns BIGINT NOT NULL,
    sent_ts_ns BIGINT NOT NULL DEFAULT 0,
    updated_ts_ns BIGINT NOT NULL DEFAULT 0,
    tick_recv_ts_ns BIGINT NOT NULL DEFAULT 0,
    reference_price DOUBLE PRECISION NOT NULL DEFAULT 0,
    seq BIGINT NOT NULL DEFAULT 0,
    reduce_only INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE orders ADD COLUMN IF NOT EXISTS reduce_only INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS orders_by_intent ON orders(intent_id);
CREATE INDEX IF NOT EXISTS orders_by_state ON orders(state);
CREATE TABLE IF NOT EXISTS parents (
    intent_id TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    created_ts_ns BIGINT NOT NULL,
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
    trade_id BIGINT NOT NULL,
    client_order_id TEXT NOT NULL,
    intent_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty TEXT NOT NULL,
    price TEXT NOT NULL,
    commission TEXT NOT NULL,
    commission_asset TEXT NOT NULL,
    is_maker BOOLEAN NOT NULL,
    venue_ts_ms BIGINT NOT NULL,
    correlation_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (venue, trade_id)
);
CREATE INDEX IF NOT EXISTS fills_by_order ON fills(client_order_id);
INSERT INTO meta (key, value) VALUES ('epoch', '0') ON CONFLICT (key) DO NOTHING;
"""

# CREATE TABLE IF NOT EXISTS is not safe against a concurrent identical CREATE in PostgreSQL.
_SCHEMA_LOCK = 0x53544F524D  # "STORM"
_TERMINAL = [state.value for state in TERMINAL_STATES]
_SYNCHRONOUS_COMMIT: dict[JournalDurability, str] = {"fsync": "on", "process": "off"}
_INSERT_ORDER = (
    f"INSERT INTO orders ({','.join(ORDER_COLUMNS)})"
    f" VALUES ({','.join(['%s'] * len(ORDER_COLUMNS))}) ON CONFLICT DO NOTHING"
)
_UPDATE_ORDER = (
    f"UPDATE orders SET {','.join(f'{c}=%s' for c in ORDER_COLUMNS[1:])}"
    " WHERE client_order_id=%s AND seq<%s"
)
_INSERT_FILL = (
    "INSERT INTO fills (venue, trade_id, client_order_id, intent_id, symbol, side, qty, price,"
    " commission, commission_asset, is_maker, venue_ts_ms, correlation_id)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING"
)
_INSERT_PARENT = (
    "INSERT INTO parents (intent_id, payload, created_ts_ns, state, outcome, reason)"
    " VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING"
)
_UPDATE_PARENT = (
    "UPDATE parents SET state=%s, outcome=%s, reason=%s WHERE intent_id=%s AND state = ANY(%s)"
)
_UPSERT_META = (
    "INSERT INTO meta (key, value) VALUES (%s, %s)"
    " ON CONFLICT (key) DO UPDATE SET value=excluded.value"
)


class PostgresJournal:
    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout_ms: int = 5000,
        statement_timeout_ms: int = 5000,
        idle_in_transaction_timeout_ms: int = 1000,
        durability: JournalDurability = "fsync",
    ) -> None:
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            raise ConfigError(
                "the journal DSN is not a valid PostgreSQL connection string"
            ) from None
        self._dsn = dsn
        self._password = str(params.get("password") or "")
        self._where = (
            f"PostgreSQL journal at {params.get('host') or params.get('hostaddr') or 'localhost'}"
            f":{params.get('port') or 5432}/{params.get('dbname') or params.get('user') or ''}"
        )
        self._connect_timeout_s = connect_timeout_ms / 1000
        # A leader frozen (SIGSTOP) inside a transaction would hold the epoch row's lock and
        # stall its successor's claim: the server ends such a session after a second. A hung
        # link (not a dropped one) ends a statement instead of blocking forever.
        self._session_options = " ".join(
            part
            for part in (
                str(params.get("options") or ""),
                f"-c statement_timeout={statement_timeout_ms}",
                f"-c idle_in_transaction_session_timeout={idle_in_transaction_timeout_ms}",
                f"-c synchronous_commit={_SYNCHRONOUS_COMMIT[durability]}",
            )
            if part
        )
        self.durability: JournalDurability = durability
        self._lock = asyncio.Lock()
        self._conn: Connection | None = None
        self._open = False
        self.epoch = 0

    async def open(self) -> None:
        self._open = True
        try:
            await self._run(self._create_schema)
        except BaseException:
            self._open = False
            raise

    async def close(self) -> None:
        async with self._lock:
            self._open = False
            await self._drop()

    # --- connection --------------------------------------------------------------------------

    def _scrub(self, error: BaseException) -> str:
        text = str(error) or type(error).__name__
        return text.replace(self._password, "***") if self._password else text

    async def _connection(self) -> Connection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                self._conn = await psycopg.AsyncConnection.connect(
                    self._dsn,
                    autocommit=True,
                    row_factory=dict_row,
                    options=self._session_options,
                    keepalives=1,
                    keepalives_idle=5,
                    keepalives_interval=2,
                    keepalives_count=3,
                )
        except TimeoutError:
            raise_if_cancelled()
            raise JournalUnavailableError(
                f"cannot connect to the {self._where}: no answer within"
                f" {self._connect_timeout_s * 1000:.0f} ms"
            ) from None
        except psycopg.Error as exc:
            raise JournalUnavailableError(
                f"cannot connect to the {self._where}: {self._scrub(exc)}"
            ) from None
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _run(self, op: Callable[[Connection], Awaitable[T]]) -> T:
        async with self._lock:
            if not self._open:
                raise RuntimeError("journal is not open")
            conn = await self._connection()
            try:
                return await op(conn)
            except psycopg.Error as exc:
                if not (conn.broken or conn.closed):
                    raise
                await self._drop()
                raise JournalUnavailableError(
                    f"lost the connection to the {self._where}: {self._scrub(exc)}"
                ) from None
            except asyncio.CancelledError:
                # Interrupted half-way, the session's state is unknown: start a fresh one.
                await self._drop()
                raise

    async def _create_schema(self, conn: Connection) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            await conn.execute(SCHEMA)

    # --- fencing -----------------------------------------------------------------------------

    @staticmethod
    async def _journal_epoch(conn: Connection, lock: str) -> int:
        cursor = await conn.execute(f"SELECT value FROM meta WHERE key='epoch' FOR {lock}")
        row = await cursor.fetchone()
        return 0 if row is None else int(row["value"])

    async def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        """One fenced write: rowcount, or FencingError if a newer leader claimed the journal."""

        async def op(conn: Connection) -> int:
            async with conn.transaction():
                current = await self._journal_epoch(conn, "SHARE")
                if current > self.epoch:
                    raise FencingError(
                        f"journal epoch {current} is newer than ours ({self.epoch}): deposed"
                    )
                cursor = await conn.execute(sql, params)
                return cursor.rowcount

        return await self._run(op)

    async def claim(self, epoch: int) -> None:
        async def op(conn: Connection) -> None:
            async with conn.transaction():
                current = await self._journal_epoch(conn, "UPDATE")
                if current > epoch:
                    raise FencingError(f"cannot claim epoch {epoch}: the journal is at {current}")
                await conn.execute("SET LOCAL synchronous_commit = on")
                await conn.execute(_UPSERT_META, ("epoch", str(epoch)))

        await self._run(op)
        self.epoch = epoch

    # --- writes ------------------------------------------------------------------------------

    async def insert_order(self, order: OrderRecord) -> bool:
        return await self._write(_INSERT_ORDER, order_row(order)) == 1

    async def update_order(self, order: OrderRecord) -> bool:
        """Write a newer version of an order; an older or equal seq is ignored (False)."""
        params = (*order_row(order)[1:], order.client_order_id, order.seq)
        return await self._write(_UPDATE_ORDER, params) == 1

    async def record_fill(self, fill: Fill) -> bool:
        params = (
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
            fill.is_maker,
            fill.venue_ts_ms,
            fill.correlation_id,
        )
        return await self._write(_INSERT_FILL, params) == 1

    async def insert_parent(self, parent: ParentRecord) -> bool:
        if parent.state not in PARENT_STATES:
            raise ValueError(f"unknown parent state {parent.state!r}")
        params = (
            parent.intent_id,
            parent.payload,
            parent.created_ts_ns,
            parent.state,
            parent.outcome,
            parent.reason,
        )
        return await self._write(_INSERT_PARENT, params) == 1

    async def update_parent(
        self, intent_id: str, *, state: str, outcome: str = "", reason: str = ""
    ) -> bool:
        """Move a parent forward (active → canceling → done); never backwards."""
        if state not in PARENT_STATES:
            raise ValueError(f"unknown parent state {state!r}")
        earlier = list(PARENT_STATES[: PARENT_STATES.index(state)])
        if not earlier:
            return False
        params = (state, outcome, reason, intent_id, earlier)
        return await self._write(_UPDATE_PARENT, params) == 1

    async def make_durable(self) -> None:
        """A synchronous commit of a write of its own (meta `synced_at`): it returns once the
        server has flushed its WAL up to it, and so every commit before it."""
        if self.durability == "fsync":
            return

        async def op(conn: Connection) -> None:
            async with conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit = on")
                await conn.execute(_UPSERT_META, ("synced_at", str(time.time_ns())))

        await self._run(op)

    async def set_meta(self, key: str, value: str) -> None:
        if key == "epoch":
            raise ValueError("the epoch is set by claim(), never directly")
        await self._write(_UPSERT_META, (key, value))

    # --- reads -------------------------------------------------------------------------------

    async def _select(self, sql: str, params: tuple[Any, ...] = ()) -> list[DictRow]:
        async def op(conn: Connection) -> list[DictRow]:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall()

        return await self._run(op)

    async def durability_settings(self) -> dict[str, str]:
        """What this session runs with, as the server reports it (not as we asked for it)."""
        rows = await self._select("SHOW synchronous_commit")
        return {"synchronous_commit": str(rows[0]["synchronous_commit"])}

    async def get_meta(self, key: str) -> str | None:
        rows = await self._select("SELECT value FROM meta WHERE key=%s", (key,))
        return str(rows[0]["value"]) if rows else None

    async def get_order(self, client_order_id: str) -> OrderRecord | None:
        rows = await self._select(
            "SELECT * FROM orders WHERE client_order_id=%s", (client_order_id,)
        )
        return order_from_row(rows[0]) if rows else None

    async def open_orders(self) -> list[OrderRecord]:
        rows = await self._select(
            "SELECT * FROM orders WHERE state <> ALL(%s) ORDER BY created_ts_ns", (_TERMINAL,)
        )
        return [order_from_row(r) for r in rows]

    async def orders_for_intent(self, intent_id: str) -> list[OrderRecord]:
        rows = await self._select(
            "SELECT * FROM orders WHERE intent_id=%s ORDER BY child_index", (intent_id,)
        )
        return [order_from_row(r) for r in rows]

    async def all_orders(self) -> list[OrderRecord]:
        rows = await self._select("SELECT * FROM orders ORDER BY created_ts_ns")
        return [order_from_row(r) for r in rows]

    async def fills(self) -> list[Fill]:
        rows = await self._select("SELECT * FROM fills ORDER BY venue_ts_ms, trade_id")
        return [fill_from_row(r) for r in rows]

    async def fills_for_order(self, client_order_id: str) -> list[Fill]:
        rows = await self._select(
            "SELECT * FROM fills WHERE client_order_id=%s ORDER BY trade_id", (client_order_id,)
        )
        return [fill_from_row(r) for r in rows]

    async def get_parent(self, intent_id: str) -> ParentRecord | None:
        rows = await self._select("SELECT * FROM parents WHERE intent_id=%s", (intent_id,))
        return parent_from_row(rows[0]) if rows else None

    async def parent_ids(self) -> set[str]:
        rows = await self._select("SELECT intent_id FROM parents")
        return {str(r["intent_id"]) for r in rows}

    async def active_parents(self) -> list[ParentRecord]:
        rows = await self._select(
            "SELECT * FROM parents WHERE state <> 'done' ORDER BY created_ts_ns"
        )
        return [parent_from_row(r) for r in rows]
