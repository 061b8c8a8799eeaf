"""Acceptance (issue 5): nothing acknowledged is lost and nothing is applied twice, through a Redis
restart and through a consumer killed in the middle of a batch."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.bus.publisher import Publisher
from engine.bus.redis_streams import RedisStreamsBus
from engine.core.messages import Control
from harness.ports import free_ports, port_open
from harness.tools import redis_server
from plumbing.backoff import Backoff
from tests.helpers import wait_until

pytestmark = pytest.mark.integration
STREAM, GROUP = "durability", "workers"


class RedisProcess:
    """A redis-server that can be stopped and started again on the same port and data."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_ports(1)[0]
        self.dir = tmp / "redis"
        self.dir.mkdir()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redis_server(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self.port), timeout_s=10, what="redis to listen")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=10)


def worker(
    redis: RedisProcess,
    db: Path,
    name: str,
    *,
    delay_ms: float = 0,
    claim_idle_ms: int = 5000,
    expect: int = 0,
    log: Path,
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.bus_worker",
                "--redis-url",
                redis.url,
                "--stream",
                STREAM,
                "--group",
                GROUP,
                "--name",
                name,
                "--db",
                str(db),
                "--delay-ms",
                str(delay_ms),
                "--claim-idle-ms",
                str(claim_idle_ms),
                "--expect",
                str(expect),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def rows(db: Path, table: str) -> list[str]:
    """Ids in a table of the worker's database (none before the worker has created it)."""
    try:
        with sqlite3.connect(db) as conn:
            return [row[0] for row in conn.execute(f"SELECT id FROM {table}")]
    except sqlite3.OperationalError:
        return []


def effects(db: Path) -> list[str]:
    return rows(db, "effects")


def deliveries(db: Path) -> list[str]:
    return rows(db, "deliveries")


def test_redis_restart_mid_stream_loses_nothing_and_applies_nothing_twice(
    tmp_path: Path,
) -> None:
    redis = RedisProcess(tmp_path)
    redis.start()
    db = tmp_path / "effects.sqlite"
    consumer = worker(redis, db, "w1", expect=1500, log=tmp_path / "w1.log")

    async def publish() -> None:
        bus = RedisStreamsBus(redis.url, socket_timeout_ms=500)
        went_degraded = asyncio.Event()

        def on_degraded(degraded: bool) -> None:
            if degraded:
                went_degraded.set()

        publisher = Publisher(
            bus,
            max_queue=5000,
            backoff=Backoff(base_ms=20, cap_ms=200),
            on_degraded=on_degraded,
        )
        runner = asyncio.create_task(publisher.run())
        for i in range(1500):
            await publisher.put(STREAM, Control(command="pause", reason=str(i)))
            if i == 600:
                await publisher.flush()
                redis.stop()  # mid-stream: the publisher buffers and reports it is degraded
            if i == 900:
                # Noticing the loss can take up to the socket timeout, so wait for the report
                # itself rather than for a number of puts.
                await asyncio.wait_for(went_degraded.wait(), 10)
                assert publisher.degraded
                redis.start()
            await asyncio.sleep(0.001)
        await asyncio.wait_for(publisher.flush(), 30)
        publisher.stop()
        await runner
        await bus.close()

    try:
        asyncio.run(publish())
        assert consumer.wait(timeout=60) == 0
    finally:
        if consumer.poll() is None:
            consumer.kill()
        redis.stop()
    done = effects(db)
    assert sorted(done, key=int) == [str(i) for i in range(1500)], "each one, exactly once"


def test_a_killed_consumers_pending_entries_are_claimed_by_its_successor(tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path)
    redis.start()
    db = tmp_path / "effects.sqlite"

    async def publish() -> None:
        bus = RedisStreamsBus(redis.url)
        await bus.ensure_group(STREAM, GROUP, "earliest")
        await bus.publish_many(
            [(STREAM, Control(command="pause", reason=str(i))) for i in range(300)]
        )
        await bus.close()

    workers: list[subprocess.Popen[bytes]] = []
    try:
        asyncio.run(publish())
        first = worker(redis, db, "first", delay_ms=40, log=tmp_path / "first.log")
        workers.append(first)
        wait_until(lambda: len(effects(db)) >= 10, timeout_s=20, what="the first worker to work")
        first.send_signal(signal.SIGKILL)  # mid-batch: applied some, acknowledged none of them
        first.wait(timeout=10)
        in_flight = set(deliveries(db))
        heir = worker(redis, db, "heir", claim_idle_ms=300, expect=300, log=tmp_path / "heir.log")
        workers.append(heir)
        assert heir.wait(timeout=60) == 0
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait()
        redis.stop()
    assert sorted(effects(db), key=int) == [str(i) for i in range(300)]
    redelivered = [i for i in deliveries(db) if i in in_flight]
    assert len(redelivered) > len(in_flight), "the dead worker's entries were delivered again"
    assert "bus_claimed_pending" in (tmp_path / "heir.log").read_text()
