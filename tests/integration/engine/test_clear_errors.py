"""The engine's command line given a bad config, a missing file or an unreachable Redis: one clear
line on stderr, exit 2, no traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.ports import free_ports
from tests.helpers import assert_one_clear_line, run_cli

pytestmark = pytest.mark.integration


def test_bad_config_file(tmp_path: Path) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(
        '[venue]\nws_urls = "not-a-list"\nrest_url = "http://127.0.0.1:1"\nsymbols = ["BTCUSDT"]\n'
    )
    result = run_cli([sys.executable, "-m", "engine", "run", "all", "--config", str(config)])
    assert_one_clear_line(result, "venue.ws_urls: must be a non-empty list of ws:// or wss:// URLs")


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_cli(
        [sys.executable, "-m", "engine", "run", "feed", "--config", str(tmp_path / "missing.toml")]
    )
    assert_one_clear_line(result, "config file not found")


def test_unreachable_redis(tmp_path: Path) -> None:
    redis_port, *ops = free_ports(5)
    config = tmp_path / "engine.toml"
    config.write_text(f"""
[venue]
ws_urls = ["ws://127.0.0.1:1"]
rest_url = "http://127.0.0.1:1"
symbols = ["BTCUSDT"]
[bus]
redis_url = "redis://127.0.0.1:{redis_port}/0"
startup_timeout_ms = 500
[ops.ports]
feed = {ops[0]}
strategy = {ops[1]}
risk = {ops[2]}
execution = {ops[3]}
""")
    result = run_cli([sys.executable, "-m", "engine", "run", "risk", "--config", str(config)])
    assert_one_clear_line(result, f"cannot reach Redis at redis://127.0.0.1:{redis_port}/0")
