"""Bad config, unreachable Redis, missing Toxiproxy: one clear line on stderr, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.ports import free_ports

pytestmark = pytest.mark.integration


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]


def test_bad_config_file(tmp_path: Path) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(
        '[venue]\nws_urls = "not-a-list"\nrest_url = "http://127.0.0.1:1"\nsymbols = ["BTCUSDT"]\n'
    )
    result = run([sys.executable, "-m", "engine", "run", "all", "--config", str(config)])
    assert_one_clear_line(result, "venue.ws_urls: must be a non-empty list of ws:// or wss:// URLs")


def test_missing_config_file(tmp_path: Path) -> None:
    result = run(
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
    result = run([sys.executable, "-m", "engine", "run", "risk", "--config", str(config)])
    assert_one_clear_line(result, f"cannot reach Redis at redis://127.0.0.1:{redis_port}/0")


def test_missing_toxiproxy_binary(tmp_path: Path, synth_recording: Path) -> None:
    result = run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "stack",
            "up",
            "-r",
            str(synth_recording),
            "--run-dir",
            str(tmp_path / "stack"),
        ],
        env={"STORMPROOF_TOXIPROXY_SERVER": str(tmp_path / "no-such-toxiproxy-server")},
    )
    assert_one_clear_line(result, "toxiproxy-server not found")
