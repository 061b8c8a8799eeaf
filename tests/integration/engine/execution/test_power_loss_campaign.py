"""Power loss, twenty times, in the middle of order flow: nothing lost, nothing doubled, no drift.

With `journal_durability = "process"` a journal commit reaches the OS, not the disk, before the
order it records is sent. A machine crash may then cost the journal the end of its write-ahead
log. This campaign does to the real SQLite file what such a crash can do: execution is
SIGKILLed at a random moment of a steady order flow, then its WAL is cut back to a random
earlier frame boundary (the WAL header is 32 bytes, each frame a 24-byte header and one page;
only whole frames, never below what a checkpoint already synced, see `synced_frames`),
or lost whole. Execution restarts on what is left, with the venue holding orders its journal no
longer knows and the bus still holding their requests.

The simulator's ground truth judges, after every intent sent has been worked to the end
(IntentDone on exec.binance): no clientOrderId reached the venue twice, none was even sent
twice (the venue refused no duplicate), no intent traded more than its quantity, each intent's
outcome says what the venue executed, and the engine's position equals the venue's balance
change (drift 0). Recovery must have adopted orders from the venue in the campaign, and the
cuts must have cost the journal commits: otherwise the campaign proved nothing.
"""

from __future__ import annotations

import random
import signal
import struct
import time
from dataclasses import dataclass
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
    resent_client_ids,
    running,
    start,
    status,
    stop,
    venue_base_position,
    wait_started,
)

pytestmark = pytest.mark.integration
ROUNDS = 20
WAL_HEADER = 32
FRAME_HEADER = 24


@dataclass(frozen=True, kw_only=True)
class Cut:
    """What one simulated power loss did to the journal."""

    whole: bool
    frames_before: int
    frames_after: int
    commits_lost: int


def synced_frames(shm: Path) -> tuple[int, bool]:
    """Frames of the WAL a power loss cannot take back, and whether a checkpoint was cut short.

    A checkpoint syncs the WAL up to the frame it aims for, records that frame
    (nBackfillAttempted), copies the frames into the database file, syncs it, and only then
    records them as copied (nBackfill). Both live in the wal-index after the two 48-byte copies of
    its header (nBackfill at byte 96, nBackfillAttempted at byte 128, machine byte order). Frames
    up to the attempted one were synced before any was copied, so they survive; and when the
    copy was cut short (attempted > copied) the database file already holds some of them, so the
    WAL cannot be lost whole: the file is only consistent with those frames replayed."""
    if not shm.exists() or shm.stat().st_size < 132:
        return 0, False
    header = shm.read_bytes()[:132]
    (backfilled,) = struct.unpack("=I", header[96:100])
    (attempted,) = struct.unpack("=I", header[128:132])
    return max(int(backfilled), int(attempted)), attempted > backfilled


def power_loss(journal: Path, rng: random.Random) -> Cut:
    """Cut the dead process's WAL back to a random frame boundary at or after the synced
    frames, or (one time in five) lose it whole; drop the wal-index, as a reboot does."""
    wal = journal.with_name(journal.name + "-wal")
    shm = journal.with_name(journal.name + "-shm")
    data = wal.read_bytes() if wal.exists() else b""
    valid, commits, page_size = 0, [], 0
    if len(data) >= WAL_HEADER:
        page_size = struct.unpack(">I", data[8:12])[0]
        salts = data[16:24]
        frame = FRAME_HEADER + page_size
        while WAL_HEADER + (valid + 1) * frame <= len(data):
            head = data[WAL_HEADER + valid * frame : WAL_HEADER + valid * frame + FRAME_HEADER]
            if head[8:16] != salts:  # a frame of an earlier generation of the WAL: the end
                break
            valid += 1
            if struct.unpack(">I", head[4:8])[0]:  # the database size: a commit frame
                commits.append(valid)
    floor, copy_cut_short = synced_frames(shm)
    shm.unlink(missing_ok=True)
    if len(data) < WAL_HEADER or (rng.random() < 0.2 and not copy_cut_short):
        wal.unlink(missing_ok=True)
        lost = [c for c in commits if c > floor]
        return Cut(whole=True, frames_before=valid, frames_after=0, commits_lost=len(lost))
    keep = rng.randint(min(floor, valid), valid)
    with wal.open("r+b") as out:
        out.truncate(WAL_HEADER + keep * (FRAME_HEADER + page_size))
    lost = [c for c in commits if c > keep]
    return Cut(whole=False, frames_before=valid, frames_after=keep, commits_lost=len(lost))


def test_twenty_power_losses_lose_nothing_double_nothing_and_leave_no_drift(
    tmp_path: Path,
) -> None:
    recording = tmp_path / "calm-300s.gz"
    write_recording(SynthSpec(duration_s=300, seed=17), recording)
    rng = random.Random(20261207)
    journal = tmp_path / "journal.sqlite"
    with redis(tmp_path) as redis_port, replay_process(tmp_path, recording, speed="1") as sim:
        config, ports = engine_config(
            tmp_path,
            sim,
            redis_port,
            # a 2 s resend grace for orders journaled but never sent (see the halt campaign)
            venue="request_timeout_ms = 1000\nrecv_window_ms = 900",
            execution='max_orders_per_10s = 90\njournal_durability = "process"',
        )
        port = ports["execution"]
        log = tmp_path / "execution.log"
        bus = Bus(redis_port)
        cuts: list[Cut] = []
        adopted = 0
        with running(engine_argv(config, "feed"), tmp_path / "feed.log"):
            proc = start(engine_argv(config, "execution"), log)
            wait_started(port, proc, log)
            flow = MixedFlow(bus, seed=17, prefix="power")
            flow.start()
            try:
                for n in range(ROUNDS):
                    time.sleep(rng.uniform(0.2, 1.0))  # a random moment of the flow
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    cuts.append(power_loss(journal, rng))
                    proc = start(engine_argv(config, "execution"), log)
                    wait_started(port, proc, log)
                    recovery = status(port)["recovery"]
                    # engine says; the venue's truth judges at the end
                    assert recovery["halt_reason"] is None, f"power loss {n}: {recovery}"
                    adopted += recovery["orders_adopted"]
            finally:
                flow.halt.set()
                flow.join()
            sent = {i.intent_id: i for i in flow.sent}
            assert len(sent) > 40, "the flow ran through the campaign"
            wait_until(
                lambda: set(sent) <= set(bus.done()),
                timeout_s=60,
                what="every intent sent to be worked to the end",
            )
            # one more power loss, on a quiet market of ours: what does recovery find?
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            cuts.append(power_loss(journal, rng))
            proc = start(engine_argv(config, "execution"), log)
            wait_started(port, proc, log)
            final = status(port)
            adopted += final["recovery"]["orders_adopted"]
            stop(proc)
        done = bus.done()
        bus.close()

        # the fault happened: the journal lost commits, and recovery found orders at the venue
        assert sum(1 for c in cuts if c.commits_lost) >= ROUNDS // 2, [vars(c) for c in cuts]
        assert any(c.whole for c in cuts), "a round lost the whole WAL"

        assert resent_client_ids(sim) == [], "no order the venue had was sent again"
        assert duplicate_client_ids(sim) == [], "no clientOrderId reached the venue twice"
        assert_every_intent_traded_once(sim, sent, done)
        assert final["recovery"]["unexplained_orders"] == []
        assert final["recovery"]["drift_percent"] == {"BTCUSDT": 0.0}
        assert Decimal(final["positions"]["BTCUSDT"]) == venue_base_position(sim)
        # engine says: it found at the venue what the journal had lost
        assert adopted > 0, "recovery adopted orders the journal had lost"
