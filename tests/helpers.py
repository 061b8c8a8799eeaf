"""Real servers and processes for tests: redis-server, toxiproxy-server, the replay process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.ports import free_ports, port_open
from harness.processes import stop_process
from harness.stack import Stack, StackOptions
from harness.tools import PROJECT_ROOT, redis_server, toxiproxy_server
from replay.synth import SynthSpec, write_recording

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
BTC_RECORDING = SHARED_DATA / "binance-spot" / "btcusdt_20240808.gz"
EXCHANGE_INFO = SHARED_DATA / "exchange-info" / "binance-spot-exchangeinfo-20211012.json"


def wait_until(
    condition: Callable[[], object], *, timeout_s: float, what: str, interval_s: float = 0.05
) -> object:
    """Poll a condition until it is truthy; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def http_status(url: str) -> tuple[int, bytes]:
    """(status, body) of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


@contextmanager
def process(
    argv: list[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    ready: Callable[[], object],
    timeout_s: float = 30.0,
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
        )
    try:

        def up() -> object:
            if proc.poll() is not None:
                raise AssertionError(
                    f"{argv[0]} exited with {proc.returncode}: {log.read_text()[-2000:]}"
                )
            return ready()

        wait_until(up, timeout_s=timeout_s, what=f"{' '.join(argv[:3])} to be ready")
        yield proc
    finally:
        stop_process(proc)


@contextmanager
def redis(
    tmp: Path,
    port: int | None = None,
    *,
    appendonly: bool = True,
    aclfile: Path | None = None,
) -> Iterator[int]:
    port = port or free_ports(1)[0]
    data = tmp / f"redis-{port}"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_server(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data),
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--appendfsync",
        "always",
        "--daemonize",
        "no",
        *(["--aclfile", str(aclfile)] if aclfile is not None else []),
    ]
    with process(argv, log=tmp / f"redis-{port}.log", ready=lambda: port_open(port)):
        yield port


@contextmanager
def toxiproxy(tmp: Path) -> Iterator[int]:
    port = free_ports(1)[0]
    argv = [toxiproxy_server(), "-host", "127.0.0.1", "-port", str(port)]
    with process(
        argv, log=tmp / "toxiproxy.log", ready=lambda: http_ok(f"http://127.0.0.1:{port}/version")
    ):
        yield port


SIM_KEY = "integration-test-key-0001"
SIM_SECRET = "integration-test-secret-0001-very-secret"
SIM_TOKEN = "integration-control-token"


class ReplayProcess:
    def __init__(self, ws_port: int, rest_port: int, control_port: int, pid: int = 0) -> None:
        self.ws_port = ws_port
        self.rest_port = rest_port
        self.control_port = control_port
        self.pid = pid
        """The replay process's id (0 when not known)."""

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"


@contextmanager
def replay_process(
    tmp: Path,
    recording: Path,
    *,
    speed: str = "1",
    extra: list[str] | None = None,
    balances: tuple[str, ...] = ("USDT=100000", "BTC=1"),
    wait_for_market: bool = False,
) -> Iterator[ReplayProcess]:
    """A replay process; with `wait_for_market`, ready only once every book is known (/readyz),
    for tests whose first request is an order that needs a book."""
    ws, rest, control = free_ports(3)
    argv = [
        sys.executable,
        "-m",
        "replay",
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
    ]
    for balance in balances:
        argv += ["--balance", balance]
    argv += extra or []
    env = {
        "STORMPROOF_SIM_API_KEY": SIM_KEY,
        "STORMPROOF_SIM_API_SECRET": SIM_SECRET,
        "STORMPROOF_SIM_CONTROL_TOKEN": SIM_TOKEN,
    }
    with process(
        argv,
        log=tmp / "replay.log",
        env=env,
        ready=lambda: http_ok(
            f"http://127.0.0.1:{control}/{'readyz' if wait_for_market else 'healthz'}"
        ),
    ) as proc:
        yield ReplayProcess(ws, rest, control, proc.pid)


SIM_CCXT_OPTIONS = {
    "defaultType": "spot",
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
}
"""What unmodified ccxt must be told about the simulator: spot only, no margin or currency API."""


def sim_exchange(rest_url: str, **extra: Any) -> Any:
    """Unmodified async ccxt on the simulator's REST API, with the engine's own account."""
    import ccxt.async_support as ccxt

    from engine.execution.venue import binance_api_urls

    exchange = ccxt.binance(
        {"apiKey": SIM_KEY, "secret": SIM_SECRET, "options": dict(SIM_CCXT_OPTIONS), **extra}
    )
    exchange.urls["api"] = binance_api_urls(rest_url)
    return exchange


def rss_bytes(pid: int) -> int:
    """A process's resident set size, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def control(sim: ReplayProcess, method: str, path: str, body: object = None) -> dict:  # type: ignore[type-arg]
    """Call the replay control API synchronously; fails the test on an error status."""
    import json as _json

    data = None if body is None else _json.dumps(body).encode()
    request = urllib.request.Request(
        f"{sim.control_url}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {SIM_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        result: dict = _json.loads(response.read())  # type: ignore[type-arg]
        return result


@contextmanager
def synthetic_stack(base: Path, *, duration_s: float, seed: int, **options: Any) -> Iterator[Stack]:
    """The whole local stack replaying a calm synthetic recording made for it; down afterwards."""
    recording = base / f"calm-{int(duration_s)}s.gz"
    write_recording(SynthSpec(duration_s=duration_s, seed=seed), recording)
    running = Stack(base / "stack")
    running.up(StackOptions(recordings=[recording], **options))
    try:
        yield running
    finally:
        running.down()


def run_cli(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
