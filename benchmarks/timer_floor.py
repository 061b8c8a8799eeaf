"""The machine's own pacing floor: how late an asyncio process wakes up for a due time, with the
replay's own wait (`ReplayServer._sleep_until`: sleep to 1 ms before, then yield until due).

Run beside a paced replay, in its own process, it measures what the machine does to any process
at that moment (CPU steal, scheduling): the replay cannot be more punctual than this.

    python -m benchmarks.timer_floor --seconds 30
Prints one JSON line: count, p50_ms, p99_ms, max_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

from replay.server import ReplayServer


async def measure(seconds: float) -> list[int]:
    rng = random.Random(7)
    late: list[int] = []
    end = time.monotonic_ns() + int(seconds * 1e9)
    while time.monotonic_ns() < end:
        # due times 0.2 to 20 ms apart, as a paced market's messages are
        due = time.monotonic_ns() + int(rng.uniform(0.2, 20) * 1e6)
        await ReplayServer._sleep_until(due)
        late.append(time.monotonic_ns() - due)
    return late


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    late = sorted(asyncio.run(measure(args.seconds)))
    n = len(late)
    print(
        json.dumps(
            {
                "count": n,
                "p50_ms": round(late[n // 2] / 1e6, 3),
                "p99_ms": round(late[min(n - 1, int(n * 0.99))] / 1e6, 3),
                "max_ms": round(late[-1] / 1e6, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
