"""Pacing error of the replay at 1x and 10x: actual send time minus scheduled send time, as the
replay measures it for every paced message (p50, p99, max), with one client subscribed to every
stream so the server is doing real work (issue 3). Beside it, in the same run, the machine's own
floor (benchmarks/timer_floor.py: the same wait, no replay) and the CPU steal.

    .venv/bin/python -m benchmarks.replay_pacing [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import CpuSteal, http_json, replay_server, wait_for
from harness.tools import PROJECT_ROOT

RECORDING = PROJECT_ROOT.parent / "shared" / "data" / "binance-spot" / "btcusdt_20240808.gz"
STREAMS = "btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms"


def measure(speed: str, seconds: float) -> dict[str, object]:
    with (
        replay_server(RECORDING, speed=speed, extra=["--paused"]) as (ws, control, _),
        tempfile.TemporaryDirectory() as tmp,
        CpuSteal() as steal,
    ):
        ready = Path(tmp) / "ready"
        counter = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.ws_counter",
                "--url",
                f"ws://127.0.0.1:{ws}/stream?streams={STREAMS}",
                "--count",
                "10000000",
                "--ready-file",
                str(ready),
                "--timeout",
                str(seconds),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        wait_for(ready.exists)
        # the machine's own floor, measured at the same time in a process of its own
        floor = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.timer_floor", "--seconds", str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        http_json(f"{control}/replay/resume", "POST", {})
        counter.communicate(timeout=seconds + 60)
        status = http_json(f"{control}/status")
        floor_out, _ = floor.communicate(timeout=seconds + 60)
    machine = json.loads(floor_out)
    pacing = status["pacing_error"]
    return {
        "benchmark": "replay_pacing_error",
        "speed": speed,
        "messages": pacing["count"],
        "p50_ms": round(pacing["p50_ms"], 3),
        "p99_ms": round(pacing["p99_ms"], 3),
        "max_ms": round(pacing["max_ms"], 3),
        "machine_floor_p50_ms": machine["p50_ms"],
        "machine_floor_p99_ms": machine["p99_ms"],
        "machine_floor_max_ms": machine["max_ms"],
        "cpu_steal_pct": None if steal.share is None else round(steal.share * 100, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    if not RECORDING.exists():
        raise SystemExit(f"needs the shared recording at {RECORDING}")
    for speed in ("1", "10"):
        print(json.dumps(measure(speed, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
