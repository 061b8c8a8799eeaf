"""One journal contract (engine/execution/journal/base.py), run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from engine.config import ExecutionConfig, JournalDurability, Secret, Secrets
from engine.core.errors import ConfigError, FencingError, JournalUnavailableError
from engine.core.messages import Fill, OrderType, Side, TimeInForce
from engine.core.orders import TERMINAL_STATES, OrderRecord, OrderState
from engine.execution.journal import (
    Journal,
    PostgresJournal,
    SqliteJournal,
    SqliteJournalSync,
    make_journal,
)
from engine.execution.journal.base import SCHEMA as SQLITE_SCHEMA
from engine.execution.journal.base import ParentRecord
from engine.execution.journal.postgres import SCHEMA as POSTGRES_SCHEMA
from engine.execution.journal.sqlite import WAL_CAP_FRAMES

pytestmark = pytest.mark.integration

T0 = 1_723_100_000_000_000_000  # ns: past 2**32, so 32-bit columns would not hold it
PASSWORD = "Hunter2-never-print-me"
UNDER_TEST = "journal-under-test"


def order(n: int, *, intent: str = "intent-1", **changes: Any) -> OrderRecord:
    base = OrderRecord(
        client_order_id=f"{intent}-{n}",
        intent_id=intent,
        child_index=n,
        venue="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal("0.01"),
        limit_price=Decimal("65000.5"),
        created_ts_ns=T0 + n,
    )
    return msgspec.structs.replace(base, **changes)


def fill(trade_id: int, **changes: Any) -> Fill:
    base = Fill(
        venue="binance",
        symbol="BTCUSDT",
        trade_id=trade_id,
        client_order_id="intent-1-0",
        intent_id="intent-1",
        side=Side.BUY,
        qty=Decimal("0.004"),
        price=Decimal("65000.5"),
        commission=Decimal("0.000004"),
        commission_asset="BTC",
        is_maker=True,
        venue_ts_ms=1_723_100_000_000 + trade_id,
        correlation_id=f"c-{trade_id}",
    )
    return msgspec.structs.replace(base, **changes)


class Store:
    """One store (a SQLite file or a PostgreSQL database) and every instance opened on it."""

    def __init__(self, make: Callable[[], Journal]) -> None:
        self._make = make
        self._opened: list[Journal] = []

    def new(self) -> Journal:
        journal = self._make()
        self._opened.append(journal)
        return journal

    async def open(self) -> Journal:
        journal = self.new()
        await journal.open()
        return journal

    async def close_all(self) -> None:
        for journal in self._opened:
            await journal.close()


async def _admin(server_dsn: str, statement: sql.Composable) -> None:
    async with await psycopg.AsyncConnection.connect(server_dsn, autocommit=True) as admin:
        await admin.execute(statement)


@asynccontextmanager
async def fresh_schema(server_dsn: str) -> AsyncIterator[str]:
    """A new empty schema, first on the search path of the DSN yielded (cheaper than a database)."""
    name = f"journal_{uuid.uuid4().hex}"
    await _admin(server_dsn, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(server_dsn, options=f"-c search_path={name}")
    finally:
        await _admin(server_dsn, sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A new, empty store of each backend; `backend.open()` opens one more instance on it."""
    if request.param == "sqlite":
        store = Store(lambda: SqliteJournal(tmp_path / "journal.sqlite"))
        yield store
        await store.close_all()
        return
    async with fresh_schema(request.getfixturevalue("postgres_dsn")) as dsn:
        store = Store(lambda: PostgresJournal(dsn))
        yield store
        await store.close_all()


@pytest.fixture
async def journal(backend: Store) -> Journal:
    return await backend.open()


def parent(intent: str, n: int = 0, **changes: Any) -> ParentRecord:
    base = ParentRecord(intent_id=intent, payload=f'{{"intent":"{intent}"}}', created_ts_ns=T0 + n)
    return msgspec.structs.replace(base, **changes)


async def contents(journal: Journal) -> tuple[Any, ...]:
    return (
        await journal.all_orders(),
        await journal.fills(),
        await journal.get_parent("intent-1"),
        await journal.active_parents(),
        await journal.get_meta("note"),
        await journal.get_meta("epoch"),
    )


# --- orders ----------------------------------------------------------------------------------


async def test_an_order_is_journaled_once_and_a_duplicate_insert_returns_false(
    journal: Journal,
) -> None:
    first = order(0)
    assert await journal.insert_order(first) is True
    assert await journal.get_order(first.client_order_id) == first

    retry = msgspec.structs.replace(first, qty=Decimal("9"), state=OrderState.SUBMITTING)
    assert await journal.insert_order(retry) is False
    assert await journal.get_order(first.client_order_id) == first
    assert await journal.all_orders() == [first]


async def test_an_unknown_client_order_id_has_no_order(journal: Journal) -> None:
    assert await journal.get_order("never-journaled") is None


async def test_an_update_lands_only_when_its_seq_is_newer(journal: Journal) -> None:
    pending = order(0)
    await journal.insert_order(pending)
    submitting = pending.moved_to(OrderState.SUBMITTING, ts_ns=T0 + 10)
    opened = msgspec.structs.replace(
        submitting.moved_to(OrderState.OPEN, ts_ns=T0 + 20), venue_order_id="v-1"
    )

    assert await journal.update_order(submitting) is True
    assert await journal.update_order(opened) is True
    assert await journal.get_order(pending.client_order_id) == opened

    assert await journal.update_order(submitting) is False, "a stale seq must be ignored"
    same_seq = msgspec.structs.replace(opened, reason="replayed")
    assert await journal.update_order(same_seq) is False, "an equal seq must be ignored"
    assert await journal.get_order(pending.client_order_id) == opened


async def test_an_update_of_an_order_never_journaled_changes_nothing(journal: Journal) -> None:
    assert await journal.update_order(order(0, seq=5)) is False
    assert await journal.all_orders() == []


async def test_open_orders_are_exactly_the_non_terminal_ones_by_creation_time(
    journal: Journal,
) -> None:
    for n, state in reversed(list(enumerate(OrderState))):
        await journal.insert_order(order(n, state=state))
    expected = [order(n, state=s) for n, s in enumerate(OrderState) if s not in TERMINAL_STATES]
    assert await journal.open_orders() == expected

    live = order(0, state=OrderState.PENDING)
    assert live in expected
    await journal.update_order(
        msgspec.structs.replace(live, state=OrderState.CANCELED, seq=live.seq + 1)
    )
    assert [o.client_order_id for o in await journal.open_orders()] == [
        o.client_order_id for o in expected[1:]
    ]


async def test_orders_for_intent_are_its_children_by_child_index(journal: Journal) -> None:
    children = [order(n, intent="a") for n in range(3)]
    for child in (children[2], children[0], children[1]):
        await journal.insert_order(child)
    await journal.insert_order(order(0, intent="b"))

    assert await journal.orders_for_intent("a") == children
    assert await journal.orders_for_intent("nobody") == []


async def test_all_orders_are_every_order_by_creation_time(journal: Journal) -> None:
    orders = [order(n, intent=f"i{n % 2}", state=OrderState.FILLED) for n in range(4)]
    for o in reversed(orders):
        await journal.insert_order(o)
    assert await journal.all_orders() == orders


# --- fills -----------------------------------------------------------------------------------


async def test_a_fill_is_recorded_once_per_venue_and_trade_id(journal: Journal) -> None:
    first = fill(7)
    assert await journal.record_fill(first) is True
    assert await journal.record_fill(msgspec.structs.replace(first, qty=Decimal("1"))) is False
    other_venue = fill(7, venue="kraken")
    assert await journal.record_fill(other_venue) is True
    assert await journal.fills() == [first, other_venue]


async def test_fills_come_back_by_venue_time_then_trade_id(journal: Journal) -> None:
    fills = [fill(3, venue_ts_ms=100), fill(1, venue_ts_ms=200), fill(2, venue_ts_ms=200)]
    for f in reversed(fills):
        await journal.record_fill(f)
    assert await journal.fills() == fills


async def test_decimals_floats_and_large_integers_round_trip_exactly(journal: Journal) -> None:
    precise = order(
        0,
        order_type=OrderType.LIMIT_MAKER,
        time_in_force=TimeInForce.IOC,
        qty=Decimal("0.010"),
        limit_price=Decimal("65432.10000000"),
        filled_qty=Decimal("0.00000001"),
        quote_qty=Decimal("123456789.123456789012345678901"),
        reference_price=65432.123456789,
        sent_ts_ns=T0 + 1,
        updated_ts_ns=T0 + 2,
        tick_recv_ts_ns=T0 + 3,
        seq=2**40,
    )
    market = order(1, order_type=OrderType.MARKET, limit_price=None, side=Side.SELL)
    precise_fill = fill(
        2**53 + 1,
        qty=Decimal("0.00012300"),
        price=Decimal("1E+2"),
        commission=Decimal("-0.0000000001"),
        is_maker=False,
    )
    await journal.insert_order(precise)
    await journal.insert_order(market)
    await journal.record_fill(precise_fill)

    stored = await journal.get_order(precise.client_order_id)
    assert stored == precise
    assert stored is not None
    assert str(stored.qty) == "0.010" and str(stored.limit_price) == "65432.10000000"
    assert await journal.get_order(market.client_order_id) == market
    [stored_fill] = await journal.fills()
    assert stored_fill == precise_fill
    assert (str(stored_fill.qty), str(stored_fill.price)) == ("0.00012300", "1E+2")


async def test_fills_for_order_are_that_orders_fills_by_trade_id(journal: Journal) -> None:
    mine = [fill(1, venue_ts_ms=300), fill(2, venue_ts_ms=100)]
    await journal.record_fill(mine[1])
    await journal.record_fill(fill(3, client_order_id="someone-else"))
    await journal.record_fill(mine[0])
    assert await journal.fills_for_order("intent-1-0") == mine
    assert await journal.fills_for_order("no-such-order") == []


# --- parents ---------------------------------------------------------------------------------


async def test_a_parent_is_journaled_once_and_a_duplicate_insert_returns_false(
    journal: Journal,
) -> None:
    first = parent("p")
    assert await journal.insert_parent(first) is True
    assert await journal.insert_parent(parent("p", payload="{}", state="done")) is False
    assert await journal.get_parent("p") == first
    assert await journal.get_parent("unknown") is None


async def test_a_parent_only_moves_forward_active_canceling_done(journal: Journal) -> None:
    await journal.insert_parent(parent("p"))
    assert await journal.update_parent("p", state="active") is False
    assert await journal.update_parent("p", state="canceling", reason="halt") is True
    assert await journal.update_parent("p", state="canceling") is False
    assert await journal.update_parent("p", state="active") is False
    assert await journal.get_parent("p") == parent("p", state="canceling", reason="halt")
    assert await journal.update_parent("p", state="done", outcome="filled") is True
    assert await journal.update_parent("p", state="canceling") is False
    assert await journal.get_parent("p") == parent("p", state="done", outcome="filled")
    assert await journal.update_parent("never-journaled", state="done") is False


async def test_an_unknown_parent_state_is_refused(journal: Journal) -> None:
    with pytest.raises(ValueError, match="paused"):
        await journal.insert_parent(parent("p", state="paused"))
    await journal.insert_parent(parent("p"))
    with pytest.raises(ValueError):  # noqa: PT011 (SQLite's message does not name the state)
        await journal.update_parent("p", state="paused")
    assert await journal.get_parent("p") == parent("p")


async def test_active_parents_are_those_not_done_oldest_first(journal: Journal) -> None:
    parents = [parent("a", 0), parent("b", 1, state="canceling"), parent("c", 2)]
    for p in reversed(parents):
        await journal.insert_parent(p)
    await journal.insert_parent(parent("d", 3, state="done"))
    await journal.update_parent("c", state="done")
    assert await journal.active_parents() == parents[:2]
    assert await journal.parent_ids() == {"a", "b", "c", "d"}, "done or not, all are parents"


# --- meta and lifetime -----------------------------------------------------------------------


async def test_meta_values_round_trip_and_the_last_write_wins(journal: Journal) -> None:
    assert await journal.get_meta("note") is None
    await journal.set_meta("note", "first")
    await journal.set_meta("other", "x")
    await journal.set_meta("note", "second ✓")
    assert await journal.get_meta("note") == "second ✓"
    assert await journal.get_meta("other") == "x"


async def test_the_epoch_is_set_by_claim_never_by_set_meta(journal: Journal) -> None:
    await journal.claim(4)
    with pytest.raises(ValueError, match="claim"):
        await journal.set_meta("epoch", "9")
    assert await journal.get_meta("epoch") == "4"


async def test_everything_survives_close_and_reopen(backend: Store) -> None:
    first = await backend.open()
    await first.claim(3)
    await first.insert_parent(parent("intent-1"))
    await first.update_parent("intent-1", state="canceling", reason="operator")
    pending = order(0)
    await first.insert_order(pending)
    await first.update_order(pending.moved_to(OrderState.SUBMITTING, ts_ns=T0 + 5))
    await first.insert_order(order(1, state=OrderState.FILLED))
    await first.record_fill(fill(1))
    await first.set_meta("note", "kept")
    before = await contents(first)
    await first.close()

    again = await backend.open()
    assert await contents(again) == before
    assert before[-1] == "3"
    assert before[2] == parent("intent-1", state="canceling", reason="operator")
    with pytest.raises(FencingError):
        await again.insert_order(order(2))
    await again.claim(3)
    assert await again.insert_order(order(2)) is True


async def test_a_journal_refuses_calls_before_open_and_after_close(backend: Store) -> None:
    unopened = backend.new()
    with pytest.raises(RuntimeError):
        await unopened.get_order("x")
    closed = await backend.open()
    await closed.close()
    with pytest.raises(RuntimeError):
        await closed.insert_order(order(0))


async def test_instances_opened_at_once_on_a_new_store_all_succeed(backend: Store) -> None:
    journals = [backend.new() for _ in range(4)]
    await asyncio.gather(*(j.open() for j in journals))
    await journals[0].insert_order(order(0))
    for j in journals:
        assert await j.all_orders() == [order(0)]


# --- fencing ---------------------------------------------------------------------------------


async def test_a_single_instance_at_epoch_zero_writes_without_claiming(journal: Journal) -> None:
    assert journal.epoch == 0
    assert await journal.insert_order(order(0)) is True
    assert await journal.update_order(order(0, seq=1, state=OrderState.SUBMITTING)) is True
    assert await journal.record_fill(fill(1)) is True
    await journal.set_meta("note", "single")
    assert await journal.get_meta("note") == "single"


DEPOSED_WRITES: dict[str, Callable[[Journal], Awaitable[object]]] = {
    "insert_order": lambda j: j.insert_order(order(9)),
    "update_order": lambda j: j.update_order(order(0, seq=1, state=OrderState.SUBMITTING)),
    "record_fill": lambda j: j.record_fill(fill(9)),
    "set_meta": lambda j: j.set_meta("note", "deposed"),
    "insert_parent": lambda j: j.insert_parent(parent("intent-9")),
    "update_parent": lambda j: j.update_parent("intent-1", state="canceling"),
}


@pytest.mark.parametrize("write", DEPOSED_WRITES)
async def test_after_a_newer_claim_a_deposed_writer_cannot_write_and_changes_nothing(
    backend: Store, write: str
) -> None:
    deposed = await backend.open()
    await deposed.claim(1)
    await deposed.insert_parent(parent("intent-1"))
    await deposed.insert_order(order(0))
    await deposed.record_fill(fill(1))
    await deposed.set_meta("note", "leader 1")
    leader = await backend.open()
    await leader.claim(2)
    before = await contents(leader)

    with pytest.raises(FencingError):
        await DEPOSED_WRITES[write](deposed)

    assert await contents(leader) == before
    assert await contents(deposed) == before, "a deposed writer still reads"
    assert deposed.epoch == 1
    assert await DEPOSED_WRITES[write](leader) in (True, None), "the new leader writes"


async def test_an_unclaimed_instance_is_deposed_once_any_epoch_is_claimed(
    backend: Store,
) -> None:
    single = await backend.open()
    assert await single.insert_order(order(0)) is True
    await (await backend.open()).claim(1)
    with pytest.raises(FencingError):
        await single.insert_order(order(1))
    assert [o.client_order_id for o in await single.all_orders()] == ["intent-1-0"]


async def test_claiming_an_epoch_older_than_the_journals_is_refused(backend: Store) -> None:
    leader = await backend.open()
    await leader.claim(2)
    late = await backend.open()
    with pytest.raises(FencingError):
        await late.claim(1)
    assert late.epoch == 0
    assert await late.get_meta("epoch") == "2"
    with pytest.raises(FencingError):
        await late.insert_order(order(0))
    assert await leader.insert_order(order(0)) is True


async def test_a_leader_restarting_may_claim_its_own_epoch_again(backend: Store) -> None:
    leader = await backend.open()
    await leader.claim(5)
    await leader.close()
    restarted = await backend.open()
    await restarted.claim(5)
    assert restarted.epoch == 5
    assert await restarted.insert_order(order(0)) is True


async def race_a_claim_against_writers(store: Store, writers: int = 3) -> list[str]:
    """Writers at epoch 1 insert until fenced while a successor claims epoch 2: the ids that landed.

    Fails unless every acknowledged write is in the journal, every refused one is not, nothing
    lands after the claim has returned, and every writer ends up fenced.
    """
    journals = [await store.open() for _ in range(writers)]
    for journal in journals:
        await journal.claim(1)
    successor = await store.open()
    writing = asyncio.Event()
    acknowledged: list[str] = []
    refused: list[str] = []

    async def write_until_fenced(writer: Journal, name: str) -> None:
        for n in range(5_000):
            attempt = order(n, intent=name)
            try:
                assert await writer.insert_order(attempt) is True
            except FencingError:
                refused.append(attempt.client_order_id)
                return
            acknowledged.append(attempt.client_order_id)
            writing.set()
        raise AssertionError(f"{name} wrote 5000 orders and was never fenced by the claim")

    async def claim_while_writing() -> list[OrderRecord]:
        await writing.wait()
        await successor.claim(2)
        return await successor.all_orders()

    *_, at_claim = await asyncio.gather(
        *(write_until_fenced(j, f"w{i}") for i, j in enumerate(journals)), claim_while_writing()
    )

    final = await successor.all_orders()
    assert acknowledged and len(refused) == writers
    assert sorted(o.client_order_id for o in final) == sorted(acknowledged)
    assert final == at_claim, "a write landed after the claim"
    for journal in journals:
        with pytest.raises(FencingError):
            await journal.insert_order(order(0, intent="after"))
    return acknowledged


async def test_a_claim_waits_for_writes_in_flight_and_no_write_lands_after_it(
    backend: Store,
) -> None:
    await race_a_claim_against_writers(backend)


# --- the factory -----------------------------------------------------------------------------


def test_the_configured_backend_is_the_journal_made(tmp_path: Path) -> None:
    secrets = Secrets(
        api_key=Secret("k"),
        api_secret=Secret("s"),
        ops_token=Secret("t"),
        journal_dsn=Secret("postgresql://u@127.0.0.1:1/db"),
    )
    path = str(tmp_path / "j.sqlite")
    assert isinstance(make_journal(ExecutionConfig(journal_path=path), secrets), SqliteJournal)
    made = make_journal(ExecutionConfig(journal_backend="postgres"), secrets)
    assert isinstance(made, PostgresJournal)


# --- durability: what each mode puts in force --------------------------------------------------


@pytest.mark.parametrize(
    ("durability", "synchronous", "autocheckpoint"),
    [("fsync", "FULL", "1000"), ("process", "NORMAL", "0")],
)
async def test_sqlite_runs_each_durability_as_wal_with_its_synchronous_level(
    tmp_path: Path, durability: JournalDurability, synchronous: str, autocheckpoint: str
) -> None:
    """At "process" no write checkpoints (a checkpoint syncs the disk): the journal runs them
    on a thread of its own."""
    journal = SqliteJournal(tmp_path / "journal.sqlite", durability=durability)
    await journal.open()
    try:
        assert await journal.durability_settings() == {
            "journal_mode": "wal",
            "synchronous": synchronous,
            "wal_autocheckpoint": autocheckpoint,
        }
        await journal.insert_order(order(0))
        # a second connection, as a standby or an offline reader opens it, sees the commit
        reader = SqliteJournalSync(tmp_path / "journal.sqlite", read_only=True)
        assert [o.client_order_id for o in reader.all_orders()] == ["intent-1-0"]
        reader.close()
    finally:
        await journal.close()


async def test_sqlite_at_process_keeps_its_wal_bounded_under_writes_without_a_pause(
    tmp_path: Path,
) -> None:
    """Background checkpoints cannot finish while every moment brings a write; the WAL must
    not grow without bound for that (unchecked, 3,000 orders made it 55 MB)."""
    path = tmp_path / "journal.sqlite"
    journal = SqliteJournal(path, durability="process")
    await journal.open()
    try:
        for n in range(3_000):
            await journal.insert_order(order(n, intent=f"intent-{n}"))
        frame_bytes = 24 + 4096
        wal = path.with_name(path.name + "-wal").stat().st_size
        assert wal < (WAL_CAP_FRAMES + 1_000) * frame_bytes, f"WAL of {wal / 1e6:.1f} MB"
        assert len(await journal.all_orders()) == 3_000
    finally:
        await journal.close()


@pytest.mark.parametrize(("durability", "setting"), [("fsync", "on"), ("process", "off")])
async def test_postgres_runs_each_durability_with_its_synchronous_commit(
    postgres_dsn: str, durability: JournalDurability, setting: str
) -> None:
    async with fresh_schema(postgres_dsn) as dsn:
        journal = PostgresJournal(dsn, durability=durability)
        await journal.open()
        try:
            assert await journal.durability_settings() == {"synchronous_commit": setting}
            await journal.claim(3)  # always a synchronous commit, whatever the session's
            assert await journal.insert_order(order(0))
            assert await journal.durability_settings() == {"synchronous_commit": setting}
        finally:
            await journal.close()


async def test_sqlite_make_durable_puts_process_mode_commits_into_the_database_file(
    tmp_path: Path,
) -> None:
    """What a power loss leaves of a journal whose WAL was never synced is the database file:
    after make_durable() a parent is in it (checkpointed), before it is not."""
    path = tmp_path / "journal.sqlite"
    journal = SqliteJournal(path, durability="process")
    await journal.open()

    def in_database_file_alone(intent_id: str) -> bool:
        lonely = tmp_path / f"copy-{intent_id}.sqlite"
        lonely.write_bytes(path.read_bytes())  # the main file, without its WAL
        reader = SqliteJournalSync(lonely, read_only=True)
        try:
            return reader.get_parent(intent_id) is not None
        except sqlite3.OperationalError:  # not even the schema has reached the file
            return False
        finally:
            reader.close()

    try:
        await journal.insert_parent(parent("algo-1"))
        assert not in_database_file_alone("algo-1"), "a process-mode commit is not synced"
        await asyncio.gather(*(journal.make_durable() for _ in range(5)))
        assert in_database_file_alone("algo-1")
        await journal.insert_parent(parent("algo-2"))
        await journal.make_durable()
        assert in_database_file_alone("algo-2")
    finally:
        await journal.close()


async def test_postgres_make_durable_flushes_the_wal_past_process_mode_commits(
    postgres_dsn: str,
) -> None:
    async with fresh_schema(postgres_dsn) as dsn:
        journal = PostgresJournal(dsn, durability="process")
        await journal.open()
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as probe:
                await journal.insert_parent(parent("algo-1"))
                cursor = await probe.execute("SELECT pg_current_wal_insert_lsn()")
                written = (await cursor.fetchone())[0]  # type: ignore[index]
                await journal.make_durable()
                cursor = await probe.execute(
                    "SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", (written,)
                )
                assert (await cursor.fetchone())[0] is True  # type: ignore[index]
            assert await journal.get_parent("algo-1") is not None
        finally:
            await journal.close()


@pytest.mark.parametrize("durability", ["fsync", "process"])
def test_the_configured_durability_is_the_journals(
    tmp_path: Path, durability: JournalDurability
) -> None:
    secrets = Secrets(
        api_key=Secret("k"),
        api_secret=Secret("s"),
        ops_token=Secret("t"),
        journal_dsn=Secret("postgresql://u@127.0.0.1:1/db"),
    )
    sqlite = make_journal(
        ExecutionConfig(journal_path=str(tmp_path / "j.sqlite"), journal_durability=durability),
        secrets,
    )
    postgres = make_journal(
        ExecutionConfig(journal_backend="postgres", journal_durability=durability), secrets
    )
    assert isinstance(sqlite, SqliteJournal) and isinstance(postgres, PostgresJournal)
    assert sqlite.durability == postgres.durability == durability
    assert ExecutionConfig().journal_durability == "process"


# --- PostgreSQL only: the connection ---------------------------------------------------------


@pytest.fixture
async def postgres_schema(postgres_dsn: str) -> AsyncIterator[str]:
    async with fresh_schema(postgres_dsn) as dsn:
        yield dsn


async def test_postgres_a_lost_connection_is_a_clear_error_without_the_password_then_reconnects(
    postgres_schema: str,
) -> None:
    dsn = make_conninfo(postgres_schema, password=PASSWORD, application_name=UNDER_TEST)
    journal = PostgresJournal(dsn)
    await journal.open()
    try:
        await journal.insert_order(order(0))

        for call in (
            lambda: journal.get_order("intent-1-0"),
            lambda: journal.insert_order(order(1)),
        ):
            assert await journal.get_meta("epoch") == "0", "reconnects after a loss"
            await _terminate_sessions(postgres_schema)
            with pytest.raises(JournalUnavailableError) as lost:
                await call()
            assert PASSWORD not in str(lost.value) and PASSWORD not in repr(lost.value)
            assert "127.0.0.1" in str(lost.value)

        assert await journal.get_order("intent-1-0") == order(0)
        assert await journal.insert_order(order(1)) is True
    finally:
        await journal.close()


async def test_postgres_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    journal = PostgresJournal(f"postgresql://u:{PASSWORD}@127.0.0.1:{port}/db")
    with pytest.raises(JournalUnavailableError) as unreachable:
        await journal.open()
    assert PASSWORD not in str(unreachable.value)
    assert f"127.0.0.1:{port}/db" in str(unreachable.value)


async def test_postgres_a_server_that_never_answers_fails_within_the_connect_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        journal = PostgresJournal(f"postgresql://u@127.0.0.1:{port}/db", connect_timeout_ms=300)
        started = time.monotonic()
        with pytest.raises(JournalUnavailableError, match="no answer within 300 ms"):
            await journal.open()
        assert time.monotonic() - started < 3


async def test_postgres_every_acknowledged_write_committed_before_the_claim(
    postgres_schema: str,
) -> None:
    store = Store(lambda: PostgresJournal(postgres_schema))
    try:
        acknowledged = await race_a_claim_against_writers(store)
    finally:
        await store.close_all()
    # Commit timestamps (track_commit_timestamp=on) see what reads after the claim cannot: a
    # write whose epoch check passed before the claim but which committed after it.
    async with await psycopg.AsyncConnection.connect(postgres_schema) as conn:
        cursor = await conn.execute(
            "SELECT o.client_order_id FROM orders o, meta m WHERE m.key = 'epoch'"
            " AND pg_xact_commit_timestamp(o.xmin) >= pg_xact_commit_timestamp(m.xmin)"
        )
        late = [row[0] for row in await cursor.fetchall()]
    assert len(acknowledged) > 0
    assert late == [], "these writes committed after the claim"


def test_postgres_a_malformed_dsn_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as bad:
        PostgresJournal(f"host=127.0.0.1 password={PASSWORD} {PASSWORD}")
    assert PASSWORD not in str(bad.value)


async def _terminate_sessions(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
        cursor = await admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s",
            (UNDER_TEST,),
        )
        row = await cursor.fetchone()
        assert row is not None and row[0] >= 1, "no journal session to terminate"


async def test_a_reduce_only_order_round_trips(journal: Journal) -> None:
    closing = order(0, reduce_only=True)
    assert await journal.insert_order(closing) is True
    assert (await journal.get_order(closing.client_order_id)) == closing
    moved = closing.moved_to(OrderState.SUBMITTING, ts_ns=T0 + 5)
    assert await journal.update_order(moved) is True
    stored = await journal.get_order(closing.client_order_id)
    assert stored is not None and stored.reduce_only


def _without_reduce_only(schema: str) -> str:
    """The schema as journals were created before orders had a reduce-only column."""
    lines = [line for line in schema.splitlines() if "reduce_only" not in line]
    text = "\n".join(lines)
    return text.replace("seq INTEGER NOT NULL DEFAULT 0,\n);", "seq INTEGER NOT NULL DEFAULT 0\n);")


async def test_an_older_sqlite_journal_gains_the_reduce_only_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(_without_reduce_only(SQLITE_SCHEMA))
    old.execute(
        "INSERT INTO orders (client_order_id, intent_id, child_index, venue, symbol, side,"
        " order_type, qty, time_in_force, state, created_ts_ns)"
        " VALUES ('old-0', 'intent-old', 0, 'binance', 'BTCUSDT', 'BUY', 'MARKET', '1', 'GTC',"
        " 'FILLED', 1)"
    )
    old.commit()
    old.close()
    journal = SqliteJournal(path)
    await journal.open()
    try:
        kept = await journal.get_order("old-0")
        assert kept is not None and kept.reduce_only is False
        assert await journal.insert_order(order(0, reduce_only=True)) is True
    finally:
        await journal.close()


async def test_an_older_postgres_journal_gains_the_reduce_only_column(postgres_dsn: str) -> None:
    async with fresh_schema(postgres_dsn) as dsn:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            old_schema = _without_reduce_only(POSTGRES_SCHEMA).replace(
                "seq BIGINT NOT NULL DEFAULT 0,\n);", "seq BIGINT NOT NULL DEFAULT 0\n);"
            )
            await conn.execute(old_schema)  # type: ignore[arg-type]
            await conn.execute(
                "INSERT INTO orders (client_order_id, intent_id, child_index, venue, symbol,"
                " side, order_type, qty, time_in_force, state, created_ts_ns) VALUES ('old-0',"
                " 'intent-old', 0, 'binance', 'BTCUSDT', 'BUY', 'MARKET', '1', 'GTC', 'FILLED', 1)"
            )
        journal = PostgresJournal(dsn)
        await journal.open()
        try:
            kept = await journal.get_order("old-0")
            assert kept is not None and kept.reduce_only is False
            assert await journal.insert_order(order(0, reduce_only=True)) is True
        finally:
            await journal.close()
