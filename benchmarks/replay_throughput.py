"""Max-speed replay throughput to 1 and to 10 clients, against a bare websockets server sending
the same pre-loaded messages, measured in the same run (issue 3).

    .venv/bin/python -m benchmarks.replay_throughput [--duration-s 1800] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import background, http_json, replay_server, synthetic, wait_for
from harness.ports import free_ports
from replay.recording import read_records

STREAMS = "btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms"


def count_messages(recording: Path) -> int:
    return sum(1 for r in read_records(recording) if r.payload.startswith(b'{"stream"'))


def run_counter(url: str, clients: int, count: int, start: object) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready"
        counter = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.ws_counter",
                "--url",
                url,
                "--clients",
                str(clients),
                "--count",
                str(count),
                "--ready-file",
                str(ready),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        wait_for(ready.exists)
        start()  # type: ignore[operator]
        out, _ = counter.communicate(timeout=600)
    result: dict[str, Any] = json.loads(out)
    if result["total"] < clients * count:
        raise RuntimeError(f"lost frames: {result['frames']} of {count} each")
    return result


def baseline(recording: Path, clients: int, count: int) -> dict[str, Any]:
    port = free_ports(1)[0]
    argv = [
        sys.executable,
        "-m",
        "benchmarks.bare_ws_server",
        "--recording",
        str(recording),
        "--port",
        str(port),
        "--clients",
        str(clients),
    ]
    with background(argv):
        from benchmarks.common import wait_for as wait
        from harness.ports import port_open

        wait(lambda: port_open(port))
        return run_counter(f"ws://127.0.0.1:{port}/", clients, count, lambda: None)


def replay(recording: Path, clients: int, count: int) -> dict[str, Any]:
    with replay_server(recording, speed="max", extra=["--paused"]) as (ws, control, _):
        return run_counter(
            f"ws://127.0.0.1:{ws}/stream?streams={STREAMS}",
            clients,
            count,
            lambda: http_json(f"{control}/replay/resume", "POST", {}),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration-s", type=float, default=1800)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    recording = synthetic(args.duration_s)
    count = count_messages(recording)
    results: list[dict[str, Any]] = []
    for clients in (1, 10):
        base_runs, replay_runs = [], []
        for _ in range(args.repeat):  # alternated, so a slow spell of the machine hits both
            base_runs.append(baseline(recording, clients, count)["aggregate_per_s"])
            replay_runs.append(replay(recording, clients, count)["aggregate_per_s"])
        results.append(
            {
                "benchmark": "replay_max_speed_throughput",
                "clients": clients,
                "messages": count,
                "baseline_msgs_per_s": round(max(base_runs)),
                "replay_msgs_per_s": round(max(replay_runs)),
                "ratio": round(max(replay_runs) / max(base_runs), 3),
                "baseline_runs": [round(r) for r in base_runs],
                "replay_runs": [round(r) for r in replay_runs],
                "replay_median_msgs_per_s": round(statistics.median(replay_runs)),
                "median_ratio": round(
                    statistics.median(replay_runs) / statistics.median(base_runs), 3
                ),
            }
        )
        print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
