"""Ops on the real engine: flatten through the execution algos under 500 ms of exchange latency,
a trading state that survives a restart, guarded ops endpoints, and no secret anywhere.

The engine runs as separate feed, risk and execution processes; its REST link to the venue goes
through a real Toxiproxy proxy that adds latency with jitter.
"""

from __future__ import annotations

import json
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

from engine.core.messages import Intent, Side
from harness.ports import free_ports
from harness.toxiproxy import ToxiproxyClient
from tests.helpers import SIM_KEY, SIM_SECRET, redis, replay_process, toxiproxy, wait_until
from tests.integration.trading import (
    OPS_TOKEN,
    Bus,
    engine_argv,
    engine_config,
    post,
    running,
    status,
    venue_base_position,
    wait_started,
)

pytestmark = pytest.mark.integration


def entry(intent_id: str, qty: str) -> Intent:
    return Intent(
        correlation_id=f"corr-{intent_id}",
        intent_id=intent_id,
        source="desk",
        venue="binance",
        symbol="BTCUSDT",
        side=Side.BUY,
        qty=Decimal(qty),
        created_ts_ns=time.time_ns(),
    )


def test_flatten_under_exchange_latency_completes_and_reports_time_to_flat(
    tmp_path: Path, synth_recording: Path
) -> None:
    with (
        redis(tmp_path) as redis_port,
        replay_process(tmp_path, synth_recording, speed="1") as sim,
        toxiproxy(tmp_path) as api_port,
    ):
        proxy = ToxiproxyClient("127.0.0.1", api_port)
        rest_listen = free_ports(1)[0]
        proxy.ensure_proxies(
            [
                {
                    "name": "engine_to_rest",
                    "listen": f"127.0.0.1:{rest_listen}",
                    "upstream": f"127.0.0.1:{sim.rest_port}",
                }
            ]
        )
        config, ports = engine_config(
            tmp_path, sim, redis_port, rest_url=f"http://127.0.0.1:{rest_listen}"
        )
        bus = Bus(redis_port)
        logs = {name: tmp_path / f"{name}.log" for name in ("feed", "risk", "execution")}
        with (
            running(engine_argv(config, "feed"), logs["feed"]),
            running(engine_argv(config, "execution"), logs["execution"]) as execution,
        ):
            wait_started(ports["execution"], execution, logs["execution"])
            with running(engine_argv(config, "risk"), logs["risk"]) as risk:
                wait_started(ports["risk"], risk, logs["risk"])
                risk_url = f"http://127.0.0.1:{ports['risk']}"
                wait_until(
                    lambda: status(ports["risk"]).get("mids", {}).get("BTCUSDT"),
                    timeout_s=10,
                    what="risk to see the market",
                )
                bus.publish("intents", entry("desk-entry-1", "0.01"))
                wait_until(
                    lambda: (
                        Decimal(status(ports["risk"])["positions"].get("BTCUSDT", "0"))
                        > Decimal("0.009")
                    ),
                    timeout_s=15,
                    what="a position to flatten",
                )
                assert post(f"{risk_url}/ops/flatten", None) == 401, "no token, no flatten"
                assert post(f"{risk_url}/ops/flatten", "wrong-token") == 401
                proxy.add_toxic(
                    "engine_to_rest",
                    toxic_type="latency",
                    name="slow_exchange",
                    attributes={"latency": 500, "jitter": 100},
                )
                sent = time.monotonic()
                assert post(f"{risk_url}/ops/flatten", OPS_TOKEN, {"reason": "test"}) == 202
                flatten = wait_until(
                    lambda: (f := status(ports["risk"]).get("flatten")) and f["finished_ns"] and f,
                    timeout_s=60,
                    what="the flatten to complete",
                )
                observed_s = time.monotonic() - sent
                assert isinstance(flatten, dict)
                assert flatten.get("abandoned") is None
                assert 0.5 < flatten["duration_ms"] / 1000 <= observed_s + 0.5, (
                    "time to flat is reported, and it includes the exchange latency"
                )
                assert abs(venue_base_position(sim)) <= Decimal("0.0001"), "flat at the venue"
                assert status(ports["risk"])["trading_state"] == "REDUCING"
                with urllib.request.urlopen(f"{risk_url}/metrics", timeout=3) as response:
                    assert b"trading_flatten_seconds_count 1.0" in response.read()
                proxy.reset()

            # a restarted risk service is still REDUCING: a flatten is not undone by a crash
            with running(engine_argv(config, "risk"), logs["risk"]) as risk:
                wait_started(ports["risk"], risk, logs["risk"])
                assert status(ports["risk"])["trading_state"] == "REDUCING"
                bus.publish("intents", entry("desk-entry-2", "0.001"))
                wait_until(
                    lambda: status(ports["risk"]).get("denied", 0) >= 1,
                    timeout_s=10,
                    what="an entry to be denied while REDUCING",
                )
                assert post(f"{risk_url}/ops/resume", OPS_TOKEN) == 202
                wait_until(
                    lambda: status(ports["risk"])["trading_state"] == "ACTIVE",
                    timeout_s=10,
                    what="resume",
                )
                statuses = [
                    json.dumps(status(port)) for port in (ports["risk"], ports["execution"])
                ]
        bus.close()
        for text in [*(log.read_text() for log in logs.values()), *statuses]:
            for secret in (SIM_KEY, SIM_SECRET, OPS_TOKEN):
                assert secret not in text, "a secret leaked into a log line or /status"
