"""The pause a full garbage collection puts on an engine process's event loop, with the heap as
startup left it and once settled (plumbing.heap, which the runner applies when every
service is ready), in the same fresh process.

The process builds what an engine process builds before it trades: it imports every service
and ccxt (async and pro), and creates the venue client. Each figure is the median of seven
forced full collections (`gc.collect()`), which is what CPython runs, unasked, whenever enough
objects have survived into the oldest generation.

    .venv/bin/python -m benchmarks.gc_pause
"""

from __future__ import annotations

import gc
import json
import statistics
import time


def full_collection_ms(rounds: int = 7) -> float:
    pauses = []
    for _ in range(rounds):
        started = time.perf_counter()
        gc.collect()
        pauses.append((time.perf_counter() - started) * 1000)
    return statistics.median(pauses)


def main() -> None:
    import ccxt.pro

    import engine.app
    import engine.execution.service
    import engine.marketdata.service
    import engine.risk.service
    import engine.strategy.service  # noqa: F401  (what `engine run all` loads)
    from plumbing.heap import settle_heap

    venue = ccxt.pro.binance({"enableRateLimit": True})
    tracked = len(gc.get_objects())
    as_started = full_collection_ms()
    settled = settle_heap()
    after = full_collection_ms()
    print(
        json.dumps(
            {
                "benchmark": "gc_full_collection_pause",
                "tracked_objects": tracked,
                "frozen_objects": settled["frozen"],
                "as_started_ms": round(as_started, 2),
                "settled_us": round(after * 1000, 1),
                "ratio": round(after / as_started, 6),
                "venue": venue.id,
            }
        )
    )


if __name__ == "__main__":
    main()
