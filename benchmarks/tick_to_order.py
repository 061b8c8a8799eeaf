"""Tick-to-order latency through Redis at about 1,000 ticks/s (issue 19), as a ratio to the
floor measured beside it, in the same window.

The whole engine runs as four processes (feed, strategy, risk, execution) on a real
redis-server, fed by the replay at a speed that gives about 1,000 market-data messages per
second (the rate achieved is printed). A momentum taker reacts to trades. For every order,
execution logs `tick_to_order_us`: from the feed's receive time of the trade that triggered it
to the moment the order, already journaled, is handed to the venue gateway. So the figure spans
three bus hops (md -> strategy, intents -> risk, orders -> execution), the risk checks and the
journal commit.

Baseline, during the engine's own measurement window and on the same redis-server: the same
three hops with nothing else, three relay threads moving a timestamp through three streams with
blocking XREADGROUP and XACK, at the engine's order rate. Both suffer the same noise (CPU
steal, the replay, the feed): the ratio of their p99s is the figure, the absolute p99 is
printed beside it.

Floor of the `fsync` durability, in the same window on the same disk: one journal commit alone
(SQLite, WAL, synchronous FULL, a row of an order's size) at the same rate. Every order waits
for such a commit before it is sent in that mode, so no tick-to-order figure can beat it.

One engine run per configuration: journal durability `process` (the default) and `fsync`, each
on the event loop(s) asked for.

    .venv/bin/python -m benchmarks.tick_to_order [--seconds 90] [--speed 12]
        [--durability process,fsync] [--loops asyncio,uvloop] [--noise-cores 1]

`--noise-cores N` makes a noisy run of it: N processes spin on the CPU during the window (on
2 cores, one is a neighbour taking half the machine).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis as redis_sync

from benchmarks.common import CpuSteal, cpu_noise, synthetic
from benchmarks.venue_orders import UNLIMITED
from engine.bus.base import md_stream
from tests.helpers import redis, replay_process, wait_until
from tests.integration.trading import engine_argv, engine_config, running, wait_started

STRATEGY = """
[[strategies]]
kind = "momentum"
name = "momentum"
[strategies.params]
window_ms = 3000
threshold_bps = 0.0
order_qty = "0.001"
max_position = "0.5"
cooldown_ms = {cooldown_ms}

[risk]
max_position_qty = "1"
max_orders_per_window = 1000
"""
EXECUTION = "max_orders_per_10s = 300"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values_us: list[float]) -> dict[str, float]:
    return {
        "n": len(values_us),
        "p50_ms": round(percentile(values_us, 0.5) / 1000, 3),
        "p99_ms": round(percentile(values_us, 0.99) / 1000, 3),
        "max_ms": round(max(values_us) / 1000, 3),
    }


def relay_baseline(
    port: int, *, count: int, rate_per_s: float, credentials: dict[str, Any] | None = None
) -> list[float]:
    """Three blocking XREADGROUP relays in a chain; the latency of each timestamp, in µs.
    `credentials`: a Redis ACL user's username and password (a stack's bench user)."""
    streams = [f"bench.hop{i}" for i in range(4)]
    stop = threading.Event()
    login = credentials or {}
    client = redis_sync.Redis(port=port, **login)
    for stream in streams[:3]:
        client.xgroup_create(stream, "relay", id="$", mkstream=True)
    client.xgroup_create(streams[3], "sink", id="$", mkstream=True)

    def relay(source: str, target: str | None, group: str, out: list[float]) -> None:
        conn = redis_sync.Redis(port=port, **login)
        while not stop.is_set():
            reply: Any = conn.xreadgroup(group, "c", {source: ">"}, count=16, block=200)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    if target is None:
                        out.append((time.time_ns() - int(fields[b"t"])) / 1000)
                    else:
                        conn.xadd(target, fields)
                    conn.xack(source, group, entry_id)
        conn.close()

    latencies: list[float] = []
    threads = [
        threading.Thread(target=relay, args=(streams[i], streams[i + 1], "relay", latencies))
        for i in range(3)
    ]
    threads.append(threading.Thread(target=relay, args=(streams[3], None, "sink", latencies)))
    for thread in threads:
        thread.start()
    try:
        for _ in range(count):
            client.xadd(streams[0], {"t": str(time.time_ns())})
            time.sleep(1 / rate_per_s)
        wait_until(lambda: len(latencies) >= count, timeout_s=30, what="baseline relays")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        client.close()
    return latencies


def journal_commit_floor(directory: Path, *, count: int, rate_per_s: float) -> list[float]:
    """One synchronous-FULL WAL commit at a time, as the journal writes before every send; µs."""
    db = sqlite3.connect(directory / "floor.sqlite", isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE orders (client_order_id TEXT PRIMARY KEY, body TEXT)")
        latencies: list[float] = []
        for n in range(count):
            started = time.perf_counter_ns()
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO orders VALUES (?, ?)", (f"floor-{n}", "x" * 400))
            db.execute("COMMIT")
            latencies.append((time.perf_counter_ns() - started) / 1000)
            time.sleep(1 / rate_per_s)
        return latencies
    finally:
        db.close()


def order_latencies(log: Path) -> list[float]:
    values: list[float] = []
    for line in log.read_text().splitlines():
        if '"order_sent"' not in line:
            continue
        record = json.loads(line)
        if record.get("tick_to_order_us") is not None:
            values.append(float(record["tick_to_order_us"]))
    return values


def measure(
    *,
    durability: str,
    loop: str,
    seconds: float,
    speed: str,
    recording: Path,
    keep: bool,
    noise_cores: int = 0,
) -> dict[str, Any]:
    """One engine run: orders' tick-to-order during `seconds`, with the relay baseline (and, in
    fsync mode, the commit floor) measured in threads during the same window."""
    cooldown_ms = 100  # event times are rebased to now: about ten orders a second
    rate = 1000 / cooldown_ms
    tmp = Path(tempfile.mkdtemp(prefix="stormproof-bench-"))
    try:
        with (
            redis(tmp, appendonly=False) as redis_port,
            replay_process(tmp, recording, speed=speed, extra=UNLIMITED) as sim,
        ):
            config, ports = engine_config(
                tmp,
                sim,
                redis_port,
                execution=f'{EXECUTION}\njournal_durability = "{durability}"',
                extra=STRATEGY.format(cooldown_ms=cooldown_ms)
                + f'\n[ops]\nevent_loop = "{loop}"\n',
            )
            logs = {service: tmp / f"{service}.log" for service in ports}
            with (
                running(engine_argv(config, "feed"), logs["feed"]),
                running(engine_argv(config, "risk"), logs["risk"]),
                running(engine_argv(config, "execution"), logs["execution"]) as execution,
                running(engine_argv(config, "strategy"), logs["strategy"]),
            ):
                wait_started(ports["execution"], execution, logs["execution"], timeout_s=60)
                client = redis_sync.Redis(port=redis_port)
                stream = md_stream("binance", "BTCUSDT")
                wait_until(lambda: order_latencies(logs["execution"]), timeout_s=60, what="orders")
                count = int(seconds * rate)
                results: dict[str, list[float]] = {}
                side = [
                    threading.Thread(
                        target=lambda: results.update(
                            baseline=relay_baseline(redis_port, count=count, rate_per_s=rate)
                        )
                    )
                ]
                if durability == "fsync":
                    side.append(
                        threading.Thread(
                            target=lambda: results.update(
                                floor=journal_commit_floor(tmp, count=count, rate_per_s=rate)
                            )
                        )
                    )
                first = client.xinfo_stream(stream)["entries-added"]
                started = time.monotonic()
                before = len(order_latencies(logs["execution"]))
                with CpuSteal() as steal, cpu_noise(noise_cores):
                    for thread in side:
                        thread.start()
                    for thread in side:
                        thread.join()
                elapsed = time.monotonic() - started
                ticks = client.xinfo_stream(stream)["entries-added"] - first
                client.close()
                engine = order_latencies(logs["execution"])
            engine = engine[before:]
    finally:
        if keep:
            print(json.dumps({"run_dir": str(tmp)}), flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result: dict[str, Any] = {
        "bench": "tick_to_order",
        "durability": durability,
        "event_loop": loop,
        "noise_cores": noise_cores,
        "ticks_per_s": round(ticks / elapsed),
        "window_s": round(elapsed, 1),
        "cpu_steal_pct": None if steal.share is None else round(100 * steal.share, 1),
        "orders": len(engine),
        "engine": summary(engine),
        "baseline_three_redis_hops": summary(results["baseline"]),
        "ratio_p99": round(percentile(engine, 0.99) / percentile(results["baseline"], 0.99), 2),
    }
    if "floor" in results:
        result["floor_journal_commit"] = summary(results["floor"])
        result["ratio_p99_to_commit_floor"] = round(
            percentile(engine, 0.99) / percentile(results["floor"], 0.99), 2
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--speed", default="12")
    parser.add_argument("--durability", default="process,fsync")
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    parser.add_argument(
        "--noise-cores",
        type=int,
        default=0,
        help="a noisy run: this many processes spinning on the CPU during the window",
    )
    args = parser.parse_args()
    recording = synthetic(1800)
    for durability in args.durability.split(","):
        for loop in args.loops.split(","):
            result = measure(
                durability=durability,
                loop=loop,
                seconds=args.seconds,
                speed=args.speed,
                recording=recording,
                keep=args.keep,
                noise_cores=args.noise_cores,
            )
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
