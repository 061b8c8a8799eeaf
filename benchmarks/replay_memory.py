"""Replay memory stays flat in file length: peak RSS of the replay process serving a 100k and
a 1M-message synthetic recording at max speed to one client (issue 3).

    .venv/bin/python -m benchmarks.replay_memory
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from benchmarks.common import http_json, replay_server, synthetic, wait_for
from benchmarks.replay_throughput import count_messages

STREAMS = "btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def peak_rss(recording: Path) -> dict[str, object]:
    messages = count_messages(recording)
    samples: list[int] = []
    with (
        replay_server(recording, speed="max", extra=["--paused"]) as (ws, control, proc),
        tempfile.TemporaryDirectory() as tmp,
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
                str(messages),
                "--ready-file",
                str(ready),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        wait_for(ready.exists)
        start_rss = rss_kib(proc.pid)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                samples.append(rss_kib(proc.pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        http_json(f"{control}/replay/resume", "POST", {})
        counter.communicate(timeout=1800)
        stop.set()
        sampler.join()
    return {
        "benchmark": "replay_memory",
        "messages": messages,
        "rss_before_mib": round(start_rss / 1024, 1),
        "rss_peak_mib": round(max(samples) / 1024, 1),
        "rss_at_10pct_mib": round(samples[len(samples) // 10] / 1024, 1),
        "rss_at_90pct_mib": round(samples[len(samples) * 9 // 10] / 1024, 1),
    }


def main() -> None:
    # ~87 messages per second of calm market: 1200 s ~ 100k messages, 12000 s ~ 1M
    for duration in (1200, 12_000):
        print(json.dumps(peak_rss(synthetic(duration, seed=9))), flush=True)


if __name__ == "__main__":
    main()
