"""The gate can fail, and it says so only on evidence: the feed-loss scenario on a stack without
a redundant feed fails the game day, names the SLO in junit.xml and exits 1; a baseline steady
state that is not met, a method action that raised (`chaos run` exits 0 all the same) and a fault
that left no evidence each make their scenario inconclusive, never a pass. `chaos run`'s exit
code plays no part: the verdict comes from our own measurements."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
GAMEDAY = Path(__file__).parent / "gamedays" / "feed-loss.yaml"


def test_without_a_redundant_feed_the_feed_loss_scenario_fails_the_gate(tmp_path: Path) -> None:
    out = tmp_path / "gameday"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "gameday",
            "run",
            str(GAMEDAY),
            "--out",
            str(out),
            "--feeds",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "fail"
    scenario, unmet, raised, unproven = report["scenarios"]
    age = next(s for s in scenario["slos"] if s["name"] == "max_market_data_age_s")
    assert age["verdict"] == "fail" and age["value"] > 5.0
    suites = ET.parse(out / "junit.xml").getroot()
    failed = [
        case.get("name")
        for case in suites.findall(".//testcase")
        if case.find("failure") is not None and case.get("classname") == "gameday.primary-feed-down"
    ]
    assert failed == ["max_market_data_age_s"]
    # a baseline steady state that is not met makes its scenario inconclusive, whatever `chaos
    # run` exits with: even an SLO its measurements would pass is not a pass
    assert "baseline steady state not met" in unmet["error"]
    assert [s["verdict"] for s in unmet["slos"]] == ["inconclusive"]
    assert unmet["measurements"]["orders_duplicated"] == 0
    # a method action that raised injected nothing: `chaos run` exited 0, the scenario proves
    # nothing, and its SLO (which its measurements would pass) is inconclusive
    assert raised["chaos_exit_code"] == 0
    assert "method activity failed" in raised["error"]
    assert "kill-a-service-that-does-not-exist (failed" in raised["error"]
    assert [s["verdict"] for s in raised["slos"]] == ["inconclusive"]
    # a fault that left no evidence where it should: inconclusive, with what was (not) seen
    assert unproven["error"].startswith("fault not proven injected: link_down(link=engine_to_rest)")
    assert unproven["evidence"] == [
        {
            "evidence": "link_down(link=engine_to_rest)",
            "proven": False,
            "detail": "disabled links seen: none",
        }
    ]
    assert [s["verdict"] for s in unproven["slos"]] == ["inconclusive"]
    assert unproven["measurements"]["orders_duplicated"] == 0


def test_a_stack_that_cannot_start_is_an_error_exit_2_and_the_reports_still_say_why(
    tmp_path: Path,
) -> None:
    out = tmp_path / "gameday"
    missing = tmp_path / "no-such-toxiproxy-server"
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "gameday", "run", str(GAMEDAY), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COLUMNS": "160", "STORMPROOF_TOXIPROXY_SERVER": str(missing)},
    )
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["exit_code"] == 2 and report["verdict"] == "inconclusive"
    for scenario in report["scenarios"]:
        assert "the stack did not start" in scenario["error"]
        assert str(missing) in scenario["error"]
        assert scenario["measurements"] == {} and scenario["timeline"] == {}
        assert {s["verdict"] for s in scenario["slos"]} == {"inconclusive"}
    cases = ET.parse(out / "junit.xml").getroot().findall(".//testcase")
    assert cases and all(
        c.find("failure") is not None or c.find("error") is not None for c in cases
    )
    assert "the stack did not start" in (out / "report.html").read_text()
