"""The Kubernetes target reads an experiment's activities from its Chaos Toolkit journal, shaped
as the local stack's activity log, so the fault starts where the experiment says it does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.gameday.k8s_run import _activities

pytestmark = pytest.mark.unit


def run(name: str, kind: str, start: str, end: str) -> dict[str, object]:
    return {"activity": {"name": name, "type": kind}, "start": start, "end": end}


def test_the_journal_gives_the_method_and_each_activity_with_utc_times(tmp_path: Path) -> None:
    journal = tmp_path / "chaos-journal.json"
    journal.write_text(
        json.dumps(
            {
                "run": [
                    run("leader-before", "probe", "2026-12-07T10:00:00", "2026-12-07T10:00:00.5"),
                    run("kill", "action", "2026-12-07T10:00:01", "2026-12-07T10:00:09"),
                ],
                "rollbacks": [run("heal", "action", "2026-12-07T10:00:10", "2026-12-07T10:00:11")],
            }
        )
    )
    records = _activities(journal)
    method_start = next(a for a in records if a["phase"] == "method" and a["event"] == "start")
    kill = next(a for a in records if a["name"] == "kill" and a["event"] == "start")
    assert method_start["ts_ns"] == 1_796_637_600 * 10**9  # 2026-12-07T10:00:00Z
    assert kill["ts_ns"] - method_start["ts_ns"] == 10**9
    assert [a["name"] for a in records if a["phase"] == "rollbacks"] == ["rollbacks", "rollbacks"]


def test_an_unreadable_journal_gives_no_activities(tmp_path: Path) -> None:
    (tmp_path / "j.json").write_text("{not json")
    assert _activities(tmp_path / "j.json") == []
    assert _activities(tmp_path / "absent.json") == []
