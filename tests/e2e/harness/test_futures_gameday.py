"""The futures game day on the local stack (a synthetic USD-M perpetual, the engine at 20x):
the unmutated engine passes the liquidation cascade (its breaker reduces before the venue
liquidates, judged from the venue's own liquidations and liquidation price), and the mutant
without the breaker is caught by the venue liquidating it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.tools import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def test_the_liquidation_cascade_passes_and_the_mutant_without_a_breaker_is_caught(
    tmp_path: Path,
) -> None:
    out = tmp_path / "mutants"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "gameday",
            "mutants",
            "gamedays/futures-mutants.yaml",
            "--fast",
            "--out",
            str(out),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    summary = json.loads((out / "mutants.json").read_text())
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    assert summary["unmutated_problems"] == []
    unmutated = summary["unmutated"]["liquidation-cascade"]
    assert unmutated["verdict"] == "pass", unmutated
    (row,) = summary["table"]
    assert row["mutant"] == "no-liquidation-breaker"
    assert row["verdict"] == "caught" and row["slo_verdict"] == "fail", row
    assert row["caught_by"] == "liquidations" and row["value"] >= 1
    report = json.loads(next(out.glob("**/unmutated*/report.json")).read_text())
    (scenario,) = report["scenarios"]
    assert all(e["proven"] for e in scenario["evidence"]), "the mark did move: the fault is real"
    slos = {s["name"]: s for s in scenario["slos"]}
    assert slos["liquidations"]["value"] == 0
    assert slos["min_liquidation_distance_pct"]["value"] > 2.0
