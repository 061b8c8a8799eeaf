"""An active/standby execution pair: the leader frozen mid-flow, the standby takes over.

Two `engine run execution` processes share a PostgreSQL journal and a Redis lease (TTL 2 s).
The leader is frozen with SIGSTOP while order requests flow; the standby must be leading and
ready within TTL + 1 s. When the old leader is thawed it must neither write nor send: it finds
itself deposed and exits, and the venue's ground truth shows no duplicate order.
"""

from __future__ import annotations

import signal
import threading
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from engine.core.messages import Side
from harness.ports import free_ports
from tests.helpers import redis, replay_process, wait_until
from tests.integration.trading import (
    Bus,
    duplicate_client_ids,
    engine_argv,
    engine_config,
    get_json,
    intent,
    running,
    start,
    status,
    stop,
    venue_base_position,
    wait_started,
)

pytestmark = pytest.mark.integration
TTL_MS = 2_000


class Flow(threading.Thread):
    def __init__(self, bus: Bus) -> None:
        super().__init__(daemon=True)
        self.bus = bus
        self.sent: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.wait(0.2):
            n += 1
            request = intent(f"fo-{n}", side=Side.BUY if n % 2 else Side.SELL, qty="0.001")
            self.bus.request(request)
            self.sent.append(request.intent_id)


@pytest.fixture
def journal_dsn(postgres_dsn: str) -> str:
    name = f"failover_{time.time_ns()}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_dsn.rsplit("/", 1)[0] + f"/{name}"


def test_frozen_leader_is_replaced_within_ttl_and_cannot_write_or_send_when_thawed(
    tmp_path: Path, synth_recording: Path, journal_dsn: str
) -> None:
    with redis(tmp_path) as redis_port, replay_process(tmp_path, synth_recording, speed="1") as sim:
        pair = f"""
[lease]
backend = "redis"
ttl_ms = {TTL_MS}
renew_interval_ms = 500
"""
        execution = 'journal_backend = "postgres"'
        env = {"STORMPROOF_JOURNAL_DSN": journal_dsn}
        config_a, ports_a = engine_config(
            tmp_path, sim, redis_port, name="a", extra=pair, execution=execution
        )
        ports_b = {**ports_a, "execution": free_ports(1)[0]}
        config_b, _ = engine_config(
            tmp_path, sim, redis_port, name="b", extra=pair, execution=execution, ports=ports_b
        )
        log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
        bus = Bus(redis_port)
        with running(engine_argv(config_a, "feed"), tmp_path / "feed.log"):
            leader = start(engine_argv(config_a, "execution"), log_a, env)
            wait_started(ports_a["execution"], leader, log_a)
            wait_until(
                lambda: status(ports_a["execution"]).get("role") == "leader",
                timeout_s=10,
                what="the first instance to lead",
            )
            standby = start(engine_argv(config_b, "execution"), log_b, env)
            try:
                wait_started(ports_b["execution"], standby, log_b)
                assert status(ports_b["execution"])["role"] == "standby"
                assert get_json(f"http://127.0.0.1:{ports_b['execution']}/readyz")[0] == 200, (
                    "a hot standby is ready"
                )
                flow = Flow(bus)
                flow.start()
                wait_until(lambda: len(bus.done()) >= 5, timeout_s=15, what="orders flowing")

                leader.send_signal(signal.SIGSTOP)
                frozen_at = time.monotonic()
                wait_until(
                    lambda: (
                        get_json(f"http://127.0.0.1:{ports_b['execution']}/readyz")[0] == 200
                        and status(ports_b["execution"]).get("role") == "leader"
                    ),
                    timeout_s=10,
                    interval_s=0.02,
                    what="the standby to lead",
                )
                takeover_s = time.monotonic() - frozen_at
                assert takeover_s < TTL_MS / 1000 + 1, f"takeover took {takeover_s:.2f}s"
                epoch_b = status(ports_b["execution"])["leader_epoch"]

                worked = len(bus.done())
                wait_until(
                    lambda: len(bus.done()) >= worked + 3,
                    timeout_s=15,
                    what="the flow to go on through the new leader",
                )
                leader.send_signal(signal.SIGCONT)
                assert leader.wait(timeout=15) != 0, "a deposed leader exits to restart as standby"
                flow.halt.set()
                flow.join()
                wait_until(
                    lambda: set(flow.sent) <= set(bus.done()),
                    timeout_s=30,
                    what="every intent to be worked to the end",
                )
                positions = status(ports_b["execution"])["positions"]
                assert status(ports_b["execution"])["leader_epoch"] == epoch_b
            finally:
                stop(standby)
                stop(leader)
        bus.close()
        text_a = log_a.read_text()
        assert "execution_deposed" in text_a or "execution_fenced" in text_a
        after_thaw = (
            text_a.split('"execution_deposed"')[-1] if "execution_deposed" in text_a else ""
        )
        assert '"order_sent"' not in after_thaw, "the deposed leader sent nothing after thawing"
        assert duplicate_client_ids(sim) == []
        assert Decimal(positions["BTCUSDT"]) == venue_base_position(sim)
