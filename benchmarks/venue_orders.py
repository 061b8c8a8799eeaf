"""Signed order round trips per second (create plus cancel) against the exchange simulator,
with the same server answering `ping` as the baseline in the same run (issue 4). The load
client runs in its own process; rate limits are lifted so the server, not the limiter, is
measured.

    .venv/bin/python -m benchmarks.venue_orders [--seconds 10] [--workers 16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

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
    url: str, mode: str, workers: int, seconds: float, client: str = "raw"
) -> dict[str, object]:
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
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 120,
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    recording = synthetic(1800)
    rounds: list[dict[str, float]] = []
    with replay_server(recording, speed="1", extra=UNLIMITED, account=(KEY, SECRET)) as (
        _,
        control,
        _process,
    ):
        url = rest_url(control)
        for _ in range(args.repeat):
            ping = load(url, "ping", args.workers, args.seconds)
            orders = load(url, "orders", args.workers, args.seconds)
            via_aiohttp = load(url, "orders", args.workers, args.seconds, client="aiohttp")
            via_ccxt = load(url, "ccxt", args.workers, args.seconds)
            rounds.append(
                {
                    "ping_per_s": float(ping["per_second"]),  # type: ignore[arg-type]
                    "orders_per_s": float(orders["per_second"]),  # type: ignore[arg-type]
                    "round_trip_p50_ms": float(orders["p50_ms"]),  # type: ignore[arg-type]
                    "round_trip_p99_ms": float(orders["p99_ms"]),  # type: ignore[arg-type]
                    "aiohttp_orders_per_s": float(via_aiohttp["per_second"]),  # type: ignore[arg-type]
                    "ccxt_orders_per_s": float(via_ccxt["per_second"]),  # type: ignore[arg-type]
                    "ccxt_round_trip_p99_ms": float(via_ccxt["p99_ms"]),  # type: ignore[arg-type]
                    "order_requests_vs_ping": 2
                    * float(orders["per_second"])  # type: ignore[arg-type]
                    / float(ping["per_second"]),  # type: ignore[arg-type]
                }
            )
    result = {key: round(median([r[key] for r in rounds]), 3) for key in rounds[0]}
    print(
        json.dumps(
            {
                "benchmark": "venue_order_round_trips",
                "workers": args.workers,
                "rounds": args.repeat,
                "median": result,
                "orders_per_s_each_round": [round(r["orders_per_s"]) for r in rounds],
            }
        )
    )


if __name__ == "__main__":
    main()
