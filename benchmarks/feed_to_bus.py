"""Feed to bus (issue 5), in-process on the feed service's own code path, against a real
redis-server started for the run:

1. Throughput: recorded Binance messages handed to the feed connection as if they had just
   arrived (parse, dedupe across feeds, book sync, publish, pipelined XADD), against raw
   redis-py pipelined XADD of the very payloads the feed produced, in the same run.
2. Latency: receive to published (XADD acknowledged), with messages arriving at 5,000/s.

    .venv/bin/python -m benchmarks.feed_to_bus
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from benchmarks.common import CpuSteal, synthetic, wait_for
from engine.bus.memory import MemoryBus
from engine.bus.redis_streams import RedisStreamsBus
from engine.config import Secret, Secrets, Settings, parse_config
from engine.core.clock import LiveClock
from engine.marketdata.binance import parse_snapshot
from engine.marketdata.service import FeedService
from engine.runtime.metrics import EngineMetrics
from engine.runtime.service import ServiceContext
from harness.ports import free_ports, port_open
from harness.tools import redis_server
from plumbing.heap import settle_heap
from replay.recording import read_records


def feed_service(bus: Any) -> FeedService:
    config = parse_config(b"""
[venue]
ws_urls = ["ws://127.0.0.1:1"]
rest_url = "http://127.0.0.1:1"
symbols = ["BTCUSDT"]
[bus]
stream_maxlen = 10000000
""")
    secret = Secret("")
    settings = Settings(
        config=config,
        secrets=Secrets(api_key=secret, api_secret=secret, ops_token=secret),
        path="-",
    )
    ctx = ServiceContext(
        settings=settings, clock=LiveClock(), bus=bus, metrics=EngineMetrics(), instance="bench"
    )
    return FeedService(ctx)


def messages(recording: Path) -> list[bytes]:
    return [r.payload for r in read_records(recording) if r.payload]


async def drive(service: FeedService, payloads: list[bytes], rate_per_s: float | None) -> float:
    await service.on_start()
    feed = service.feeds[0]
    feed.connected = True
    publisher = asyncio.create_task(service.publisher.run())
    started = time.perf_counter()
    interval = 1 / rate_per_s if rate_per_s else 0.0
    for n, payload in enumerate(payloads):
        if rate_per_s:
            due = started + n * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        if payload.startswith(b'{"lastUpdateId"'):
            feed.syncs["BTCUSDT"].on_snapshot(*parse_snapshot(payload))
            continue
        await feed.on_message(payload, time.time_ns(), time.monotonic_ns())
    await service.publisher.flush()
    elapsed = time.perf_counter() - started
    service.publisher.stop()
    await publisher
    await service.on_stop()
    return elapsed


async def throughput(url: str, payloads: list[bytes]) -> dict[str, Any]:
    bus = RedisStreamsBus(url, maxlen=10_000_000)
    await bus.client.flushdb()
    service = feed_service(bus)
    elapsed = await drive(service, payloads, None)
    published = service.publisher.published
    await bus.close()
    # the same payloads, produced once more into memory, then written with raw pipelined XADD
    capture = MemoryBus(maxlen=10_000_000)
    await drive(feed_service(capture), payloads, None)
    produced = [
        (name, raw) for name, stream in capture._streams.items() for raw in stream.entries.values()
    ]
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    started = time.perf_counter()
    for i in range(0, len(produced), 512):
        pipe = client.pipeline(transaction=False)
        for name, raw in produced[i : i + 512]:
            pipe.xadd(name, {"m": raw}, maxlen=10_000_000, approximate=True)
        await pipe.execute()
    raw_elapsed = time.perf_counter() - started
    await client.aclose()
    feed_rate, raw_rate = published / elapsed, len(produced) / raw_elapsed
    return {
        "benchmark": "feed_to_bus_throughput",
        "input_messages": len(payloads),
        "published": published,
        "feed_msgs_per_s": round(feed_rate),
        "raw_xadd_msgs_per_s": round(raw_rate),
        "ratio": round(feed_rate / raw_rate, 3),
    }


async def latency(url: str, payloads: list[bytes], rate: float) -> dict[str, Any]:
    bus = RedisStreamsBus(url, maxlen=10_000_000)
    service = feed_service(bus)
    samples: list[float] = []
    service.publisher._on_latency = samples.append
    with CpuSteal() as steal:
        await drive(service, payloads, rate)
    await bus.close()
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 3)

    return {
        "benchmark": "feed_receive_to_published",
        "rate_per_s": rate,
        "messages": len(ordered),
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "max_ms": round(ordered[-1] * 1e3, 3),
        "cpu_steal_pct": None if steal.share is None else round(100 * steal.share, 1),
    }


def main() -> None:
    recording = synthetic(1800)
    payloads = messages(recording)
    port = free_ports(1)[0]
    server = subprocess.Popen(
        [
            redis_server(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open(port))
        url = f"redis://127.0.0.1:{port}/0"
        print(json.dumps(asyncio.run(throughput(url, payloads))), flush=True)
        # as the engine's runner does once its services are up: the recording held in memory
        # for the benchmark must not be walked by full collections in the middle of the run
        settle_heap()
        print(json.dumps(asyncio.run(latency(url, payloads[:50_000], 5000.0))), flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
