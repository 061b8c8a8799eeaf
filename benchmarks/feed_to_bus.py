"""Feed to bus (issue 5), in-process on the feed service's own code path, against a real
redis-server started for the run:

1. Throughput: recorded Binance messages handed to the feed connection as if they had just
   arrived (parse, dedupe across feeds, book sync, publish, pipelined XADD), against raw
   redis-py pipelined XADD of the very payloads the feed produced, in the same run.
2. Latency: receive to published (XADD acknowledged), with messages arriving at 5,000/s,
   against the floor: the feed's own output entries handed at the same rate to the least a
   publisher can do (one writer pipelining whatever waits into raw XADDs). The two alternate in
   six slices of the run, so that both meet the same noise; CPU steal is printed beside them.

Each on the event loop(s) asked for.

    .venv/bin/python -m benchmarks.feed_to_bus [--loops asyncio,uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any, cast

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
from engine.strategy.registry import STRATEGY_PARAMS
from harness.ports import free_ports, port_open
from harness.tools import redis_server
from plumbing.event_loop import EventLoopName, run
from plumbing.heap import settle_heap
from replay.recording import read_records


def feed_service(bus: Any) -> FeedService:
    config = parse_config(
        b"""
[venue]
ws_urls = ["ws://127.0.0.1:1"]
rest_url = "http://127.0.0.1:1"
symbols = ["BTCUSDT"]
[bus]
stream_maxlen = 10000000
""",
        strategy_params=STRATEGY_PARAMS,
    )
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


async def feed_latency(url: str, payloads: list[bytes], rate: float) -> list[float]:
    """Receive to published (XADD acknowledged) through the feed, in seconds."""
    bus = RedisStreamsBus(url, maxlen=10_000_000)
    service = feed_service(bus)
    samples: list[float] = []
    service.publisher._on_latency = samples.append
    await drive(service, payloads, rate)
    await bus.close()
    return samples


async def raw_latency(url: str, entries: list[tuple[str, bytes]], rate: float) -> list[float]:
    """The floor: the feed's own output entries handed over at `rate` to the least a publisher
    can do, one writer pipelining whatever is waiting into XADDs; hand-over to acknowledged, in
    seconds."""
    client = aioredis.Redis.from_url(url)
    waiting: list[tuple[str, bytes, int]] = []
    ready = asyncio.Event()
    samples: list[float] = []
    done = False

    async def writer() -> None:
        while True:
            await ready.wait()
            ready.clear()
            if not waiting:
                if done:
                    return
                continue
            batch = waiting[:]
            waiting.clear()
            pipe = client.pipeline(transaction=False)
            for name, raw, _ in batch:
                pipe.xadd(name, {"m": raw}, maxlen=10_000_000, approximate=True)
            await pipe.execute()
            now = time.monotonic_ns()
            samples.extend((now - received) / 1e9 for _, _, received in batch)
            ready.set()  # what arrived meanwhile

    task = asyncio.create_task(writer())
    started = time.perf_counter()
    interval = 1 / rate
    for n, (name, raw) in enumerate(entries):
        delay = started + n * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        waiting.append((name, raw, time.monotonic_ns()))
        ready.set()
    done = True
    ready.set()
    await task
    await client.aclose()
    return samples


def pick(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3, 3)


async def latency(url: str, payloads: list[bytes], rate: float, rounds: int = 6) -> dict[str, Any]:
    """Feed and raw XADD, alternating in `rounds` slices so that both meet the same noise."""
    capture = MemoryBus(maxlen=10_000_000)
    await drive(feed_service(capture), payloads, None)
    entries = [
        (name, raw) for name, stream in capture._streams.items() for raw in stream.entries.values()
    ]
    feed: list[float] = []
    raw: list[float] = []
    size, raw_size = len(payloads) // rounds, len(entries) // rounds
    # the feed publishes fewer entries than it receives messages: the raw writer gets them at
    # the feed's output rate
    raw_rate = rate * len(entries) / len(payloads)
    with CpuSteal() as steal:
        for k in range(rounds):
            feed += await feed_latency(url, payloads[k * size : (k + 1) * size], rate)
            raw += await raw_latency(url, entries[k * raw_size : (k + 1) * raw_size], raw_rate)
    return {
        "benchmark": "feed_receive_to_published",
        "rate_per_s": rate,
        "messages": len(feed),
        "p50_ms": pick(feed, 0.5),
        "p99_ms": pick(feed, 0.99),
        "max_ms": round(max(feed) * 1e3, 3),
        "raw_xadd_rate_per_s": round(raw_rate),
        "raw_xadd_p50_ms": pick(raw, 0.5),
        "raw_xadd_p99_ms": pick(raw, 0.99),
        "ratio_p99": round(pick(feed, 0.99) / pick(raw, 0.99), 2),
        "cpu_steal_pct": None if steal.share is None else round(100 * steal.share, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loops", default="asyncio,uvloop")
    loops = [cast(EventLoopName, name) for name in parser.parse_args().loops.split(",")]
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
        for loop in loops:
            result = run(throughput(url, payloads), loop=loop)
            print(json.dumps({**result, "event_loop": loop}), flush=True)
            # as the engine's app does once its services are up: the recording held in
            # memory for the benchmark must not be walked by full collections mid-run
            settle_heap()
            result = run(latency(url, payloads[:60_000], 5000.0), loop=loop)
            print(json.dumps({**result, "event_loop": loop}), flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
