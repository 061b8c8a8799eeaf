"""A 429 storm and a 418 ban from the simulator while orders flow: the engine backs off for the
whole venue, is never banned by the venue's own rule, and trades again once it may.

The simulator applies Binance's rule to whoever ignores a 429: requests sent inside the
Retry-After window are strikes, and strikes earn an IP ban (418). Its ground truth counts the
429s and 418s it served and the bans it imposed.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.core.messages import Side
from tests.helpers import control, redis, replay_process, wait_until
from tests.integration.trading import (
    Bus,
    duplicate_client_ids,
    engine_argv,
    engine_config,
    intent,
    running,
    status,
    wait_started,
)

pytestmark = pytest.mark.integration


class Flow(threading.Thread):
    def __init__(self, bus: Bus) -> None:
        super().__init__(daemon=True)
        self.bus = bus
        self.sent: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.wait(0.3):
            n += 1
            request = intent(f"storm-{n}", side=Side.BUY if n % 2 else Side.SELL, qty="0.001")
            self.bus.request(request)
            self.sent.append(request.intent_id)


def venue_view(sim: object) -> dict[str, int]:
    limits: dict[str, dict[str, int]] = control(sim, "GET", "/status")["rate_limits"]  # type: ignore[arg-type]
    return limits.get("127.0.0.1", {"too_many_429": 0, "banned_418": 0, "bans": 0})


def fault_ended(sim: object, fault_id: object) -> bool:
    faults = control(sim, "GET", "/faults")["faults"]  # type: ignore[arg-type]
    return any(f["id"] == fault_id and not f["active"] for f in faults)


def filled_after(bus: Bus, sent: list[str], since_index: int) -> int:
    done = bus.done()
    return sum(1 for i in sent[since_index:] if i in done and done[i].outcome == "filled")


def test_429_storm_and_418_ban_back_off_for_the_venue_and_earn_no_ban(
    tmp_path: Path, synth_recording: Path
) -> None:
    with (
        redis(tmp_path) as redis_port,
        replay_process(tmp_path, synth_recording, speed="1", extra=["--ban-base-s", "30"]) as sim,
    ):
        config, ports = engine_config(tmp_path, sim, redis_port)
        log = tmp_path / "execution.log"
        bus = Bus(redis_port)
        with (
            running(engine_argv(config, "feed"), tmp_path / "feed.log"),
            running(engine_argv(config, "execution"), log) as proc,
        ):
            wait_started(ports["execution"], proc, log)
            flow = Flow(bus)
            flow.start()
            try:
                wait_until(lambda: len(bus.done()) >= 5, timeout_s=15, what="orders flowing")

                storm = control(
                    sim,
                    "POST",
                    "/faults",
                    {"kind": "rate_limit", "retry_after_s": 2, "duration_ms": 6000},
                )
                wait_until(lambda: fault_ended(sim, storm["id"]), timeout_s=15, what="storm over")
                assert venue_view(sim)["too_many_429"] >= 2, "the storm reached the engine"
                assert venue_view(sim)["bans"] == 0, "the engine honoured Retry-After"
                mark = len(flow.sent)
                wait_until(
                    lambda: filled_after(bus, flow.sent, mark) >= 3,
                    timeout_s=20,
                    what="trading to resume after the storm",
                )

                ban = control(sim, "POST", "/faults", {"kind": "ban", "duration_ms": 4000})
                wait_until(lambda: fault_ended(sim, ban["id"]), timeout_s=15, what="ban over")
                mark = len(flow.sent)
                wait_until(
                    lambda: filled_after(bus, flow.sent, mark) >= 3,
                    timeout_s=20,
                    what="trading to resume after the ban",
                )
            finally:
                flow.halt.set()
                flow.join()
            wait_until(
                lambda: set(flow.sent) <= set(bus.done()),
                timeout_s=30,
                what="every intent to be worked to the end",
            )
            governor = status(ports["execution"])["rate_limit"]
        faults = {f["id"]: f for f in control(sim, "GET", "/faults")["faults"]}
        view = venue_view(sim)
        bus_done = bus.done()
        duplicates = duplicate_client_ids(sim)
        bus.close()

    assert view["bans"] == 0, "never banned by the venue's own rule"
    assert 1 <= faults[ban["id"]]["applied"] <= 3, "after a 418 only in-flight requests arrive"
    assert faults[storm["id"]]["applied"] >= 2
    assert governor["pauses_total"] >= 2
    assert duplicates == []
    refused = [d for i, d in bus_done.items() if i in flow.sent and d.outcome != "filled"]
    assert all("not sent" in d.reason for d in refused), [d.reason for d in refused][:3]
