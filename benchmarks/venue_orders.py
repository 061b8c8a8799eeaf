"""Signed order round trips per second (create plus cancel) against the exchange simulator,
with the same server answering `ping` as the baseline in the same run (issue 4). The load
client runs in its own process; rate limits are lifted so the server, not the limiter, is
measured. In the saturated slices the lean client busy-polls (http_load.KeepAwake), so that
waking its idle CPU is not charged to the venue's replies (--no-busy-poll to compare); the
fixed-rate run blocks, since a spinning client would take a core the venue needs. Ping and
orders alternate in one-second slices on the same connections (ABBA), and each orders slice is
compared with its neighbouring ping slice: the ratio reported is the median over every pair of
every round.

    .venv/bin/python -m benchmarks.venue_orders [--repeat 3] [--slices 8] [--workers 8]
        [--event-loop asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from benchmarks.common import replay_server, rest_url, synthetic
from benchmarks.http_load import KEY, SECRET

UNLIMITED = [
    "--weight-per-minute",
    "1000000000",
    "--orders-per-10s",
    "1000000000",
    "--orders-per-day",
    "1000000000",
    "--balance",
    "USDT=1000000000000",
]


def load(
    url: str,
    mode: str,
    workers: int,
    seconds: float,
    client: str = "raw",
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.http_load",
            "--url",
            url,
            "--mode",
            mode,
            "--workers",
            str(workers),
            "--seconds",
            str(seconds),
            "--client",
            client,
            *extra,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 300,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8, help="aiohttp and ccxt runs")
    parser.add_argument("--slices", type=int, default=8, help="ping/orders slice pairs a round")
    parser.add_argument("--slice-seconds", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=float, default=2000, help="pairs/s of the at-rate run")
    parser.add_argument("--rate-connections", type=int, default=16)
    parser.add_argument(
        "--busy-poll",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="in the saturated ping/orders slices, the lean client never lets its CPU idle "
        "(http_load.KeepAwake); --no-busy-poll measures with a client that blocks",
    )
    parser.add_argument("--event-loop", default="asyncio", help="the venue's: uvloop or asyncio")
    args = parser.parse_args()
    poll = ("--busy-poll",) if args.busy_poll else ("--no-busy-poll",)
    recording = synthetic(1800)
    rounds: list[dict[str, Any]] = []
    venue_args = [*UNLIMITED, "--event-loop", args.event_loop]
    with replay_server(recording, speed="1", extra=venue_args, account=(KEY, SECRET)) as (
        _,
        control,
        _process,
    ):
        url = rest_url(control)
        for _ in range(args.repeat):
            pairs = load(
                url,
                "paired",
                args.workers,
                2 * args.slices * args.slice_seconds,
                extra=(
                    "--slices",
                    str(args.slices),
                    "--slice-seconds",
                    str(args.slice_seconds),
                    *poll,
                ),
            )
            steady = load(
                url,
                "at_rate",
                args.rate_connections,
                args.seconds,
                extra=("--rate", str(args.rate)),  # blocks: a spinning client takes a core
            )
            via_aiohttp = load(url, "orders", args.workers, args.seconds, client="aiohttp")
            via_ccxt = load(url, "ccxt", args.workers, args.seconds)
            rounds.append(
                {
                    "pairs": pairs,
                    "at_rate": steady,
                    "aiohttp_orders_per_s": via_aiohttp["per_second"],
                    "ccxt_orders_per_s": via_ccxt["per_second"],
                    "ccxt_round_trip_p99_ms": via_ccxt["p99_ms"],
                }
            )
    ratios = [r for rnd in rounds for r in rnd["pairs"]["order_requests_vs_ping"]]
    print(
        json.dumps(
            {
                "benchmark": "venue_order_round_trips",
                "event_loop": args.event_loop,
                "workers": args.workers,
                "busy_poll": args.busy_poll,
                "rounds": args.repeat,
                "slice_pairs": len(ratios),
                "median": {
                    "ping_per_s": round(
                        median([x for rnd in rounds for x in rnd["pairs"]["ping_per_s"]])
                    ),
                    "orders_per_s": round(
                        median([x for rnd in rounds for x in rnd["pairs"]["orders_per_s"]])
                    ),
                    "order_requests_vs_ping": round(median(ratios), 3),
                    "round_trip_p50_ms": round(median([r["pairs"]["p50_ms"] for r in rounds]), 2),
                    "round_trip_p99_ms": round(median([r["pairs"]["p99_ms"] for r in rounds]), 2),
                    "aiohttp_orders_per_s": round(
                        median([r["aiohttp_orders_per_s"] for r in rounds])
                    ),
                    "ccxt_orders_per_s": round(median([r["ccxt_orders_per_s"] for r in rounds])),
                    "ccxt_round_trip_p99_ms": round(
                        median([r["ccxt_round_trip_p99_ms"] for r in rounds]), 2
                    ),
                },
                "ratio_quartiles": [
                    round(sorted(ratios)[int(len(ratios) * q)], 3) for q in (0.25, 0.5, 0.75)
                ],
                "ratio_each_round": [
                    round(median(r["pairs"]["order_requests_vs_ping"]), 3) for r in rounds
                ],
                "orders_per_s_each_round": [
                    round(median(r["pairs"]["orders_per_s"])) for r in rounds
                ],
                "round_trip_p99_ms_each_round": [round(r["pairs"]["p99_ms"], 2) for r in rounds],
                "at_rate": {
                    "rate": args.rate,
                    "connections": args.rate_connections,
                    "achieved_per_s_each_round": [
                        round(r["at_rate"]["per_second"]) for r in rounds
                    ],
                    "p50_ms_each_round": [round(r["at_rate"]["p50_ms"], 2) for r in rounds],
                    "p99_ms_each_round": [round(r["at_rate"]["p99_ms"], 2) for r in rounds],
                    "max_ms_each_round": [round(r["at_rate"]["max_ms"], 2) for r in rounds],
                },
            }
        )
    )


if __name__ == "__main__":
    main()
