"""Shared helpers for benchmarks: processes, ports, cached synthetic recordings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.ports import free_ports
from harness.tools import PROJECT_ROOT

CACHE = PROJECT_ROOT / ".stormproof" / "bench"
TOKEN = "bench-control-token"


def synthetic(duration_s: float, *, seed: int = 5, regime: str = "calm") -> Path:
    from replay.synth import SynthSpec, write_recording

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"synth-{regime}-{seed}-{int(duration_s)}s.gz"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        write_recording(SynthSpec(duration_s=duration_s, seed=seed, regime=regime), tmp)
        tmp.rename(path)
    return path


@contextmanager
def background(
    argv: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        argv,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for(condition: object, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark setup timed out")
        time.sleep(0.05)


def http_json(url: str, method: str = "GET", body: object = None) -> dict:  # type: ignore[type-arg]
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        result: dict = json.loads(response.read())  # type: ignore[type-arg]
        return result


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def replay_server(
    recording: Path,
    *,
    speed: str,
    extra: list[str] | None = None,
    account: tuple[str, str] | None = None,
    module: str = "replay",
) -> Iterator[tuple[int, str, subprocess.Popen[bytes]]]:
    """Yields (ws port, control URL, process); the REST URL is rest_url(control URL). `module`
    is what `python -m` runs: `replay`, or a benchmark's variant of it."""
    ws, rest, control = free_ports(3)
    argv = [
        sys.executable,
        "-m",
        module,
        "serve",
        "-r",
        str(recording),
        "--speed",
        speed,
        "--ws-port",
        str(ws),
        "--rest-port",
        str(rest),
        "--control-port",
        str(control),
        "--log-level",
        "warning",
        *(extra or []),
    ]
    env = {"STORMPROOF_SIM_CONTROL_TOKEN": TOKEN}
    if account is not None:
        env.update(STORMPROOF_SIM_API_KEY=account[0], STORMPROOF_SIM_API_SECRET=account[1])
    with background(argv, env) as proc:
        control_url = f"http://127.0.0.1:{control}"
        wait_for(lambda: http_ok(f"{control_url}/healthz"))
        _rest_urls[control_url] = f"http://127.0.0.1:{rest}"
        yield ws, control_url, proc


_rest_urls: dict[str, str] = {}


def rest_url(control_url: str) -> str:
    return _rest_urls[control_url]


class CpuSteal:
    """The share of CPU time the hypervisor gave to other guests while the block ran (the
    `steal` column of /proc/stat, over all CPUs). A latency tail on a shared virtual machine is
    read next to it: a vCPU that is not running cannot answer. None where /proc/stat is absent.

        with CpuSteal() as steal:
            ...
        steal.share  # 0.0 .. 1.0
    """

    def __init__(self) -> None:
        self.share: float | None = None
        self._before: list[int] | None = None

    def __enter__(self) -> CpuSteal:
        self._before = _cpu_times()
        return self

    def __exit__(self, *_: object) -> None:
        after = _cpu_times()
        if self._before is None or after is None:
            return
        delta = [b - a for a, b in zip(self._before, after, strict=True)]
        total = sum(delta)
        steal = delta[7] if len(delta) > 7 else 0
        self.share = steal / total if total > 0 else 0.0


def _cpu_times() -> list[int] | None:
    """user nice system idle iowait irq softirq steal (guest time is inside user already)."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    return [int(x) for x in fields[1:9]]


@contextmanager
def cpu_noise(cores: int) -> Iterator[None]:
    """`cores` processes spinning on the CPU for the block: a noisy neighbour, reproducibly."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def callgrind_instructions(module_argv: list[str], out_file: Path) -> int:
    """Instructions `python -m <module_argv>` executes under callgrind (hash seed fixed, so runs
    compare); SystemExit when callgrind printed no total."""
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out_file}",
            sys.executable,
            "-m",
            *module_argv,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        timeout=1800,
    )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no total:\n{result.stderr[-2000:]}")
    return int(found.group(1))
