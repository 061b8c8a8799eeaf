"""One contract, two backends: MemoryBus must behave exactly like RedisStreamsBus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.bus.base import DEAD_LETTERS, Bus, Delivery
from engine.bus.consumer import StreamConsumer
from engine.bus.memory import MemoryBus
from engine.bus.redis_streams import RedisStreamsBus
from engine.core.messages import Control
from tests.helpers import redis


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with redis(tmp_path_factory.mktemp("bus")) as port:
        yield port


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.unit),
        pytest.param("redis", marks=pytest.mark.integration),
    ]
)
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        yield MemoryBus(maxlen=1000)
        return
    port = request.getfixturevalue("redis_port")
    backend = RedisStreamsBus(f"redis://127.0.0.1:{port}/0", maxlen=1000)
    await backend.client.flushdb()
    yield backend
    await backend.close()


def control(n: int) -> Control:
    return Control(command="pause", reason=str(n))


async def test_group_reads_each_entry_once_and_pending_until_acked(bus: Bus) -> None:
    await bus.ensure_group("s", "g", "earliest")
    await bus.publish_many([("s", control(i)) for i in range(3)])
    first = await bus.read_group(group="g", consumer="a", streams=["s"], count=10, block_ms=100)
    assert [d.message.reason for d in first] == ["0", "1", "2"]  # type: ignore[union-attr]
    again = await bus.read_group(group="g", consumer="a", streams=["s"], count=10, block_ms=50)
    assert again == []
    pending = await bus.read_group(
        group="g", consumer="a", streams=["s"], count=10, block_ms=0, pending=True
    )
    assert [d.entry_id for d in pending] == [d.entry_id for d in first]
    await bus.ack("g", first[:2])
    pending = await bus.read_group(
        group="g", consumer="a", streams=["s"], count=10, block_ms=0, pending=True
    )
    assert [d.entry_id for d in pending] == [first[2].entry_id]


async def test_latest_group_skips_history_earliest_reads_it(bus: Bus) -> None:
    await bus.publish("h", control(1))
    await bus.ensure_group("h", "new", "latest")
    await bus.ensure_group("h", "old", "earliest")
    await bus.publish("h", control(2))
    new = await bus.read_group(group="new", consumer="c", streams=["h"], count=10, block_ms=100)
    old = await bus.read_group(group="old", consumer="c", streams=["h"], count=10, block_ms=100)
    assert [d.message.reason for d in new] == ["2"]  # type: ignore[union-attr]
    assert [d.message.reason for d in old] == ["1", "2"]  # type: ignore[union-attr]


async def test_dead_consumers_entries_are_claimed_by_a_successor(bus: Bus) -> None:
    await bus.ensure_group("c", "g", "earliest")
    await bus.publish("c", control(7))
    taken = await bus.read_group(group="g", consumer="dead", streams=["c"], count=1, block_ms=100)
    assert len(taken) == 1
    assert (
        await bus.autoclaim(stream="c", group="g", consumer="heir", min_idle_ms=60_000, count=10)
        == []
    )
    await asyncio.sleep(0.02)  # idle time is what autoclaim measures
    claimed = await bus.autoclaim(stream="c", group="g", consumer="heir", min_idle_ms=10, count=10)
    assert [d.entry_id for d in claimed] == [taken[0].entry_id]


async def test_values_are_stored_and_overwritten_and_absent_is_none(bus: Bus) -> None:
    assert await bus.get_value("checkpoint.never-set") is None
    await bus.set_value("checkpoint.a", b'{"seq": 1}')
    await bus.set_value("checkpoint.a", b'{"seq": 2}')
    await bus.set_value("checkpoint.b", b"")
    assert await bus.get_value("checkpoint.a") == b'{"seq": 2}'
    assert await bus.get_value("checkpoint.b") == b""


async def test_a_claim_is_taken_once_and_reads_like_a_value(bus: Bus) -> None:
    assert await bus.claim_once("intake.intent.a", b"first", ttl_ms=60_000) is None
    assert await bus.claim_once("intake.intent.a", b"second", ttl_ms=60_000) == b"first"
    assert await bus.get_value("intake.intent.a") == b"first", "the loser changed nothing"
    await bus.set_value("plain", b"v")
    assert await bus.claim_once("plain", b"w", ttl_ms=60_000) == b"v"


async def test_concurrent_claims_of_one_key_have_one_winner(bus: Bus) -> None:
    results = await asyncio.gather(
        *(bus.claim_once("race", str(i).encode(), ttl_ms=60_000) for i in range(20))
    )
    winners = [i for i, existing in enumerate(results) if existing is None]
    assert len(winners) == 1
    assert {r for r in results if r is not None} == {str(winners[0]).encode()}


async def test_swap_value_changes_or_deletes_only_the_expected_value(bus: Bus) -> None:
    assert await bus.claim_once("k", b"pending", ttl_ms=60_000) is None
    assert not await bus.swap_value("k", b"other", b"x", ttl_ms=60_000)
    assert await bus.get_value("k") == b"pending"
    assert await bus.swap_value("k", b"pending", b"accepted", ttl_ms=60_000)
    assert await bus.get_value("k") == b"accepted"
    assert not await bus.swap_value("k", b"pending", None), "not ours any more: kept"
    assert await bus.get_value("k") == b"accepted"
    assert await bus.swap_value("k", b"accepted", None)
    assert await bus.get_value("k") is None
    assert not await bus.swap_value("k", b"accepted", None), "nothing to delete"
    assert await bus.claim_once("k", b"again", ttl_ms=60_000) is None, "released: free again"


async def test_a_claim_expires_after_its_ttl_and_a_swap_sets_a_new_one(bus: Bus) -> None:
    assert await bus.claim_once("short", b"a", ttl_ms=150) is None
    assert await bus.claim_once("long", b"a", ttl_ms=150) is None
    assert await bus.swap_value("long", b"a", b"b", ttl_ms=60_000)
    assert await bus.claim_once("short", b"x", ttl_ms=150) == b"a"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while await bus.get_value("short") is not None:
        assert loop.time() < deadline, "the claim never expired"
        await asyncio.sleep(0.05)
    assert await bus.claim_once("short", b"x", ttl_ms=60_000) is None, "expired: free again"
    assert await bus.get_value("long") == b"b", "the swap gave it the longer TTL"


async def test_streams_are_trimmed_to_a_bound(bus: Bus) -> None:
    for start in range(0, 3000, 500):
        await bus.publish_many([("t", control(i)) for i in range(start, start + 500)])
    everything = await bus.read_range("t", count=10_000)
    assert 1000 <= len(everything) < 3000
    assert everything[-1].message.reason == "2999"  # type: ignore[union-attr]


async def test_consumer_loop_processes_once_and_dead_letters_garbage(bus: Bus) -> None:
    seen: list[str] = []
    done = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery.message.reason)  # type: ignore[union-attr]
        if len(seen) == 2:
            done.set()

    consumer = StreamConsumer(
        bus, group="g", consumer="x", streams=["loop"], handler=handler, block_ms=20
    )
    task = asyncio.create_task(consumer.run())
    try:
        await bus.publish("loop", control(1))
        await bus.publish_raw("loop", b"not a message")
        await bus.publish("loop", control(2))
        await asyncio.wait_for(done.wait(), 5)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 5)
    assert seen == ["1", "2"]
    assert consumer.dead_lettered == 1
    dead = await bus.read_range(DEAD_LETTERS)
    assert b"not a message" in dead[0].raw
    assert (
        await bus.read_group(
            group="g", consumer="x", streams=["loop"], count=10, block_ms=0, pending=True
        )
        == []
    )


def test_redis_unreachable_is_bus_unavailable(tmp_path: Path) -> None:
    from harness.ports import free_ports

    async def ping() -> None:
        bus = RedisStreamsBus(f"redis://127.0.0.1:{free_ports(1)[0]}/0")
        try:
            await bus.ping()
        finally:
            await bus.close()

    from engine.core.errors import BusUnavailableError

    with pytest.raises(BusUnavailableError, match="redis unavailable"):
        asyncio.run(ping())


test_redis_unreachable_is_bus_unavailable = pytest.mark.integration(
    test_redis_unreachable_is_bus_unavailable
)
