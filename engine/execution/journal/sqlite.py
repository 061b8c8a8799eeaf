"""The SQLite journal: the embedded default (contract in journal/base.py).

WAL mode, at one of two durabilities (`execution.journal_durability`):

- "fsync": synchronous=FULL. Every commit syncs the WAL: a committed row survives kill -9 and
  power loss.
- "process": synchronous=NORMAL. A commit is a write of its WAL frames to the OS, no fsync: it
  survives any crash of this process (the OS holds the pages), and only checkpoints sync: the
  journal runs them on a thread of its own every CHECKPOINT_EVERY_WRITES writes. After
  a machine crash the WAL keeps a prefix of its commits (frames carry cumulative checksums and
  a reader stops at the first frame that does not check out), so the journal is consistent and
  may miss its most recent writes, never an earlier one; recovery finds the orders those writes
  recorded at the venue (engine/core/adoption.py). What the venue cannot reveal is made durable
  with `make_durable()` before its request is acknowledged: a checkpoint on a thread of its own.

Every write is one `BEGIN IMMEDIATE` transaction that first checks the fencing epoch. Two
processes may share the file (an active/standby pair on one host); the database lock serialises
them. The async facade runs every call on one dedicated thread: the event loop never waits on
the disk.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine.config import JournalDurability
from engine.core.errors import FencingError
from engine.core.messages import Fill
from engine.core.orders import TERMINAL_STATES, OrderRecord
from engine.execution.journal.base import (
    ADDED_COLUMNS,
    ORDER_COLUMNS,
    PARENT_STATES,
    SCHEMA,
    ParentRecord,
    fill_from_row,
    order_from_row,
    order_row,
    parent_from_row,
)
from plumbing.logging import get_logger

_TERMINAL = tuple(state.value for state in TERMINAL_STATES)
_SYNCHRONOUS: dict[JournalDurability, str] = {"fsync": "FULL", "process": "NORMAL"}
_SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
CHECKPOINT_EVERY_WRITES = 256
"""At "process", SQLite's own checkpoint (every 1,000 WAL pages, in the committing call) is off:
the journal starts one this often, on its sync thread (about 256 pages: the WAL stays ~1 MB)."""
WAL_CAP_FRAMES = 4096
WAL_FRAME_BYTES = 4096 + 24
"""A WAL frame: SQLite's default page and the frame's header."""
WAL_SIZE_CHECK_EVERY_WRITES = 64
"""At "process", a WAL past this many frames (16 MB of 4 KB pages: the background checkpoints
never caught up with a sustained stream of writes) is checkpointed and restarted by the next
write itself."""
log = get_logger("engine.execution.journal")


class SqliteJournalSync:
    """The synchronous journal; also what offline tools (the harness summary) read."""

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        durability: JournalDurability = "fsync",
    ) -> None:
        self.path = Path(path)
        self.epoch = 0
        self.durability = durability
        if read_only:
            uri = f"file:{self.path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._switch_to_wal()
            self._db.execute(f"PRAGMA synchronous={_SYNCHRONOUS[durability]}")
            if durability == "process":
                # a checkpoint syncs the disk: the async facade runs them off the order path
                self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._db.executescript(SCHEMA)
            self._add_missing_columns()
        self._db.row_factory = sqlite3.Row

    def _add_missing_columns(self) -> None:
        """An older journal lacks the columns added since (ADDED_COLUMNS): added, with their
        defaults, before anything reads it."""
        for table, column, definition in ADDED_COLUMNS:
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def _switch_to_wal(self, deadline_s: float = 10.0) -> None:
        """A concurrent opener (the other half of a pair starting on the same host) gets
        "database is locked" at once from this PRAGMA: the busy timeout does not cover it."""
        end = time.monotonic() + deadline_s
        delay = 0.005
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > end:
                    raise
                time.sleep(delay)  # a thread of its own: the event loop is not blocked
                delay = min(delay * 2, 0.1)

    # --- fencing -----------------------------------------------------------------------------

    def _journal_epoch(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
        return int(row[0]) if row else 0

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        """One fenced write: rowcount, or FencingError if a newer leader claimed the journal."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            current = self._journal_epoch()
            if current > self.epoch:
                raise FencingError(
                    f"journal epoch {current} is newer than ours ({self.epoch}): deposed"
                )
            rowcount = self._db.execute(sql, params).rowcount
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return rowcount

    def claim(self, epoch: int) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            current = self._journal_epoch()
            if current > epoch:
                raise FencingError(f"cannot claim epoch {epoch}: the journal is at {current}")
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('epoch', ?)"
                " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (str(epoch),),
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self.epoch = epoch

    # --- writes ------------------------------------------------------------------------------

    def insert_order(self, order: OrderRecord) -> bool:
        placeholders = ",".join("?" * len(ORDER_COLUMNS))
        return (
            self._write(
                f"INSERT OR IGNORE INTO orders ({','.join(ORDER_COLUMNS)}) VALUES ({placeholders})",
                order_row(order),
            )
            == 1
        )

    def update_order(self, order: OrderRecord) -> bool:
        """Write a newer version of an order; an older or equal seq is ignored (False)."""
        assignments = ",".join(f"{c}=?" for c in ORDER_COLUMNS[1:])
        return (
            self._write(
                f"UPDATE orders SET {assignments} WHERE client_order_id=? AND seq<?",
                (*order_row(order)[1:], order.client_order_id, order.seq),
            )
            == 1
        )

    def record_fill(self, fill: Fill) -> bool:
        return (
            self._write(
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
            == 1
        )

    def insert_parent(self, parent: ParentRecord) -> bool:
        if parent.state not in PARENT_STATES:
            raise ValueError(f"unknown parent state {parent.state!r}")
        return (
            self._write(
                "INSERT OR IGNORE INTO parents (intent_id, payload, created_ts_ns, state, outcome,"
                " reason) VALUES (?,?,?,?,?,?)",
                (
                    parent.intent_id,
                    parent.payload,
                    parent.created_ts_ns,
                    parent.state,
                    parent.outcome,
                    parent.reason,
                ),
            )
            == 1
        )

    def update_parent(self, intent_id: str, state: str, outcome: str, reason: str) -> bool:
        if state not in PARENT_STATES:
            raise ValueError(f"unknown parent state {state!r}")
        rank = PARENT_STATES.index(state)
        earlier = PARENT_STATES[:rank]
        if not earlier:
            return False
        return (
            self._write(
                f"UPDATE parents SET state=?, outcome=?, reason=? WHERE intent_id=?"
                f" AND state IN ({','.join('?' * len(earlier))})",
                (state, outcome, reason, intent_id, *earlier),
            )
            == 1
        )

    def set_meta(self, key: str, value: str) -> None:
        if key == "epoch":
            raise ValueError("the epoch is set by claim(), never directly")
        self._write(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def restart_wal(self) -> None:
        """Checkpoint everything and truncate the WAL, so that the next write starts it over
        (waits for readers up to the busy timeout)."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    # --- reads -------------------------------------------------------------------------------

    def durability_settings(self) -> dict[str, str]:
        """What this connection runs with, as SQLite reports it (not as we asked for it)."""
        mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
        level = self._db.execute("PRAGMA synchronous").fetchone()[0]
        pages = self._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        return {
            "journal_mode": str(mode).lower(),
            "synchronous": _SYNCHRONOUS_NAMES.get(int(level), str(level)),
            "wal_autocheckpoint": str(pages),
        }

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def get_order(self, client_order_id: str) -> OrderRecord | None:
        row = self._db.execute(
            "SELECT * FROM orders WHERE client_order_id=?", (client_order_id,)
        ).fetchone()
        return None if row is None else order_from_row(row)

    def open_orders(self) -> list[OrderRecord]:
        rows = self._db.execute(
            f"SELECT * FROM orders WHERE state NOT IN ({','.join('?' * len(_TERMINAL))})"
            " ORDER BY created_ts_ns",
            _TERMINAL,
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

    def fills(self) -> list[Fill]:
        rows = self._db.execute("SELECT * FROM fills ORDER BY venue_ts_ms, trade_id").fetchall()
        return [fill_from_row(r) for r in rows]

    def fills_for_order(self, client_order_id: str) -> list[Fill]:
        rows = self._db.execute(
            "SELECT * FROM fills WHERE client_order_id=? ORDER BY trade_id", (client_order_id,)
        ).fetchall()
        return [fill_from_row(r) for r in rows]

    def get_parent(self, intent_id: str) -> ParentRecord | None:
        row = self._db.execute("SELECT * FROM parents WHERE intent_id=?", (intent_id,)).fetchone()
        return None if row is None else parent_from_row(row)

    def parent_ids(self) -> set[str]:
        return {str(r[0]) for r in self._db.execute("SELECT intent_id FROM parents")}

    def active_parents(self) -> list[ParentRecord]:
        rows = self._db.execute(
            "SELECT * FROM parents WHERE state != 'done' ORDER BY created_ts_ns"
        ).fetchall()
        return [parent_from_row(r) for r in rows]

    def close(self) -> None:
        self._db.close()


class SqliteJournal:
    """Async facade: every call runs on the journal's own thread; `sync()` on another one, so
    that orders keep being journaled while it waits for the disk."""

    def __init__(self, path: str | Path, *, durability: JournalDurability = "fsync") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._sync: SqliteJournalSync | None = None
        self._path = path
        self.durability: JournalDurability = durability
        self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-sync")
        self._checkpointer: sqlite3.Connection | None = None
        self._sync_lock = asyncio.Lock()
        self._sync_asked = 0
        self._synced = 0
        self._writes = 0
        self._checkpointing: asyncio.Future[None] | None = None

    @property
    def epoch(self) -> int:
        return self.sync.epoch

    async def open(self) -> None:
        self._sync = await self._run(
            functools.partial(SqliteJournalSync, self._path, durability=self.durability)
        )

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _write(self, fn: Any, *args: Any) -> Any:
        """A write; at "process", every CHECKPOINT_EVERY_WRITES writes a PASSIVE checkpoint
        starts on the sync thread (it syncs the disk, which the order path never waits for)
        and keeps the WAL from growing without bound."""
        result = await self._run(fn, *args)
        if self.durability == "process":
            self._writes += 1
            if self._writes % WAL_SIZE_CHECK_EVERY_WRITES == 0 and self._wal_bytes() > (
                WAL_CAP_FRAMES * WAL_FRAME_BYTES
            ):
                # writes without a pause let no checkpoint catch up, and the WAL only starts
                # over once one has: this write waits for one, explicitly
                await self._run(self.sync.restart_wal)
                log.info("journal_wal_restarted", cap_frames=WAL_CAP_FRAMES)
            if self._writes >= CHECKPOINT_EVERY_WRITES and (
                self._checkpointing is None or self._checkpointing.done()
            ):
                self._writes = 0
                loop = asyncio.get_running_loop()
                self._checkpointing = loop.run_in_executor(self._syncer, self._checkpoint)
        return result

    def _wal_bytes(self) -> int:
        try:
            return os.stat(f"{self.sync.path}-wal").st_size
        except FileNotFoundError:
            return 0

    def _checkpoint(self) -> None:
        """A PASSIVE checkpoint from the checkpointer's own connection; a failure (the disk
        full, a reader holding the WAL) is logged: the next one tries again."""
        try:
            self._checkpoint_or_fsync(durable=False)
        except sqlite3.Error as exc:
            log.warning("journal_checkpoint_failed", error=str(exc))

    @property
    def sync(self) -> SqliteJournalSync:
        if self._sync is None:
            raise RuntimeError("journal is not open")
        return self._sync

    async def claim(self, epoch: int) -> None:
        await self._run(self.sync.claim, epoch)

    async def insert_order(self, order: OrderRecord) -> bool:
        return bool(await self._write(self.sync.insert_order, order))

    async def update_order(self, order: OrderRecord) -> bool:
        return bool(await self._write(self.sync.update_order, order))

    async def record_fill(self, fill: Fill) -> bool:
        return bool(await self._write(self.sync.record_fill, fill))

    async def set_meta(self, key: str, value: str) -> None:
        await self._write(self.sync.set_meta, key, value)

    async def get_meta(self, key: str) -> str | None:
        result: str | None = await self._run(self.sync.get_meta, key)
        return result

    async def durability_settings(self) -> dict[str, str]:
        result: dict[str, str] = await self._run(self.sync.durability_settings)
        return result

    async def get_order(self, client_order_id: str) -> OrderRecord | None:
        result: OrderRecord | None = await self._run(self.sync.get_order, client_order_id)
        return result

    async def open_orders(self) -> list[OrderRecord]:
        result: list[OrderRecord] = await self._run(self.sync.open_orders)
        return result

    async def orders_for_intent(self, intent_id: str) -> list[OrderRecord]:
        result: list[OrderRecord] = await self._run(self.sync.orders_for_intent, intent_id)
        return result

    async def all_orders(self) -> list[OrderRecord]:
        result: list[OrderRecord] = await self._run(self.sync.all_orders)
        return result

    async def fills(self) -> list[Fill]:
        result: list[Fill] = await self._run(self.sync.fills)
        return result

    async def fills_for_order(self, client_order_id: str) -> list[Fill]:
        result: list[Fill] = await self._run(self.sync.fills_for_order, client_order_id)
        return result

    async def insert_parent(self, parent: ParentRecord) -> bool:
        return bool(await self._write(self.sync.insert_parent, parent))

    async def update_parent(
        self, intent_id: str, *, state: str, outcome: str = "", reason: str = ""
    ) -> bool:
        return bool(await self._write(self.sync.update_parent, intent_id, state, outcome, reason))

    async def get_parent(self, intent_id: str) -> ParentRecord | None:
        result: ParentRecord | None = await self._run(self.sync.get_parent, intent_id)
        return result

    async def active_parents(self) -> list[ParentRecord]:
        result: list[ParentRecord] = await self._run(self.sync.active_parents)
        return result

    async def parent_ids(self) -> set[str]:
        result: set[str] = await self._run(self.sync.parent_ids)
        return result

    async def make_durable(self) -> None:
        """Group commit: a caller whose writes an already running sync may not cover waits for
        the next one, which covers every caller that asked before it started."""
        if self.durability == "fsync":
            return
        self._sync_asked += 1
        mine = self._sync_asked
        async with self._sync_lock:
            if self._synced >= mine:
                return
            covers = self._sync_asked
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._syncer, self._checkpoint_or_fsync)
            self._synced = covers

    def _checkpoint_or_fsync(self, *, durable: bool = True) -> int:
        """A PASSIVE checkpoint from a connection of its own (it never blocks the writer):
        SQLite syncs the WAL, copies it into the database file and syncs that. Should it not
        reach the last commit (another checkpoint running, a reader holding old frames) and
        `durable` be asked, the WAL file is synced directly: fsync applies to the file,
        whichever descriptor asks. Returns the frames in the WAL."""
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(
                self.sync.path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._checkpointer.execute("PRAGMA synchronous=NORMAL")
        busy, frames, copied = self._checkpointer.execute(
            "PRAGMA wal_checkpoint(PASSIVE)"
        ).fetchone()
        if durable and (busy or copied < frames):
            wal = self.sync.path.with_name(self.sync.path.name + "-wal")
            fd = os.open(wal, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return int(frames)

    def _close_checkpointer(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None

    async def close(self) -> None:
        if self._checkpointing is not None:
            await self._checkpointing
        if self._checkpointer is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._syncer, self._close_checkpointer)
        self._syncer.shutdown(wait=True)
        if self._sync is not None:
            await self._run(self._sync.close)
            self._sync = None
        self._executor.shutdown(wait=True)
