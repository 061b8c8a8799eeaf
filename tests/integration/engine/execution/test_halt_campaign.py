"""A halt means no order leaves, resends included: twenty randomized crash-and-halt rounds.

Each round, the venue holds every new order request without processing it (a `timeout` fault),
the execution service is SIGKILLed while it waits for an answer (its orders journaled
SUBMITTING, none at the venue), and then, at random:

  halt       trading is halted before execution restarts: recovery finds the orders unknown at
             the venue and must drop them once their resend grace is over, never send them;
  halt-late  trading is halted after the restart, while recovery waits out the grace;
  cancel     no halt: the orders' intents are cancelled after the restart, the venue answers
             "Unknown order", and the orders must be dropped at the end of their grace, not
             resent.

The simulator's ground truth judges: no venue order accepted between a halt (plus 1 s for a
request already on the wire) and the resume; no venue order for a cancelled intent; no
clientOrderId twice. The order flow never stops meanwhile: while halted, every new request
must be refused by execution itself.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import msgspec
import psycopg
import pytest

from engine.core.ids import client_order_id
from engine.core.messages import Control, Intent, Side
from engine.core.orders import OrderState
from engine.execution.journal import SqliteJournalSync
from harness.ports import free_ports
from replay.synth import SynthSpec, write_recording
from tests.helpers import control, redis, replay_process, wait_until
from tests.integration.trading import (
    Bus,
    duplicate_client_ids,
    engine_argv,
    engine_config,
    intent,
    running,
    start,
    status,
    stop,
    venue_orders,
    wait_started,
)

pytestmark = pytest.mark.integration
ROUNDS = 20
GRACE_S = 2.0
"""The engine's resend grace in the halt rounds: twice its 1 s request timeout."""


class Flow(threading.Thread):
    """A market order request every 200 ms until stopped; remembers when it sent each."""

    def __init__(self, bus: Bus) -> None:
        super().__init__(daemon=True)
        self.bus = bus
        self.sent: list[tuple[float, Intent]] = []
        self.halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        n = 0
        while not self.halt.wait(0.2):
            n += 1
            request = intent(f"halt-flow-{n}", side=Side.BUY if n % 2 else Side.SELL)
            self.bus.request(request)
            with self._lock:
                self.sent.append((time.time(), request))

    def since(self, t: float, until: float = float("inf")) -> list[Intent]:
        with self._lock:
            return [request for at, request in self.sent if t <= at < until]


def submitting(journal: Path) -> set[str]:
    """Intent ids of the journal's orders still SUBMITTING (sent, no answer recorded)."""
    reader = SqliteJournalSync(journal, read_only=True)
    try:
        return {o.intent_id for o in reader.all_orders() if o.state is OrderState.SUBMITTING}
    finally:
        reader.close()


def held_requests(sim: object) -> int:
    pending = control(sim, "GET", "/truth/in-flight")["in_flight"]  # type: ignore[arg-type]
    return sum(1 for r in pending if r["method"] == "POST" and r["path"] == "/api/v3/order")


def test_twenty_crash_and_halt_rounds_let_no_order_reach_the_venue_while_halted(
    tmp_path: Path,
) -> None:
    recording = tmp_path / "calm-400s.gz"
    write_recording(SynthSpec(duration_s=400, seed=12), recording)
    rng = random.Random(20261206)
    with redis(tmp_path) as redis_port, replay_process(tmp_path, recording, speed="1") as sim:
        config, ports = engine_config(
            tmp_path,
            sim,
            redis_port,
            venue="request_timeout_ms = 1000\nrecv_window_ms = 900",
            execution="max_orders_per_10s = 90",
        )
        # the cancel rounds restart with a longer grace (3 s requests: 6 s), so that the cancel
        # can reach execution while the held order still waits out its grace after the restart
        patient, _ = engine_config(
            tmp_path,
            sim,
            redis_port,
            name="patient",
            venue="request_timeout_ms = 3000\nrecv_window_ms = 2900",
            execution="max_orders_per_10s = 90",
            ports=ports,
        )
        port = ports["execution"]
        log = tmp_path / "execution.log"
        bus = Bus(redis_port)
        halted: list[tuple[float, float]] = []  # (halt, resume) wall times
        windows: list[str] = []  # which round and variant each halt window was, for a failure
        cancelled: set[str] = set()
        with running(engine_argv(config, "feed"), tmp_path / "feed.log"):
            proc = start(engine_argv(config, "execution"), log)
            wait_started(port, proc, log)
            flow = Flow(bus)
            flow.start()
            try:
                for n in range(ROUNDS):
                    variant = rng.choice(("halt", "halt-late", "cancel"))
                    held_from = time.time()
                    control(
                        sim,
                        "POST",
                        "/faults",
                        {"kind": "timeout", "endpoint": "POST /api/v3/order", "hold_ms": 1500},
                    )
                    wait_until(lambda: held_requests(sim) > 0, timeout_s=10, what="a held order")
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    control(sim, "DELETE", "/faults")
                    # what the dead process had sent and not heard back about: journaled
                    # SUBMITTING (the journal only picks the intents; the venue judges them)
                    held = [
                        r
                        for r in flow.since(held_from - 0.5)
                        if r.intent_id in submitting(tmp_path / "journal.sqlite")
                    ]
                    if variant == "halt":
                        halted.append((time.time(), 0.0))
                        windows.append(f"round {n} halt, held {sorted(r.intent_id for r in held)}")
                        bus.publish("control", Control(command="halt", reason=f"round {n}"))
                    chosen = patient if variant == "cancel" else config
                    proc = start(engine_argv(chosen, "execution"), log)
                    wait_started(port, proc, log)
                    if variant == "halt-late":
                        time.sleep(rng.uniform(0.0, GRACE_S / 2))  # a random moment of recovery
                        halted.append((time.time(), 0.0))
                        windows.append(
                            f"round {n} halt-late, held {sorted(r.intent_id for r in held)}"
                        )
                        bus.publish("control", Control(command="halt", reason=f"round {n}"))
                    if variant == "cancel":
                        for request in held:
                            cancel = msgspec.structs.replace(
                                intent(f"cancel-{request.intent_id}"),
                                action="cancel",
                                cancel_intent_id=request.intent_id,
                            )
                            bus.request(cancel)
                            cancelled.add(request.intent_id)
                    # every held order is resolved one way or the other once its grace is over
                    ids = {r.intent_id for r in held}
                    wait_until(
                        lambda ids=ids: ids <= set(bus.done()),  # type: ignore[misc]
                        timeout_s=30,
                        what=f"round {n}: the held orders resolved",
                    )
                    if variant != "cancel":
                        halted[-1] = (halted[-1][0], time.time())
                        bus.publish("control", Control(command="resume", reason=f"round {n}"))
            finally:
                flow.halt.set()
                flow.join()
                stop(proc)
        orders = venue_orders(sim)
        doubled = duplicate_client_ids(sim)
        bus.close()

    assert len(halted) >= 5 and len(cancelled) >= 1, "the rounds covered every variant"
    after_halt = [
        (o, halt, window)
        for o in orders
        for (halt, resume), window in zip(halted, windows, strict=True)
        if halt + 1.0 < o["time_ms"] / 1000 < resume
    ]
    sent_at = {client_order_id(i.intent_id, 0): at for at, i in flow.sent}
    assert after_halt == [], "orders reached the venue while halted: " + "; ".join(
        f"{o['client_order_id']} accepted {o['time_ms'] / 1000 - halt:.3f}s after the halt of"
        f" {window}; its intent sent by the flow"
        f" {(sent_at[o['client_order_id']] - halt) if o['client_order_id'] in sent_at else 'never'}"
        f"s after the halt"
        for o, halt, window in after_halt[:3]
    )
    cancelled_ids = {client_order_id(i, 0) for i in cancelled}
    leaked = [o["client_order_id"] for o in orders if o["client_order_id"] in cancelled_ids]
    assert leaked == [], "a cancelled order was resent after its grace"
    assert doubled == []
    assert len(orders) > 20, "orders flowed between the rounds"


TTL_MS = 2_000


@pytest.fixture
def journal_dsn(postgres_dsn: str) -> str:
    name = f"halt_takeover_{time.time_ns()}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_dsn.rsplit("/", 1)[0] + f"/{name}"


def test_a_halt_during_a_standby_takeover_holds_on_the_new_leader(
    tmp_path: Path, journal_dsn: str
) -> None:
    """The leader is frozen while the venue holds its order requests; trading is halted; the
    standby takes over (PostgreSQL journal, Redis lease) and must honour the halt from its
    first act: the held orders are dropped after their grace, nothing reaches the venue until
    the resume, and the thawed old leader, deposed, sends nothing."""
    recording = tmp_path / "calm-300s.gz"
    write_recording(SynthSpec(duration_s=300, seed=13), recording)
    with redis(tmp_path) as redis_port, replay_process(tmp_path, recording, speed="1") as sim:
        pair = f"""
[lease]
backend = "redis"
ttl_ms = {TTL_MS}
renew_interval_ms = 500
"""
        common = {
            "extra": pair,
            "execution": 'journal_backend = "postgres"',
            "venue": "request_timeout_ms = 1000\nrecv_window_ms = 900",
        }
        env = {"STORMPROOF_JOURNAL_DSN": journal_dsn}
        config_a, ports_a = engine_config(tmp_path, sim, redis_port, name="a", **common)
        ports_b = {**ports_a, "execution": free_ports(1)[0]}
        config_b, _ = engine_config(tmp_path, sim, redis_port, name="b", ports=ports_b, **common)
        log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
        bus = Bus(redis_port)
        with running(engine_argv(config_a, "feed"), tmp_path / "feed.log"):
            leader = start(engine_argv(config_a, "execution"), log_a, env)
            standby = None
            flow = Flow(bus)
            try:
                wait_started(ports_a["execution"], leader, log_a)
                wait_until(
                    lambda: status(ports_a["execution"]).get("role") == "leader",
                    timeout_s=10,
                    what="the first instance to lead",
                )
                standby = start(engine_argv(config_b, "execution"), log_b, env)
                wait_started(ports_b["execution"], standby, log_b)
                flow.start()
                wait_until(lambda: len(bus.done()) >= 5, timeout_s=15, what="orders flowing")
                held_from = time.time()
                control(
                    sim,
                    "POST",
                    "/faults",
                    {"kind": "timeout", "endpoint": "POST /api/v3/order", "hold_ms": 1500},
                )
                wait_until(lambda: held_requests(sim) > 0, timeout_s=10, what="a held order")
                leader.send_signal(signal.SIGSTOP)
                frozen = time.time()
                control(sim, "DELETE", "/faults")
                placed = {o["client_order_id"] for o in venue_orders(sim)}
                held = {
                    r.intent_id
                    for r in flow.since(held_from - 0.5, until=frozen)
                    if client_order_id(r.intent_id, 0) not in placed
                }
                halt = time.time()
                bus.publish("control", Control(command="halt", reason="halt during takeover"))
                wait_until(
                    lambda: status(ports_b["execution"]).get("role") == "leader",
                    timeout_s=10,
                    what="the standby to lead",
                )
                wait_until(
                    lambda: held <= set(bus.done()),
                    timeout_s=30,
                    what="the held orders resolved by the new leader",
                )
                leader.send_signal(signal.SIGCONT)
                assert leader.wait(timeout=15) != 0, "a deposed leader exits"
                resume = time.time()
                bus.publish("control", Control(command="resume", reason="over"))
            finally:
                flow.halt.set()
                if flow.is_alive():
                    flow.join()
                stop(leader)
                if standby is not None:
                    stop(standby)
        orders = venue_orders(sim)
        doubled = duplicate_client_ids(sim)
        bus.close()
    assert held, "the takeover found orders it had to resolve"
    during = [o for o in orders if halt + 1.0 < o["time_ms"] / 1000 < resume]
    assert during == [], f"orders reached the venue while halted: {during[:3]}"
    held_ids = {client_order_id(i, 0) for i in held}
    assert not [o for o in orders if o["client_order_id"] in held_ids], "a held order was resent"
    assert doubled == []
    assert "execution_starts_restricted" in log_b.read_text(), "the new leader knew of the halt"
