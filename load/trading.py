"""A trading desk under load: order flow through the engine's intake API, market bursts driven
through the replay's control API, and an operator watching /status as a desk would during an
incident.

    STORMPROOF_RUN_DIR=.stormproof/stack locust -f load/trading.py --headless -u 6 -r 6 -t 60s
    stormproof load run load/trading.py --shape flash-crash --duration 60s

Every call is reported through Locust's request events, and so is what Locust cannot see
itself: "intent_to_venue_ack", the time from sending an intent to the venue (the simulator's
ground truth) accepting its first order, matched by the clientOrderId the engine derives from
the intent id. An intent with no venue order within STORMPROOF_ACK_TIMEOUT_S is a failure.

Environment (besides shapes.py's): STORMPROOF_INTENT_RATE (intents per second per order-flow
user, default 2), STORMPROOF_LOAD_QTY (default 0.001), STORMPROOF_BURST_EVERY_S and
STORMPROOF_BURST_S (periodic bursts when no shape drives them; default none),
STORMPROOF_LOAD_INTENTS_LOG (a JSON-lines file: a `submitted` event per intent with what the
intake answered, which the game day's judge reads as ground truth, and the tracker's `acked` /
`ack_timeout` events).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import uuid

import gevent
import requests
from locust import HttpUser, between, constant_throughput, events, task
from shapes import BurstBoard, selected_shape

from engine.core.ids import client_order_id
from harness.runfile import Endpoints, RunDir

RUN_DIR = RunDir.from_environment()
STACK = Endpoints.read(RUN_DIR)
SYMBOLS = RUN_DIR.symbols()
RATE = float(os.environ.get("STORMPROOF_INTENT_RATE", "2"))
QTY = os.environ.get("STORMPROOF_LOAD_QTY", "0.001")
ACK_TIMEOUT_S = float(os.environ.get("STORMPROOF_ACK_TIMEOUT_S", "10"))
BURST_EVERY_S = float(os.environ.get("STORMPROOF_BURST_EVERY_S", "0"))
BURST_S = float(os.environ.get("STORMPROOF_BURST_S", "5"))
BURST_MULTIPLIER = float(os.environ.get("STORMPROOF_BURST_MULTIPLIER", "10"))
INTENTS_LOG = os.environ.get("STORMPROOF_LOAD_INTENTS_LOG", "")
RUN_ID = uuid.uuid4().hex[:8]

Shape = selected_shape()


class IntentLog:
    def __init__(self, path: str) -> None:
        self._file = open(path, "a", buffering=1) if path else None  # noqa: SIM115
        self._lock = threading.Lock()

    def write(self, **record: object) -> None:
        if self._file is not None:
            with self._lock:
                self._file.write(json.dumps(record) + "\n")


LOG = IntentLog(INTENTS_LOG)


class AckTracker:
    """Matches sent intents with the venue's orders, polling the simulator's ground truth for
    orders accepted since the oldest intent still waiting. One per Locust process."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[str, float]] = {}  # clientOrderId -> (intent id, sent s)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {STACK.control_token}"
        self._greenlet: gevent.Greenlet | None = None

    def expect(self, intent_id: str, sent_s: float) -> None:
        self.pending[client_order_id(intent_id, 0)] = (intent_id, sent_s)

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """Account for every intent still in flight before the run's statistics are final: each
        is acked or times out (at most ACK_TIMEOUT_S after it was sent), never left out."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
        self.poll_once()
        while self.pending:
            gevent.sleep(0.05)
            self.poll_once()

    def _run(self) -> None:
        while True:
            gevent.sleep(0.05)
            self.poll_once()

    def poll_once(self) -> None:
        if not self.pending:
            return
        since_ms = int(min(sent for _, sent in self.pending.values()) * 1000) - 1000
        try:
            response = self.session.get(
                f"{STACK.control_url}/truth/orders", params={"since_ms": since_ms}, timeout=5
            )
            orders = response.json()["orders"] if response.status_code == 200 else []
        except (requests.RequestException, ValueError, KeyError):
            orders = []
        now = time.time()
        for order in orders:
            found = self.pending.pop(order["client_order_id"], None)
            if found is None:
                continue
            intent_id, sent_s = found
            ack_ms = max(0.0, order["time_ms"] - sent_s * 1000)
            events.request.fire(
                request_type="ACK",
                name="intent_to_venue_ack",
                response_time=ack_ms,
                response_length=0,
                exception=None,
                context={"intent_id": intent_id},
            )
            LOG.write(event="acked", intent_id=intent_id, ack_ms=round(ack_ms, 3))
        for cid, (intent_id, sent_s) in list(self.pending.items()):
            if now - sent_s > ACK_TIMEOUT_S:
                del self.pending[cid]
                events.request.fire(
                    request_type="ACK",
                    name="intent_to_venue_ack",
                    response_time=(now - sent_s) * 1000,
                    response_length=0,
                    exception=TimeoutError(f"no venue order for intent {intent_id}"),
                    context={"intent_id": intent_id},
                )
                LOG.write(event="ack_timeout", intent_id=intent_id)


TRACKER = AckTracker()


@events.test_start.add_listener
def _start_tracker(**_: object) -> None:
    TRACKER.start()


@events.test_stop.add_listener
def _stop_tracker(**_: object) -> None:
    TRACKER.stop()


class OrderFlowUser(HttpUser):
    """An external signal source: small market intents, alternating sides so the position stays
    inside risk limits, each with a fresh intent id."""

    host = STACK.intake_url
    wait_time = constant_throughput(RATE)
    weight = 10
    _ids = itertools.count(1)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {STACK.intake_token}"
        self.side = "BUY"

    @task
    def send_intent(self) -> None:
        intent_id = f"load-{RUN_ID}-{next(self._ids)}"
        body = {
            "intent_id": intent_id,
            "symbol": SYMBOLS[0],
            "side": self.side,
            "qty": QTY,
            "order_type": "MARKET",
            "source": "locust",
        }
        self.side = "SELL" if self.side == "BUY" else "BUY"
        sent_ns = time.time_ns()
        with self.client.post(
            "/intents", json=body, name="POST /intents", catch_response=True
        ) as response:
            # the judge's record of what was asked and what the intake answered (raw, per intent)
            LOG.write(
                event="submitted",
                intent_id=intent_id,
                symbol=body["symbol"],
                side=body["side"],
                qty=body["qty"],
                order_type=body["order_type"],
                sent_ns=sent_ns,
                status=response.status_code,
            )
            if response.status_code == 202:
                TRACKER.expect(intent_id, sent_ns / 1e9)
                response.success()
            else:
                response.failure(f"{response.status_code}: {response.text[:200]}")


class MarketBurstUser(HttpUser):
    """Drives the replay's control API: the bursts the load shape asks for (or, without a
    shape, one every STORMPROOF_BURST_EVERY_S), so the engine sees 10x or 100x message rates."""

    host = STACK.control_url
    fixed_count = 1
    wait_time = between(0.2, 0.3)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {STACK.control_token}"
        self.bursting_until = 0.0
        self.started = time.monotonic()
        self.next_periodic = self.started + BURST_EVERY_S

    def _burst(self, multiplier: float, duration_s: float) -> None:
        body = {"multiplier": multiplier, "duration_ms": max(1, int(duration_s * 1000))}
        with self.client.post(
            "/replay/burst", json=body, name="POST /replay/burst", catch_response=True
        ) as response:
            if response.status_code == 201:
                self.bursting_until = time.monotonic() + duration_s
                response.success()
            else:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task
    def drive_market(self) -> None:
        now = time.monotonic()
        if now < self.bursting_until:
            return
        if Shape is not None:
            if BurstBoard.multiplier is not None:
                self._burst(BurstBoard.multiplier, BurstBoard.until_s - BurstBoard.elapsed_s)
        elif BURST_EVERY_S > 0 and now >= self.next_periodic:
            self.next_periodic = now + BURST_EVERY_S
            self._burst(BURST_MULTIPLIER, BURST_S)


class DeskOperatorUser(HttpUser):
    """What a desk reads during an incident: every service's /status (trading state,
    positions, feed ages), every couple of seconds."""

    host = STACK.ops_url("risk")
    fixed_count = 1
    wait_time = between(1.0, 2.0)

    @task
    def watch(self) -> None:
        for service in STACK.ops_services():
            self.client.get(f"{STACK.ops_url(service)}/status", name=f"GET /status {service}")
