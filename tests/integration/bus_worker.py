"""A consumer process for bus tests. Its effect is durable and idempotent: one row per message id
in SQLite (INSERT OR IGNORE), committed before the entry is acknowledged. Every delivery is also
logged, so a test can tell at-least-once delivery from exactly-once effect.

    python -m tests.integration.bus_worker --redis-url URL --stream S --group G --name N \
        --db PATH [--delay-ms 0] [--claim-idle-ms 5000] [--expect N]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys

from engine.bus.base import Delivery
from engine.bus.consumer import StreamConsumer
from engine.bus.redis_streams import RedisStreamsBus
from engine.core.messages import Control
from plumbing.backoff import Backoff
from plumbing.logging import configure_logging


async def main(args: argparse.Namespace) -> int:
    configure_logging(service=f"worker-{args.name}")
    db = sqlite3.connect(args.db, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS effects (id TEXT PRIMARY KEY, consumer TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS deliveries (id TEXT, consumer TEXT)")
    bus = RedisStreamsBus(args.redis_url, socket_timeout_ms=1000)
    done = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        message = delivery.message
        assert isinstance(message, Control)
        db.execute("INSERT INTO deliveries VALUES (?, ?)", (message.reason, args.name))
        if args.delay_ms:
            await asyncio.sleep(args.delay_ms / 1000)
        db.execute("INSERT OR IGNORE INTO effects VALUES (?, ?)", (message.reason, args.name))
        if args.expect and db.execute("SELECT count(*) FROM effects").fetchone()[0] >= args.expect:
            done.set()

    consumer = StreamConsumer(
        bus,
        group=args.group,
        consumer=args.name,
        streams=[args.stream],
        handler=handle,
        count=50,
        block_ms=100,
        claim_min_idle_ms=args.claim_idle_ms,
        backoff=Backoff(base_ms=50, cap_ms=500),
    )
    task = asyncio.create_task(consumer.run())
    waiter = asyncio.create_task(done.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    consumer.stop()
    await asyncio.wait_for(task, 10)
    await bus.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("--redis-url", "--stream", "--group", "--name", "--db"):
        parser.add_argument(name, required=True)
    parser.add_argument("--delay-ms", type=float, default=0)
    parser.add_argument("--claim-idle-ms", type=int, default=5000)
    parser.add_argument("--expect", type=int, default=0)
    sys.exit(asyncio.run(main(parser.parse_args())))
