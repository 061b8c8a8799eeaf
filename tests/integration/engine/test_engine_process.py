"""`python -m engine run all`: one process, four services, each with its own probes and ops."""

from __future__ import annotations

import json
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness.ports import free_ports
from tests.helpers import SIM_KEY, SIM_SECRET, http_ok, process, redis, replay_process, wait_until

pytestmark = pytest.mark.integration
OPS_TOKEN = "ops-token-for-tests-0123456789"


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, data=b"{}", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_run_all_serves_probes_metrics_status_and_guards_ops(
    tmp_path: Path, synth_recording: Path
) -> None:
    ports = dict(zip(("feed", "strategy", "risk", "execution"), free_ports(4), strict=True))
    with redis(tmp_path) as redis_port, replay_process(tmp_path, synth_recording, speed="5") as sim:
        config = tmp_path / "engine.toml"
        config.write_text(f"""
[venue]
ws_urls = ["{sim.ws_url}"]
rest_url = "{sim.rest_url}"
symbols = ["BTCUSDT"]
[bus]
redis_url = "redis://127.0.0.1:{redis_port}/0"
[execution]
journal_path = "{tmp_path / "journal.sqlite"}"
[ops.ports]
{chr(10).join(f"{name} = {port}" for name, port in ports.items())}
""")
        env = {
            "STORMPROOF_API_KEY": SIM_KEY,
            "STORMPROOF_API_SECRET": SIM_SECRET,
            "STORMPROOF_OPS_TOKEN": OPS_TOKEN,
        }
        argv = [sys.executable, "-m", "engine", "run", "all", "--config", str(config)]
        log = tmp_path / "engine.log"
        with process(
            argv,
            log=log,
            env=env,
            ready=lambda: all(http_ok(f"http://127.0.0.1:{p}/readyz") for p in ports.values()),
        ) as engine:
            for name, port in ports.items():
                base = f"http://127.0.0.1:{port}"
                assert get(f"{base}/livez")[0] == 200
                assert get(f"{base}/startupz")[0] == 200
                status, body = get(f"{base}/metrics")
                assert status == 200
                assert b"engine_event_loop_lag_seconds" in body
                status_doc = json.loads(get(f"{base}/status")[1])
                assert status_doc["service"] == name
                assert status_doc["lifecycle"] == "RUNNING"
            feed_metrics = get(f"http://127.0.0.1:{ports['feed']}/metrics")[1].decode()
            assert (
                'trading_market_data_age_seconds{feed="feed0",symbol="BTCUSDT",venue="binance"}'
                in feed_metrics
            )
            risk = f"http://127.0.0.1:{ports['risk']}"
            assert post(f"{risk}/ops/pause", None) == 401
            assert post(f"{risk}/ops/pause", "wrong-token") == 401
            assert post(f"{risk}/ops/pause", OPS_TOKEN) == 202
            wait_until(
                lambda: json.loads(get(f"{risk}/status")[1])["trading_state"] == "REDUCING",
                timeout_s=10,
                what="risk to apply the pause",
            )
            assert post(f"{risk}/ops/resume", OPS_TOKEN) == 202
            wait_until(
                lambda: json.loads(get(f"{risk}/status")[1])["trading_state"] == "ACTIVE",
                timeout_s=10,
                what="risk to resume",
            )
            engine.send_signal(signal.SIGTERM)
            assert engine.wait(timeout=20) == 0
        text = log.read_text()
        for secret in (SIM_SECRET, OPS_TOKEN, SIM_KEY):
            assert secret not in text
        assert '"level": "error"' not in text
