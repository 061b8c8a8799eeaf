"""The gate fails when it should: the catalogue's fast subset of engine mutants (a resend under a
new clientOrderId, positions forgotten on restart, a recovery that sleeps) each played against
the CI gate's crash scenario on a throwaway mutated copy of the engine, after the unmutated
engine passed the same scenario. The whole catalogue is `make mutants` (nightly)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.tools import PROJECT_ROOT

pytestmark = pytest.mark.e2e


def test_every_fast_mutant_is_caught_by_the_slo_it_names_and_the_real_engine_passes(
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
            "gamedays/mutants.yaml",
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
    assert summary["unmutated"]["execution-sigkill"]["verdict"] in ("pass", "warn")
    rows = {row["mutant"]: row for row in summary["table"]}
    assert set(rows) == {
        "resend-under-new-id",
        "forget-positions-on-restart",
        "recovery-sleeps-15s",
    }
    for row in rows.values():
        assert row["verdict"] == "caught" and row["slo_verdict"] == "fail", row
        assert row["gate"] == "fail", "a caught mutant stops the release"
    assert rows["resend-under-new-id"]["caught_by"] == "orders_duplicated"
    assert rows["forget-positions-on-restart"]["value"] > 0
    assert rows["recovery-sleeps-15s"]["caught_by"] == "rto_s"
    assert summary["mutation_score"] == 1.0
    assert "mutation score: 3/3 (100%)" in (out / "mutants.md").read_text()
    # the product carries no mutant switch: each mutant lives only in its throwaway copy
    copy = out / "copies" / "recovery-sleeps-15s" / "engine" / "execution" / "recovery.py"
    assert "asyncio.sleep(15)" in copy.read_text()
    assert "asyncio.sleep(15)" not in (PROJECT_ROOT / "engine/execution/recovery.py").read_text()
