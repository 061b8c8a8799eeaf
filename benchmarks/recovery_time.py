"""Execution recovery time (issue 6): RTO after SIGKILL, and standby takeover after SIGSTOP.

RTO. One execution process (SQLite journal) works a flow of order requests (five a second) on
the exchange simulator. It is SIGKILLed at a random moment and started again at once, several
times. Measured from the kill: `ready` when /startupz answers 200 (the journal is loaded, every
open order resolved at the venue, positions recomputed and compared with the venue), and
`trading` when the venue (simulator ground truth) receives the restarted process's first order.
Baseline, in the same run: a cold start of the same process on an empty journal, spawn to
/startupz, so the ratio shows what recovery costs over starting Python and connecting.

Takeover. Two execution processes (PostgreSQL journal, Redis lease with a 2 s TTL). The leader
is frozen (SIGSTOP); measured from the freeze: `leading` when the standby reports itself leader
and ready, `trading` when the venue receives its first order. The old leader is then thawed (it
finds itself deposed and exits) and started again as the new standby.

    .venv/bin/python -m benchmarks.recovery_time [--kills 8] [--freezes 4]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import synthetic
from engine.core.messages import Side
from harness.ports import free_ports
from tests.helpers import redis, replay_process, wait_until
from tests.integration.trading import (
    Bus,
    duplicate_client_ids,
    engine_argv,
    engine_config,
    get_json,
    intent,
    running,
    start,
    status,
    stop,
    venue_orders,
)

TTL_MS = 2_000


class Flow(threading.Thread):
    def __init__(self, bus: Bus, prefix: str) -> None:
        super().__init__(daemon=True)
        self.bus, self.prefix = bus, prefix
        self.halt = threading.Event()
        self.sent = 0

    def run(self) -> None:
        while not self.halt.wait(0.2):
            self.sent += 1
            side = Side.BUY if self.sent % 2 else Side.SELL
            self.bus.request(intent(f"{self.prefix}-{self.sent}", side=side, qty="0.001"))


def poll(condition: Callable[[], bool], timeout_s: float = 30) -> float:
    """Seconds (monotonic) at which `condition` first held, polling every 10 ms."""
    wait_until(condition, timeout_s=timeout_s, interval_s=0.01, what="recovery")
    return time.monotonic()


def startupz(port: int) -> bool:
    return get_json(f"http://127.0.0.1:{port}/startupz")[0] == 200


def started(port: int) -> Callable[[], bool]:
    return lambda: startupz(port)


def leads(port: int) -> Callable[[], bool]:
    return lambda: status(port).get("role") == "leader" and startupz(port)


def more_done(bus: Bus, n: int) -> Callable[[], bool]:
    seen = len(bus.done())
    return lambda: len(bus.done()) >= seen + n


def venue_got_more(sim: Any) -> Callable[[], bool]:
    before = len(venue_orders(sim))
    return lambda: len(venue_orders(sim)) > before


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(values), 3),
        "max_s": round(max(values), 3),
        "n": len(values),
    }


def cold_start(tmp: Path, sim: Any, redis_port: int) -> float:
    config, ports = engine_config(tmp / "cold", sim, redis_port, name="cold")
    log = tmp / "cold.log"
    spawned = time.monotonic()
    with running(engine_argv(config, "execution"), log):
        return poll(lambda: startupz(ports["execution"])) - spawned


def rto(tmp: Path, sim: Any, redis_port: int, kills: int) -> dict[str, Any]:
    config, ports = engine_config(tmp, sim, redis_port)
    log = tmp / "execution.log"
    bus = Bus(redis_port)
    ready: list[float] = []
    trading: list[float] = []
    rng = random.Random(7)
    with running(engine_argv(config, "feed"), tmp / "feed.log"):
        proc: subprocess.Popen[bytes] = start(engine_argv(config, "execution"), log)
        poll(lambda: startupz(ports["execution"]), timeout_s=60)
        flow = Flow(bus, "rto")
        flow.start()
        try:
            for _ in range(kills):
                wait_until(more_done(bus, 3), timeout_s=30, what="fills")
                time.sleep(rng.uniform(0, 0.4))  # a random moment of the order flow
                proc.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                proc.wait()
                proc = start(engine_argv(config, "execution"), log)
                ready.append(poll(lambda: startupz(ports["execution"])) - killed)
                trading.append(poll(venue_got_more(sim)) - killed)
        finally:
            flow.halt.set()
            flow.join()
            stop(proc)
    bus.close()
    return {"ready": spread(ready), "trading": spread(trading)}


def takeover(tmp: Path, sim: Any, redis_port: int, dsn: str, freezes: int) -> dict[str, Any]:
    pair = f'[lease]\nbackend = "redis"\nttl_ms = {TTL_MS}\nrenew_interval_ms = 500\n'
    execution = 'journal_backend = "postgres"'
    env = {"STORMPROOF_JOURNAL_DSN": dsn}
    config_a, ports_a = engine_config(
        tmp, sim, redis_port, name="a", extra=pair, execution=execution
    )
    ports_b = {**ports_a, "execution": free_ports(1)[0]}
    config_b, _ = engine_config(
        tmp, sim, redis_port, name="b", extra=pair, execution=execution, ports=ports_b
    )
    nodes = [(config_a, ports_a["execution"]), (config_b, ports_b["execution"])]
    bus = Bus(redis_port)
    leading: list[float] = []
    trading: list[float] = []
    with running(engine_argv(config_a, "feed"), tmp / "feed-pair.log"):
        procs = [
            start(engine_argv(c, "execution"), tmp / f"pair{i}.log", env)
            for i, (c, _) in enumerate(nodes)
        ]
        try:
            for _, port in nodes:
                poll(started(port), timeout_s=60)
            flow = Flow(bus, "takeover")
            flow.start()
            try:
                for _ in range(freezes):
                    leader = next(
                        i for i, (_, p) in enumerate(nodes) if status(p).get("role") == "leader"
                    )
                    standby = 1 - leader
                    wait_until(more_done(bus, 3), timeout_s=30, what="fills")
                    procs[leader].send_signal(signal.SIGSTOP)
                    frozen = time.monotonic()
                    port = nodes[standby][1]
                    leading.append(poll(leads(port)) - frozen)
                    trading.append(poll(venue_got_more(sim)) - frozen)
                    procs[leader].send_signal(signal.SIGCONT)
                    procs[leader].wait(timeout=30)  # deposed: it exits
                    config = nodes[leader][0]
                    procs[leader] = start(
                        engine_argv(config, "execution"), tmp / f"pair{leader}.log", env
                    )
                    poll(started(nodes[leader][1]), timeout_s=60)
            finally:
                flow.halt.set()
                flow.join()
        finally:
            for proc in procs:
                stop(proc)
    bus.close()
    return {"leading": spread(leading), "trading": spread(trading), "ttl_s": TTL_MS / 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--freezes", type=int, default=4)
    args = parser.parse_args()
    recording = synthetic(1800)
    tmp = Path(tempfile.mkdtemp(prefix="stormproof-bench-"))
    try:
        (tmp / "cold").mkdir()
        with (
            redis(tmp, appendonly=False) as redis_port,
            replay_process(tmp, recording, speed="1") as sim,
        ):
            baseline = cold_start(tmp, sim, redis_port)
            result = rto(tmp, sim, redis_port, args.kills)
            duplicates = duplicate_client_ids(sim)
            print(
                json.dumps(
                    {
                        "bench": "rto_after_sigkill",
                        "cold_start_s": round(baseline, 3),
                        **result,
                        "ratio_ready_to_cold_start": round(
                            result["ready"]["median_s"] / baseline, 2
                        ),
                        "duplicate_venue_orders": len(duplicates),
                    }
                ),
                flush=True,
            )
            if args.freezes:
                from tests.postgres import postgres_server

                with postgres_server(tmp) as dsn:
                    pair = takeover(tmp, sim, redis_port, dsn, args.freezes)
                print(
                    json.dumps(
                        {
                            "bench": "standby_takeover",
                            **pair,
                            "duplicate_venue_orders": len(duplicate_client_ids(sim)),
                        }
                    ),
                    flush=True,
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
