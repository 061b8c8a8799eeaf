"""The engine runs on uvloop when told to (`[ops] event_loop = "uvloop"`): every service of a
process on libuv, trading as on the standard loop. Judged by the simulator's orders."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from engine.core.ids import client_order_id
from tests.helpers import redis, replay_process, wait_until
from tests.integration.trading import (
    Bus,
    engine_argv,
    engine_config,
    intent,
    running,
    venue_orders,
    wait_started,
)

pytestmark = pytest.mark.integration


def loop_classes(log: Path) -> list[str]:
    return [
        json.loads(line)["loop_class"]
        for line in log.read_text().splitlines()
        if '"event": "event_loop"' in line
    ]


def test_every_service_on_uvloop_trades_an_intent_to_the_end(
    tmp_path: Path, synth_recording: Path
) -> None:
    with (
        redis(tmp_path) as redis_port,
        replay_process(tmp_path, synth_recording, speed="1", wait_for_market=True) as sim,
    ):
        config, ports = engine_config(
            tmp_path, sim, redis_port, extra='[ops]\nevent_loop = "uvloop"\n'
        )
        log = tmp_path / "engine.log"
        bus = Bus(redis_port)
        with running(engine_argv(config, "all"), log) as engine:
            wait_started(ports["execution"], engine, log)
            bus.request(intent("on-uvloop", qty="0.002"))
            wait_until(lambda: "on-uvloop" in bus.done(), timeout_s=30, what="the intent done")
            done = bus.done()["on-uvloop"]
        bus.close()
        assert loop_classes(log) == ["Loop"], "uvloop.Loop, not the standard loop"
        placed = [
            o for o in venue_orders(sim) if o["client_order_id"] == client_order_id("on-uvloop", 0)
        ]
        assert len(placed) == 1 and Decimal(placed[0]["executed_qty"]) == Decimal("0.002")
        assert done.outcome == "filled" and done.filled_qty == Decimal("0.002")
