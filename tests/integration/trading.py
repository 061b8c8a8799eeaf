"""Helpers for trading-path tests: engine configs, execution processes, the bus seen from outside.

Tests drive the engine the way its neighbours do: order requests are written to the real Redis
stream `orders.binance` (as the risk service would), results are read back from `exec.binance`,
and the exchange simulator's ground truth (`/truth/orders`) says what really reached the venue.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis as redis_sync

from engine.core.ids import client_order_id
from engine.core.messages import (
    BusMessage,
    Intent,
    IntentDone,
    OrderRequest,
    OrderType,
    RiskDenial,
    Side,
    decode,
    encode,
)
from harness.ports import free_ports
from harness.processes import stop_process
from tests.helpers import SIM_KEY, SIM_SECRET, ReplayProcess, control, wait_until

OPS_TOKEN = "ops-token-for-trading-tests-0123456789"
ENV = {
    "STORMPROOF_API_KEY": SIM_KEY,
    "STORMPROOF_API_SECRET": SIM_SECRET,
    "STORMPROOF_OPS_TOKEN": OPS_TOKEN,
}


def engine_config(
    tmp: Path,
    sim: ReplayProcess,
    redis_port: int,
    *,
    name: str = "engine",
    rest_url: str | None = None,
    extra: str = "",
    execution: str = "",
    venue: str = "request_timeout_ms = 2000",
    ports: dict[str, int] | None = None,
    symbols: str = '["BTCUSDT"]',
) -> tuple[Path, dict[str, int]]:
    ports = ports or dict(
        zip(("feed", "strategy", "risk", "execution"), free_ports(4), strict=True)
    )
    path = tmp / f"{name}.toml"
    path.write_text(f"""
[venue]
ws_urls = ["{sim.ws_url}"]
rest_url = "{rest_url or sim.rest_url}"
user_stream_url = "{sim.ws_url}"
symbols = {symbols}
{venue}
[bus]
redis_url = "redis://127.0.0.1:{redis_port}/0"
claim_min_idle_ms = 1000
[execution]
journal_path = "{tmp / "journal.sqlite"}"
poll_interval_ms = 300
{execution}
[ops.ports]
{chr(10).join(f"{service} = {port}" for service, port in ports.items())}
{extra}
""")
    return path, ports


def engine_argv(config: Path, service: str) -> list[str]:
    return [sys.executable, "-m", "engine", "run", service, "--config", str(config)]


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **ENV, **(env or {})},
            stdin=subprocess.DEVNULL,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc)


@contextmanager
def running(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    proc = start(argv, log, env)
    try:
        yield proc
    finally:
        stop(proc)


def get_json(url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        return error.code, json.loads(body) if body else None
    except OSError:
        return 0, None


def post(url: str, token: str | None, body: dict[str, Any] | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(
        url, data=json.dumps(body or {}).encode(), method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def status(port: int) -> dict[str, Any]:
    code, body = get_json(f"http://127.0.0.1:{port}/status")
    return body if code == 200 else {}


def wait_started(
    port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 30
) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"engine exited with {proc.returncode}: {log.read_text()[-3000:]}")
        return get_json(f"http://127.0.0.1:{port}/startupz")[0] == 200

    wait_until(up, timeout_s=timeout_s, what="the engine's /startupz")


class Bus:
    """The engine's Redis bus, from outside."""

    def __init__(self, port: int, venue: str = "binance") -> None:
        self.redis = redis_sync.Redis(port=port)
        self.venue = venue

    def request(self, intent: Intent) -> None:
        message = OrderRequest(
            correlation_id=intent.correlation_id, intent=intent, approved_ts_ns=time.time_ns()
        )
        self.redis.xadd(f"orders.{self.venue}", {"m": encode(message)})

    def publish(self, stream: str, message: BusMessage) -> None:
        self.redis.xadd(stream, {"m": encode(message)})

    def messages(self, stream: str) -> list[BusMessage]:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = self.redis.xrange(stream)  # type: ignore[assignment]
        return [decode(fields[b"m"]) for _, fields in entries]

    def denial(self, intent_id: str, *, what: str, timeout_s: float = 20) -> RiskDenial:
        """Risk's refusal of `intent_id`, once it is on risk.events."""

        def refusals() -> list[RiskDenial]:
            return [
                m
                for m in self.messages("risk.events")
                if isinstance(m, RiskDenial) and m.intent_id == intent_id
            ]

        wait_until(refusals, timeout_s=timeout_s, what=what)
        (denial,) = refusals()  # one refusal per intent: risk decides an intent once
        return denial

    def done(self) -> dict[str, IntentDone]:
        return {
            m.intent_id: m for m in self.messages(f"exec.{self.venue}") if isinstance(m, IntentDone)
        }

    def close(self) -> None:
        self.redis.close()


def intent(
    intent_id: str,
    *,
    side: Side = Side.BUY,
    qty: str = "0.001",
    order_type: OrderType = OrderType.MARKET,
    limit_price: str | None = None,
    algo: str = "",
    algo_params: dict[str, Any] | None = None,
    reduce_only: bool = False,
) -> Intent:
    return Intent(
        correlation_id=f"corr-{intent_id}",
        intent_id=intent_id,
        source="test",
        venue="binance",
        symbol="BTCUSDT",
        side=side,
        qty=Decimal(qty),
        order_type=order_type,
        limit_price=None if limit_price is None else Decimal(limit_price),
        algo=algo,  # type: ignore[arg-type]
        algo_params=algo_params or {},
        reduce_only=reduce_only,
        created_ts_ns=time.time_ns(),
    )


def venue_orders(sim: ReplayProcess) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = control(sim, "GET", "/truth/orders")["orders"]
    return orders


def duplicate_client_ids(sim: ReplayProcess) -> list[str]:
    counts = Counter(o["client_order_id"] for o in venue_orders(sim))
    return [coid for coid, n in counts.items() if n > 1]


def resent_client_ids(sim: ReplayProcess) -> list[str]:
    """clientOrderIds the venue refused as duplicates: a second send of an order it already
    had. Binance refuses such a send only while the first order is open (the simulator
    remembers recent ids longer), so on Binance each of these could have been a second order."""
    refusals = control(sim, "GET", "/truth/refusals")["refusals"]
    return [r["client_order_id"] for r in refusals if r["msg"] == "Duplicate order sent."]


def venue_base_position(sim: ReplayProcess, asset: str = "BTC") -> Decimal:
    accounts = control(sim, "GET", "/truth/balances")["accounts"]
    (account,) = accounts.values()
    balance = account[asset]
    return Decimal(balance["total"]) - Decimal(balance["initial"])


def venue_filled_by_client_id(sim: ReplayProcess) -> dict[str, Decimal]:
    return {o["client_order_id"]: Decimal(o["executed_qty"]) for o in venue_orders(sim)}


class MixedFlow(threading.Thread):
    """Order requests three times a second (about 4.5 venue orders a second) until stopped:
    direct market orders and, one request in four, a split parent of three children; buys and
    sells in turn. Remembers every intent it sent.

    The campaigns cap execution at 90 orders per 10 s. Half of that leaves room for the backlog
    a restart leaves behind: at 6 orders a second, restarts slowed by a loaded machine pushed
    the flow into its own rate limit, and orders were refused "no permit" by design."""

    def __init__(self, bus: Bus, seed: int, *, prefix: str = "crash") -> None:
        super().__init__(daemon=True)
        self.bus = bus
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.sent: list[Intent] = []
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.wait(1 / 3):
            n += 1
            side = Side.BUY if n % 2 else Side.SELL
            if n % 4 == 0:
                request = intent(
                    f"{self.prefix}-split-{n}",
                    side=side,
                    qty="0.003",
                    algo="split",
                    algo_params={"max_child_qty": "0.001"},
                )
            else:
                request = intent(f"{self.prefix}-direct-{n}", side=side, qty="0.001")
            self.bus.request(request)
            self.sent.append(request)


def assert_every_intent_traded_once(
    sim: ReplayProcess, sent: dict[str, Intent], done: dict[str, IntentDone]
) -> None:
    """The simulator's truth on a campaign's intents: every venue order is a child of one of
    them, none traded more than its quantity, each outcome says what the venue executed, and
    rejections are rare, not the rule."""
    child_of = {client_order_id(intent_id, k): intent_id for intent_id in sent for k in range(10)}
    filled: dict[str, Decimal] = defaultdict(Decimal)
    for order in venue_orders(sim):
        assert order["client_order_id"] in child_of, "every venue order is one of ours"
        filled[child_of[order["client_order_id"]]] += Decimal(order["executed_qty"])
    for intent_id, request in sent.items():
        assert filled[intent_id] <= request.qty, f"{intent_id} traded more than asked"
        assert done[intent_id].filled_qty == filled[intent_id], intent_id
    rejected = [i for i, d in done.items() if i in sent and d.outcome == "rejected"]
    reasons = {i: done[i].reason for i in rejected[:5]}
    assert len(rejected) <= len(sent) // 20, f"rejections are rare, not the rule: {reasons}"
