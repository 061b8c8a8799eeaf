"""The README's main command, as a user runs it (minus the bootstrap, which make does)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_trades_and_reports_a_consistent_summary(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "demo",
            "--duration",
            "8",
            "--run-dir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "demo summary" in out
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    assert int(rows["orders sent"]) > 0
    assert int(rows["filled"]) > 0
    assert rows["position BTCUSDT (engine)"]
    assert rows["position BTCUSDT (simulator)"]
    assert float(rows["position BTCUSDT (engine)"]) == float(rows["position BTCUSDT (simulator)"])
    assert rows["duplicate orders at venue"] == "0"
    assert rows["processes exited cleanly"] == "True"
    assert "ms /" in rows["tick-to-order p50 / p99"]
