"""The judge's wiretap on the engine's bus, against a real Redis and the engine's own publisher:
it sees every market message with Redis's arrival time and the replay's market time, the ledger
of intents (also those published before it started), and what the engine told its clients."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from engine.bus.redis_streams import RedisStreamsBus
from engine.core.messages import BookTop, Intent, IntentDone, Quote, RiskDenial, Side, Trade
from harness.truth.bus import BusObserver
from tests.helpers import redis

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    with redis(tmp_path / "redis") as port:
        yield port


@pytest.fixture
async def bus(redis_port: int) -> AsyncIterator[RedisStreamsBus]:
    backend = RedisStreamsBus(f"redis://127.0.0.1:{redis_port}/0", maxlen=10_000)
    yield backend
    await backend.close()


def intent(intent_id: str, **fields: object) -> Intent:
    values: dict[str, object] = {
        "intent_id": intent_id,
        "source": "momentum",
        "venue": "binance",
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "qty": Decimal("0.002"),
        "correlation_id": "binance:BTCUSDT:t42",
    }
    values.update(fields)
    return Intent(**values)  # type: ignore[arg-type]


def wait_for(predicate: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)  # a poll interval, not a wait for an outcome
    raise AssertionError("the observer never saw it")


async def test_the_observer_keeps_market_intents_and_answers_from_the_stream_start(
    bus: RedisStreamsBus, redis_port: int
) -> None:
    # published before the observer is up: it must still be in the ledger
    await bus.publish("intents", intent("momentum.a.1", algo="twap"))
    observer = BusObserver(port=redis_port, venue="binance", symbols=["BTCUSDT"])
    observer.start()
    try:
        now_ms = time.time_ns() // 1_000_000
        await bus.publish(
            "md.binance.BTCUSDT",
            Trade(
                venue="binance",
                symbol="BTCUSDT",
                trade_id=42,
                price=100.0,
                qty=0.1,
                buyer_is_maker=False,
                exchange_ts_ms=now_ms - 7,
                recv_ts_ns=0,
                feed="a",
                correlation_id="binance:BTCUSDT:t42",
            ),
        )
        await bus.publish(
            "md.binance.BTCUSDT",
            Quote(
                venue="binance",
                symbol="BTCUSDT",
                update_id=1,
                bid_price=99.9,
                bid_qty=1,
                ask_price=100.1,
                ask_qty=1,
                recv_ts_ns=0,
                feed="b",
            ),
        )
        await bus.publish(
            "md.binance.BTCUSDT",
            BookTop(
                venue="binance",
                symbol="BTCUSDT",
                update_id=2,
                bids=[(99.9, 1.0)],
                asks=[(100.1, 1.0)],
                exchange_ts_ms=now_ms - 3,
                recv_ts_ns=0,
                feed="a",
            ),
        )
        await bus.publish("intents", intent("momentum.a.2"))
        await bus.publish("intents", intent("momentum.a.3", action="cancel"))
        await bus.publish(
            "risk.events",
            RiskDenial(intent_id="momentum.a.2", source="momentum", check="x", reason="y", ts_ns=1),
        )
        await bus.publish(
            "exec.binance",
            IntentDone(
                venue="binance",
                symbol="BTCUSDT",
                intent_id="momentum.a.1",
                side=Side.BUY,
                qty=Decimal("0.002"),
                filled_qty=Decimal(0),
                outcome="rejected",
                reason="halted",
                children=0,
                ts_ns=1,
            ),
        )
        await bus.publish_raw("intents", b"not json at all")
        wait_for(lambda: len(observer.answers_since(0)) == 2 and observer.unreadable == 1)
        md = observer.md_between(0, 2**62)
        assert [(o.kind, o.feed) for o in md] == [("trade", "a"), ("quote", "b"), ("book", "a")]
        trade, quote, book = md
        assert trade.event_ms == now_ms - 7 and trade.correlation_id == "binance:BTCUSDT:t42"
        assert quote.event_ms is None and quote.stamp_ms == quote.entry_ms
        assert book.event_ms == now_ms - 3 and book.entry_ms >= now_ms - 1
        ledger = {i.intent_id: i for i in observer.all_intents()}
        assert set(ledger) == {"momentum.a.1", "momentum.a.2"}, "a cancel is no order"
        assert ledger["momentum.a.1"].algo == "twap" and ledger["momentum.a.1"].source == "bus"
        assert ledger["momentum.a.2"].qty == Decimal("0.002")
        answers = {(a.intent_id, a.kind, a.outcome) for a in observer.answers_since(0)}
        assert answers == {
            ("momentum.a.2", "risk_denial", "denied"),
            ("momentum.a.1", "intent_done", "rejected"),
        }
    finally:
        observer.stop()
    assert not observer.is_alive()


def test_redis_going_away_is_an_outage_the_observer_records_and_survives(tmp_path: Path) -> None:
    with redis(tmp_path / "r") as port:
        observer = BusObserver(port=port, venue="binance", symbols=["BTCUSDT"], block_ms=50)
        observer.start()
    try:
        wait_for(lambda: observer.down_since is not None, timeout_s=20)
        assert observer.is_alive(), "an unreachable Redis is an outage, not a crash"
    finally:
        observer.stop()
    assert not observer.is_alive()


async def test_caught_up_means_every_entry_written_before_it_was_read(
    bus: RedisStreamsBus, redis_port: int
) -> None:
    # a backlog longer than one read: the observer has caught up only after the last of it
    for n in range(2_500):
        await bus.publish("intents", intent(f"momentum.b.{n}"))
    written_ns = time.time_ns()
    observer = BusObserver(port=redis_port, venue="binance", symbols=["BTCUSDT"])
    observer.start()
    try:
        wait_for(lambda: observer.caught_up_ns >= written_ns)
        assert len(observer.all_intents()) == 2_500
    finally:
        observer.stop()


async def test_with_a_locator_the_observer_follows_a_moved_server_that_still_answers(
    bus: RedisStreamsBus, redis_port: int, tmp_path: Path
) -> None:
    # a replaced Redis pod: the old server keeps answering (empty) while the writers moved on
    with redis(tmp_path / "new") as new_port:
        where = {"port": redis_port}
        observer = BusObserver(
            port=redis_port,
            venue="binance",
            symbols=["BTCUSDT"],
            locate=lambda: ("127.0.0.1", where["port"]),
        )
        observer.start()
        moved = RedisStreamsBus(f"redis://127.0.0.1:{new_port}/0", maxlen=10_000)
        try:
            await bus.publish("intents", intent("momentum.old.1"))
            wait_for(lambda: "momentum.old.1" in {i.intent_id for i in observer.all_intents()})
            where["port"] = new_port
            await moved.publish("intents", intent("momentum.new.1"))
            written_ns = time.time_ns()
            wait_for(lambda: observer.caught_up_ns >= written_ns)
            # caught up means caught up with the server the locator names now
            assert "momentum.new.1" in {i.intent_id for i in observer.all_intents()}
            assert observer.port == new_port
        finally:
            observer.stop()
            await moved.close()


def test_a_server_that_stops_answering_is_an_outage_within_seconds(tmp_path: Path) -> None:
    # a vanished pod's server answers nothing: the observer must notice at its own read
    # timeout (and ask its locator), not after its client library's retries
    import os
    import signal

    with redis(tmp_path / "stalled") as port:
        observer = BusObserver(port=port, venue="binance", symbols=["BTCUSDT"])
        observer.start()
        try:
            wait_for(lambda: observer.caught_up_ns > 0)
            # redis-server retitles itself "redis-server 127.0.0.1:<port>"
            pid = int(
                next(
                    line.split()[0]
                    for line in os.popen("pgrep -a redis-server").read().splitlines()
                    if line.endswith(f":{port}")
                )
            )
            os.kill(pid, signal.SIGSTOP)
            try:
                stalled_ns = time.time_ns()
                wait_for(lambda: observer.down_since is not None, timeout_s=6.0)
                assert observer.down_since is not None and observer.down_since >= stalled_ns
            finally:
                os.kill(pid, signal.SIGCONT)
        finally:
            observer.stop()
