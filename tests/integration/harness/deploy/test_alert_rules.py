"""The alert rules pass `promtool check rules` and their unit tests (`promtool test rules`,
deploy/kubernetes/monitoring/tests), each alert firing for one series and not another; a rule
broken in any of those ways fails its test. The dashboard's queries parse as PromQL."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.deploy.config import DEPLOY_ROOT
from harness.tools import promtool

pytestmark = pytest.mark.integration

MONITORING = DEPLOY_ROOT / "monitoring"
RULES = "stormproof.rules.yaml"
RULE_TESTS = Path("tests") / "stormproof.rules.test.yaml"


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_rules_check_and_their_unit_tests_pass() -> None:
    checked = run_promtool("check", "rules", RULES, cwd=MONITORING)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout
    tested = run_promtool("test", "rules", str(RULE_TESTS), cwd=MONITORING)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


STALE, DRIFT = "StormproofMarketDataStale", "StormproofPositionDrift"
FLAPPING, LEASE_LOST = "StormproofExecutionLeaderFlapping", "StormproofExecutionLeaseLost"


@pytest.mark.parametrize(
    ("alert", "original", "broken"),
    [
        # the freshest feed, not the stalest: one dead feed of two must not page
        (STALE, "min by (namespace, venue, symbol)", "max by (namespace, venue, symbol)"),
        (STALE, "for: 30s", "for: 0s"),
        ("StormproofTradingHalted", 'state="HALTED"', 'state="REDUCING"'),
        (DRIFT, "drift_percent) > 0", "drift_percent) > 5"),
        (FLAPPING, ">= 3", ">= 1"),
        # any pod without the lease is not "no leader"
        (
            LEASE_LOST,
            "sum by (namespace) (trading_execution",
            "min by (namespace) (trading_execution",
        ),
    ],
)
def test_a_broken_rule_fails_its_unit_test(
    tmp_path: Path, alert: str, original: str, broken: str
) -> None:
    copy = tmp_path / "monitoring"
    shutil.copytree(MONITORING, copy)
    rules = copy / RULES
    groups = yaml.safe_load(rules.read_text())["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r.get("alert") == alert]
    text = rules.read_text()
    # the change lands in that alert's own rule
    start = text.index(f"- alert: {alert}")
    end = text.find("- alert:", start + 1)
    end = len(text) if end < 0 else end
    assert original in text[start:end], (original, rule)
    rules.write_text(text[:start] + text[start:end].replace(original, broken, 1) + text[end:])
    assert run_promtool("check", "rules", RULES, cwd=copy).returncode == 0
    tested = run_promtool("test", "rules", str(RULE_TESTS), cwd=copy)
    assert tested.returncode != 0
    assert f"alertname: {alert}" in tested.stdout + tested.stderr


def dashboard_as_rules(dashboard: dict[str, object], path: Path) -> Path:
    """Every query of the dashboard as a recording rule: promtool parses each one."""
    panels = dashboard["panels"]
    assert isinstance(panels, list)
    rules = [
        {"record": f"dashboard:panel_{p['id']}_{t['refId'].lower()}", "expr": t["expr"]}
        for p in panels
        for t in p.get("targets", [])
    ]
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return path


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    path = dashboard_as_rules(dashboard, tmp_path / "dashboard.rules.yaml")
    checked = run_promtool("check", "rules", str(path), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    dashboard["panels"][1]["targets"][0]["expr"] = "sum by (state (trading_state)"
    broken = dashboard_as_rules(dashboard, tmp_path / "broken.rules.yaml")
    refused = run_promtool("check", "rules", str(broken), cwd=tmp_path)
    assert refused.returncode != 0 and "parse error" in refused.stdout + refused.stderr
