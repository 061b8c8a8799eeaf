"""Running Locust against the local stack: always headless, always in its own process (Locust
monkey-patches with gevent; our asyncio code never shares a process with it).

`LoadRun` starts Locust, watches the engine while it runs (stream lag straight from Redis, the
execution service's tick-to-order histogram) and, once Locust has ended (its shape is over) or
been stopped (a game day ends the scenario), turns both into SLIs (`harness.load.stats`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import redis

from harness.errors import HarnessError
from harness.load.stats import (
    LoadStatsError,
    histogram_buckets,
    histogram_quantile,
    lag_slis,
    locust_slis,
    read_stats_json,
)
from harness.stack import Stack

Shape = Literal["steady", "ramp", "market-open", "flash-crash", "soak"]
"""The shapes of load/shapes.py."""
SHAPES: tuple[str, ...] = get_args(Shape)
LOAD_ORDERS_PER_10S = 2_000
"""The venue order limit of a stack started for load (Binance's 100 would throttle the flow)."""
TICK_TO_ORDER = "trading_tick_to_order_seconds"


class LoadConfigError(HarnessError):
    pass


SHAPE_BURSTS = {"market-open": (10.0, 0.2), "flash-crash": (100.0, 0.15)}
"""load/shapes.py's bursts: (speed multiplier, share of the run) per shape."""


class Bursts(Protocol):
    """How a load speeds the market up (a `LoadSpec`, or a game day's load section)."""

    @property
    def shape(self) -> str | None: ...
    @property
    def burst_multiplier(self) -> float | None: ...
    @property
    def burst_every_s(self) -> float: ...
    @property
    def burst_s(self) -> float: ...


def extra_market_s(load: Bursts, duration_s: float) -> float:
    """Recorded market time the load's bursts consume beyond the run's own wall time (at
    replay speed 1): a 10x burst for 12 s eats 108 s more."""
    multiplier, share = SHAPE_BURSTS.get(str(load.shape), (1.0, 0.0))
    multiplier = float(load.burst_multiplier or multiplier)
    bursting_s = duration_s * share
    if load.burst_every_s:
        bursting_s += duration_s / float(load.burst_every_s) * float(load.burst_s)
        multiplier = max(multiplier, float(load.burst_multiplier or 10))
    return bursting_s * (multiplier - 1)


@dataclass(frozen=True, kw_only=True)
class LoadSpec:
    locustfile: Path
    shape: str | None = "steady"
    """A shape of load/shapes.py, or None: `users` at a constant count for `duration_s`."""
    duration_s: float = 60.0
    users: int = 4
    """Peak order-flow users (the market-burst user and the desk operator come on top)."""
    intent_rate: float = 2.0
    """Intents per second per order-flow user."""
    burst_multiplier: float | None = None
    """Overrides the shape's burst multiplier (or, without a shape, the periodic bursts')."""
    burst_every_s: float = 0.0
    burst_s: float = 5.0
    ack_timeout_s: float = 10.0
    intents_log: Path | None = None
    """A JSON-lines file of every intent sent, acknowledged, refused or timed out."""

    def __post_init__(self) -> None:
        if not self.locustfile.is_file():
            raise LoadConfigError(f"locustfile not found: {self.locustfile}")
        if self.shape is not None and self.shape not in SHAPES:
            raise LoadConfigError(f"unknown load shape {self.shape!r}; one of {', '.join(SHAPES)}")
        if not 0 < self.duration_s <= 86_400:
            raise LoadConfigError(f"duration must be in (0, 86400] s, not {self.duration_s:g}")
        if not 1 <= self.users <= 1000:
            raise LoadConfigError(f"users must be 1..1000, not {self.users}")
        if not 0 < self.intent_rate <= 1000:
            raise LoadConfigError(f"intent_rate must be in (0, 1000], not {self.intent_rate:g}")
        if self.burst_multiplier is not None and not 1 < self.burst_multiplier <= 1000:
            raise LoadConfigError("burst_multiplier must be > 1 and <= 1000")

    def environment(self, run_dir: Path) -> dict[str, str]:
        env = {
            "STORMPROOF_RUN_DIR": str(run_dir),
            "STORMPROOF_LOAD_DURATION_S": f"{self.duration_s:g}",
            "STORMPROOF_LOAD_USERS": str(self.users),
            "STORMPROOF_INTENT_RATE": f"{self.intent_rate:g}",
            "STORMPROOF_BURST_EVERY_S": f"{self.burst_every_s:g}",
            "STORMPROOF_BURST_S": f"{self.burst_s:g}",
            "STORMPROOF_ACK_TIMEOUT_S": f"{self.ack_timeout_s:g}",
            "STORMPROOF_LOAD_SHAPE": self.shape or "",
        }
        if self.intents_log is not None:
            env["STORMPROOF_LOAD_INTENTS_LOG"] = str(self.intents_log)
        if self.burst_multiplier is not None:
            env["STORMPROOF_BURST_MULTIPLIER"] = f"{self.burst_multiplier:g}"
        return env


def locust_argv(spec: LoadSpec, out_dir: Path) -> list[str]:
    argv = [
        str(Path(sys.executable).with_name("locust")),
        "-f",
        str(spec.locustfile),
        "--headless",
        "--only-summary",
        "--json-file",
        str(out_dir / "locust"),
        "--csv",
        str(out_dir / "locust"),
        "--html",
        str(out_dir / "locust.html"),
        "--logfile",
        str(out_dir / "locust.log"),
        "--loglevel",
        "INFO",
        "--exit-code-on-error",
        "0",  # failures are SLIs, judged by the gate, not an exit code
    ]
    if spec.shape is None:
        users = spec.users + 2
        argv += ["-u", str(users), "-r", str(users), "-t", f"{spec.duration_s:g}s"]
    return argv


@dataclass
class _EngineWatch:
    """Stream lag from Redis and the tick-to-order histogram, sampled in a thread."""

    stack: Stack
    interval_s: float = 0.25
    lags: list[tuple[float, int | None]] = field(default_factory=list)
    _halt: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    before: dict[float, float] = field(default_factory=dict)
    after: dict[float, float] = field(default_factory=dict)

    def start(self) -> None:
        self.before = self._histogram()
        self._thread = threading.Thread(target=self._run, name="load-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.after = self._histogram()

    def _histogram(self) -> dict[float, float]:
        text = self.stack.client().metrics("execution")
        return {} if text is None else histogram_buckets(text, TICK_TO_ORDER)

    def _run(self) -> None:
        client = self.stack.redis_client(socket_timeout=2)
        try:
            while not self._halt.wait(self.interval_s):
                self.lags.append((time.time(), total_lag(client)))
        finally:
            client.close()


def total_lag(client: redis.Redis) -> int | None:
    """Entries not yet delivered, summed over every consumer group of every stream; None when
    Redis cannot tell (no groups yet, or a lag Redis does not know after trimming)."""
    total = 0
    known = False
    try:
        for key in client.scan_iter(_type="STREAM", count=1000):
            for group in client.xinfo_groups(key):
                lag = group.get("lag")
                if lag is not None:
                    total += int(lag)
                    known = True
    except redis.RedisError:
        return None
    return total if known else None


class LoadRun:
    """One Locust process against the stack, with the engine watched meanwhile."""

    def __init__(self, stack: Stack, spec: LoadSpec, out_dir: Path) -> None:
        self.stack = stack
        self.spec = spec
        self.out_dir = out_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.watch = _EngineWatch(stack)

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.stop_file.unlink(missing_ok=True)
        env = {**os.environ, **self.spec.environment(self.stack.run_dir)}
        env["STORMPROOF_LOAD_STOP_FILE"] = str(self.stop_file)
        env["STORMPROOF_LOAD_INTENTS_LOG"] = str(self.intents_log)
        # the locustfile's folder first: it imports its neighbours (shapes)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.spec.locustfile.resolve().parent), env.get("PYTHONPATH")) if p
        )
        self.watch.start()
        self.process = subprocess.Popen(
            locust_argv(self.spec, self.out_dir),
            env=env,
            stdout=(self.out_dir / "locust.out").open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def wait(self, timeout_s: float) -> int:
        """Until Locust ends by itself (the shape or --run-time is over)."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise HarnessError(f"Locust did not end within {timeout_s:.0f}s") from None

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """End the run early. With a shape: the stop file (the shape ends the test, Locust
        writes its statistics and exits); without one, SIGTERM (Locust's own handler does the
        same). SIGKILL only for a Locust that does neither in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.stop_file.touch()
            if self.spec.shape is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    @property
    def stop_file(self) -> Path:
        return self.out_dir / "stop"

    @property
    def intents_log(self) -> Path:
        """Every intent Locust submitted and what the intake answered (the judge's record)."""
        return self.spec.intents_log or self.out_dir / "intents.jsonl"

    def slis(self, *, drain_s: float = 10.0) -> dict[str, Any]:
        """Locust's statistics plus the engine's; the lag keeps being watched up to `drain_s`
        after the load so that `stream_lag_end` says whether the engine caught up."""
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline:
            recent = [lag for _, lag in self.watch.lags[-2:] if lag is not None]
            if recent and max(recent) == 0:
                break
            time.sleep(self.watch.interval_s)
        self.watch.stop()
        out: dict[str, Any] = {}
        try:
            out.update(locust_slis(read_stats_json(self.out_dir / "locust.json")))
        except LoadStatsError as exc:
            out["load_error"] = str(exc)
        out.update(lag_slis(self.watch.lags))
        p99 = histogram_quantile(self.watch.before, self.watch.after, 0.99)
        out["tick_to_order_p99_ms"] = None if p99 is None else round(p99 * 1000, 3)
        out["locust_exit_code"] = None if self.process is None else self.process.returncode
        with contextlib.suppress(OSError):
            (self.out_dir / "load-slis.json").write_text(json.dumps(out, indent=2))
        return out
