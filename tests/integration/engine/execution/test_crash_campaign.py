"""kill -9, twenty times, in the middle of order flow: nothing lost, nothing doubled, no drift.

Run with each journal durability (`execution.journal_durability`): a process crash loses no
journal write in either.

A steady flow of order requests (direct market orders and split parents, buys and sells) goes
to the execution service while it is SIGKILLed at 20 random moments and restarted each time.
The simulator's ground truth then says: every intent was worked to the end exactly once (no
venue order beyond the intent's quantity, no clientOrderId twice), and the journal's position
equals the venue's balance change (drift 0 after the last recovery).
"""

from __future__ import annotations

import random
import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest

from replay.synth import SynthSpec, write_recording
from tests.helpers import redis, replay_process, wait_until
from tests.integration.trading import (
    Bus,
    MixedFlow,
    assert_every_intent_traded_once,
    duplicate_client_ids,
    engine_argv,
    engine_config,
    running,
    start,
    status,
    stop,
    venue_base_position,
    wait_started,
)

pytestmark = pytest.mark.integration
KILLS = 20


@pytest.mark.parametrize("durability", ["process", "fsync"])
def test_twenty_sigkills_lose_nothing_double_nothing_and_leave_no_drift(
    tmp_path: Path, durability: str
) -> None:
    """Both journal durabilities survive any process crash: "process" because a commit is in
    the OS before the order leaves, "fsync" because it is on the disk."""
    recording = tmp_path / "calm-300s.gz"
    write_recording(SynthSpec(duration_s=300, seed=11), recording)
    rng = random.Random(20261121)
    with redis(tmp_path) as redis_port, replay_process(tmp_path, recording, speed="1") as sim:
        config, ports = engine_config(
            tmp_path,
            sim,
            redis_port,
            execution=f'max_orders_per_10s = 90\njournal_durability = "{durability}"',
        )
        port = ports["execution"]
        log = tmp_path / "execution.log"
        bus = Bus(redis_port)
        with running(engine_argv(config, "feed"), tmp_path / "feed.log"):
            proc = start(engine_argv(config, "execution"), log)
            wait_started(port, proc, log)
            flow = MixedFlow(bus, seed=7)
            flow.start()
            try:
                for _ in range(KILLS):
                    time.sleep(rng.uniform(0.2, 1.2))  # a random moment of the flow
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    proc = start(engine_argv(config, "execution"), log)
                    wait_started(port, proc, log)
            finally:
                flow.halt.set()
                flow.join()
            sent = {i.intent_id: i for i in flow.sent}
            assert len(sent) > 60, "the flow ran through the campaign"
            wait_until(
                lambda: set(sent) <= set(bus.done()),
                timeout_s=60,
                what="every intent sent to be worked to the end",
            )
            # one more recovery, on a quiet market of ours: what does it find?
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = start(engine_argv(config, "execution"), log)
            wait_started(port, proc, log)
            final = status(port)
            stop(proc)
        done = bus.done()
        bus.close()

        assert duplicate_client_ids(sim) == [], "no clientOrderId reached the venue twice"
        assert_every_intent_traded_once(sim, sent, done)
        assert final["recovery"]["drift_percent"] == {"BTCUSDT": 0.0}
        assert Decimal(final["positions"]["BTCUSDT"]) == venue_base_position(sim)
