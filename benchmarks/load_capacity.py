"""Load capacity of the whole stack (issue 8): the highest sustained intent rate whose p99
intent-to-venue-ack stays under 50 ms, and the market-data rate the engine sustains with its
stream lag bounded. Each against a raw Redis baseline measured in the same run.

The stack is the game days' (redis, toxiproxy on every link, the replay with the exchange
simulator, the engine's four services), with the venue's order limit raised for load.

1. Intents: Locust (headless, its own process, load/trading.py without a shape) sends market
   intents through the intake API at a fixed rate for `--step-s` seconds, for each rate of
   `--rates`; intent-to-ack is timed on the venue's clock (simulator ground truth). The
   sustained rate is the highest whose p99 is under 50 ms with no ack lost. Baseline: the bare
   Redis hops an intent makes on its way (intents -> risk, orders -> execution, plus the
   intake's publish: three XADD + blocking XREADGROUP + XACK relays) at the same rate.
2. Market data: the replay speed is doubled step by step; for each, the market-data stream's
   entries per second and the lag of every consumer group on it over `--step-s` seconds. The
   rate is sustained when the lag at the end of the step is bounded (under half a second of
   messages, or 100). Baseline: one bare redis-py consumer (XREADGROUP COUNT 100 + XACK) draining
   a stream a producer fills as fast as it can, on the same redis-server.

    .venv/bin/python -m benchmarks.load_capacity [--rates 5,10,20,40,80] [--step-s 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis as redis_sync

from benchmarks.common import synthetic
from benchmarks.tick_to_order import percentile, relay_baseline
from engine.bus.base import md_stream
from harness.load.runner import LOAD_ORDERS_PER_10S, LoadRun, LoadSpec
from harness.stack import Stack, StackOptions
from harness.tools import PROJECT_ROOT

LOCUSTFILE = PROJECT_ROOT / "load" / "trading.py"
ACK_P99_TARGET_MS = 50.0


def intent_step(stack: Stack, rate: float, seconds: float, out: Path) -> dict[str, Any]:
    users = max(1, int(rate // 5))
    spec = LoadSpec(
        locustfile=LOCUSTFILE,
        shape=None,
        duration_s=seconds,
        users=users,
        intent_rate=rate / users,
    )
    run = LoadRun(stack, spec, out)
    run.start()
    run.wait(timeout_s=seconds + 120)
    slis = run.slis(drain_s=5)
    return {
        "rate_per_s": rate,
        "sent": slis.get("intents_sent"),
        "acked": slis.get("intents_acked"),
        "ack_p50_ms": slis.get("intent_to_ack_p50_ms"),
        "ack_p99_ms": slis.get("intent_to_ack_p99_ms"),
    }


def md_step(stack: Stack, speed: float, seconds: float) -> dict[str, Any]:
    stack.client().control("POST", "/replay/speed", body={"speed": speed})
    client = stack.redis_client("bench")
    stream = md_stream("binance", stack_symbol(stack))
    try:
        first = client.xinfo_stream(stream)["entries-added"]
        started = time.monotonic()
        lags: list[int | None] = []
        while time.monotonic() - started < seconds:
            time.sleep(0.25)  # a sampling interval
            lags.append(stream_lag(client, stream))
        elapsed = time.monotonic() - started
        rate = (client.xinfo_stream(stream)["entries-added"] - first) / elapsed
    finally:
        client.close()
    bound = max(100, rate / 2)
    known = [lag for lag in lags if lag is not None]
    end = lags[-1]
    return {
        "speed": speed,
        "ticks_per_s": round(rate),
        "lag_max": max(known) if known else None,
        "lag_end": end,
        "lag_unknown_samples": len(lags) - len(known),
        "bounded": end is not None and len(known) == len(lags) and end <= bound,
    }


def stack_symbol(stack: Stack) -> str:
    return stack.files.symbols()[0]


def stream_lag(client: redis_sync.Redis, stream: str) -> int | None:
    """The largest lag of the stream's consumer groups; None when Redis cannot tell (a group
    fell behind the MAXLEN trim: entries were trimmed before it read them)."""
    lags = [g.get("lag") for g in client.xinfo_groups(stream)]
    known = [int(lag) for lag in lags if lag is not None]
    return None if len(known) < len(lags) else max(known)


def raw_consumer_rate(stack: Stack, seconds: float = 5.0) -> float:
    """Messages per second one bare redis-py consumer group reader drains (COUNT 100 + XACK),
    as the stack's bench user."""
    stream = "bench.raw"
    producer = stack.redis_client("bench")
    producer.delete(stream)
    producer.xgroup_create(stream, "g", id="$", mkstream=True)
    stop = threading.Event()
    payload: dict[Any, Any] = {"d": "x" * 200}  # about a market-data message

    def produce() -> None:
        conn = stack.redis_client("bench")
        while not stop.is_set():
            pipe = conn.pipeline(transaction=False)
            for _ in range(100):
                pipe.xadd(stream, payload, maxlen=100_000, approximate=True)
            pipe.execute()
        conn.close()

    thread = threading.Thread(target=produce)
    thread.start()
    consumer = stack.redis_client("bench")
    done = 0
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            reply: Any = consumer.xreadgroup("g", "c", {stream: ">"}, count=100, block=100)
            for _, entries in reply or []:
                consumer.xack(stream, "g", *[entry_id for entry_id, _ in entries])
                done += len(entries)
    finally:
        stop.set()
        thread.join()
        producer.delete(stream)
        producer.close()
        consumer.close()
    return done / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="5,10,20,40,80")
    parser.add_argument("--speeds", default="10,20,40,80,160,320")
    parser.add_argument("--step-s", type=float, default=20)
    parser.add_argument(
        "--intent-speeds",
        default="1,10",
        help="replay speeds (market-data rates) under which the intent rates are swept",
    )
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    speeds = [float(s) for s in args.speeds.split(",")]
    recording = synthetic(3600 * 6)
    tmp = Path(tempfile.mkdtemp(prefix="stormproof-bench-"))
    stack = Stack(tmp / "stack")
    try:
        stack.up(StackOptions(recordings=[recording], orders_per_10s=LOAD_ORDERS_PER_10S))
        for market_speed in [float(x) for x in args.intent_speeds.split(",")]:
            stack.client().control(
                "POST",
                "/replay/speed",
                body={"speed": market_speed},
            )
            steps = [
                intent_step(stack, r, args.step_s, tmp / f"intents-{market_speed:g}-{r:g}")
                for r in rates
            ]
            sustained = [
                s
                for s in steps
                if s["ack_p99_ms"] is not None
                and s["ack_p99_ms"] < ACK_P99_TARGET_MS
                and s["acked"] == s["sent"]
            ]
            best = max(sustained, key=lambda s: s["rate_per_s"], default=None)
            base_rate = best["rate_per_s"] if best else rates[0]
            fresh = stack.redis_client("bench")
            fresh.delete(*[f"bench.hop{i}" for i in range(4)])  # one baseline per market speed
            fresh.close()
            baseline = relay_baseline(
                stack.ports["redis"],
                count=int(base_rate * 10),
                rate_per_s=base_rate,
                credentials={
                    "username": "bench",
                    "password": stack.secrets["STORMPROOF_REDIS_PASSWORD_BENCH"],
                },
            )
            base_p99 = percentile(baseline, 0.99) / 1000
            reference = best or steps[0]
            print(
                json.dumps(
                    {
                        "bench": "intent_rate",
                        "replay_speed": market_speed,
                        "steps": steps,
                        "sustained_rate_per_s": best["rate_per_s"] if best else None,
                        "baseline_three_redis_hops_p99_ms": round(base_p99, 3),
                        "ratio_p99_at": reference["rate_per_s"],
                        "ratio_p99": None
                        if reference["ack_p99_ms"] is None
                        else round(reference["ack_p99_ms"] / base_p99, 1),
                    }
                ),
                flush=True,
            )
        md = [md_step(stack, speed, args.step_s) for speed in speeds]
        bounded = [s for s in md if s["bounded"]]
        top = max(bounded, key=lambda s: s["ticks_per_s"], default=None)
        raw = raw_consumer_rate(stack)
        print(
            json.dumps(
                {
                    "bench": "ticks_with_bounded_lag",
                    "steps": md,
                    "sustained_ticks_per_s": top["ticks_per_s"] if top else None,
                    "baseline_raw_consumer_msgs_per_s": round(raw),
                    "ratio": round(top["ticks_per_s"] / raw, 3) if top else None,
                }
            ),
            flush=True,
        )
    finally:
        try:
            stack.down()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
