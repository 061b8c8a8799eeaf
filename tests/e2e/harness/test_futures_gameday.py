"""The futures game day on the local stack (a synthetic USD-M perpetual, the engine at 20x):
the unmutated engine passes all four scenarios (a liquidation cascade, a mark/last divergence,
a funding spike, a flatten while the venue refuses reduce-only orders after a close by hand),
judged from the venue's own liquidations, liquidation prices, funding and positions; the mutant
that never sends reduceOnly is caught by the account going short; and the cascade on a COIN-M
(inverse) perpetual passes too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.tools import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def stormproof(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_the_futures_scenarios_pass_and_the_mutant_without_reduce_only_is_caught(
    tmp_path: Path,
) -> None:
    day = stormproof("gameday", "run", "gamedays/futures.yaml", "--out", str(tmp_path / "day"))
    assert day.returncode == 0, day.stdout[-4000:] + day.stderr[-3000:]
    report = json.loads((tmp_path / "day" / "report.json").read_text())
    assert report["verdict"] == "pass"
    by_name = {s["name"]: s for s in report["scenarios"]}
    assert set(by_name) == {
        "liquidation-cascade",
        "mark-last-divergence",
        "funding-spike",
        "reduce-only-refused",
    }
    for scenario in by_name.values():
        assert all(e["proven"] for e in scenario["evidence"]), "every fault was seen injected"
    slos = {s["name"]: s["value"] for s in by_name["liquidation-cascade"]["slos"]}
    assert slos["liquidations"] == 0 and slos["min_liquidation_distance_pct"] > 2.0
    funding = {s["name"]: s["value"] for s in by_name["funding-spike"]["slos"]}
    assert 0 <= funding["funding_paid_vs_held_pct"] <= 50
    flips = {s["name"]: s["value"] for s in by_name["reduce-only-refused"]["slos"]}
    assert flips["position_flipped_qty"] == 0

    out = tmp_path / "mutants"
    result = stormproof(
        "gameday", "mutants", "gamedays/futures-mutants.yaml", "--fast", "--out", str(out)
    )
    summary = json.loads((out / "mutants.json").read_text())
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    assert summary["unmutated_problems"] == []
    assert summary["unmutated"]["reduce-only-refused"]["verdict"] == "pass"
    (row,) = summary["table"]
    assert row["mutant"] == "no-reduce-only-at-the-venue"
    assert row["verdict"] == "caught" and row["slo_verdict"] == "fail", row
    assert row["caught_by"] == "position_flipped_qty" and row["value"] >= 1


def test_the_liquidation_cascade_passes_on_a_coin_margined_perpetual(tmp_path: Path) -> None:
    day = stormproof("gameday", "run", "gamedays/futures-coinm.yaml", "--out", str(tmp_path))
    assert day.returncode == 0, day.stdout[-4000:] + day.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    (scenario,) = report["scenarios"]
    assert report["verdict"] == "pass"
    assert all(e["proven"] for e in scenario["evidence"]), "the mark did move: the fault is real"
    held = scenario["truth"]["held_at_fault"]
    assert float(held["ETHUSD_PERP"]) >= 3800, "the venue held the contracts when the mark fell"
    slos = {s["name"]: s["value"] for s in scenario["slos"]}
    assert slos["liquidations"] == 0 and slos["min_liquidation_distance_pct"] > 2.0
