"""A flash crash is replayed where the recording has it: the control API finds the recording's
first fall and seeks to just before it, then the market falls on the replay's own feed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from replay.synth import SynthSpec, write_recording
from tests.helpers import SIM_TOKEN, ReplayProcess, control, replay_process, wait_until

pytestmark = pytest.mark.integration
S = 1_000_000_000


def post(sim: ReplayProcess, path: str, body: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    request = urllib.request.Request(
        f"{sim.control_url}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {SIM_TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())


def best_bid(sim: ReplayProcess) -> float:
    with urllib.request.urlopen(f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=5") as r:
        return float(json.loads(r.read())["bids"][0][0])


def test_seek_to_drop_replays_the_recorded_crash(tmp_path: Path) -> None:
    spec = SynthSpec(duration_s=150.0, seed=6, regime="flash_crash", crash_at_s=120.0)
    recording = tmp_path / "crash.gz"
    write_recording(spec, recording)
    crash_ns = spec.start_ns + 120 * S
    with replay_process(tmp_path, recording, speed="1", wait_for_market=True) as sim:
        status, found = post(sim, "/replay/seek-to-drop", {"min_drop_pct": 2, "lead_s": 3})
        assert status == 200, found
        assert abs(found["start_ns"] - crash_ns) <= S
        assert found["seeking_to_ns"] == found["start_ns"] - 3 * S
        assert found["drop_pct"] >= 2.0
        wait_until(
            lambda: not control(sim, "GET", "/status")["seeking"],
            timeout_s=30,
            what="the seek to finish",
        )
        position = control(sim, "GET", "/status")["position_recv_ns"]
        assert found["seeking_to_ns"] <= position < found["start_ns"]
        before = best_bid(sim)
        wait_until(
            lambda: best_bid(sim) <= before * 0.98,
            timeout_s=15,
            interval_s=0.1,
            what=f"the best bid to fall 2% from {before}",
        )


def test_a_recording_without_a_fall_says_so(tmp_path: Path, synth_recording: Path) -> None:
    with replay_process(tmp_path, synth_recording, speed="1") as sim:
        status, body = post(sim, "/replay/seek-to-drop", {"min_drop_pct": 2})
        assert status == 404
        assert "no fall of 2" in body["error"]
        assert control(sim, "GET", "/status")["seeking"] is False
        for bad in ({"min_drop_pct": 0}, {"lead_s": -1}, {"symbol": "ETHUSDT"}, {"x": 1}):
            status, body = post(sim, "/replay/seek-to-drop", bad)
            assert status == 400, bad
            assert "bad seek-to-drop request" in body["error"]
