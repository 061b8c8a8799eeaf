"""Every metric the alert rules and the Grafana dashboard query is one the engine exports: the
names come from the real /metrics exposition of the four services, built from the cluster's own
engine.toml (not from a copy of the list)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from engine.app import build_service
from engine.bus.memory import MemoryBus
from engine.config import SERVICES, load_settings
from engine.core.clock import LiveClock
from engine.runtime.metrics import EngineMetrics
from engine.runtime.service import ServiceContext
from engine.strategy.registry import STRATEGY_PARAMS
from harness.deploy.config import DEPLOY_ROOT, STAGING_CONFIG

pytestmark = pytest.mark.unit

MONITORING = DEPLOY_ROOT / "monitoring"
RULES = MONITORING / "stormproof.rules.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"

_TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      |(?P<matchers>\{[^}]*\})
      |(?P<range>\[[^\]]*\])
      |(?P<number>(?:0x[0-9a-fA-F]+|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)[a-zA-Z]*)
      |(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
      |(?P<paren>\()
      |(?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "atan2", "inf", "nan", "start", "end"}
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions,
    keywords, label names (matchers, by/without/on/ignoring/group_* lists) or durations."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr)]
    significant = [(kind, text) for kind, text in tokens if not text.isspace()]
    names: set[str] = set()
    skip_list = False
    depth = 0
    for i, (kind, text) in enumerate(significant):
        if skip_list:
            if kind == "paren":
                depth += 1
            elif text == ")":
                depth -= 1
                skip_list = depth > 0
            continue
        if kind != "name":
            continue
        following = significant[i + 1][1] if i + 1 < len(significant) else ""
        if text.lower() in _LABEL_LISTS:
            skip_list = following == "("
            depth = 0
            continue
        if following == "(" or following.lower() in ("by", "without"):
            continue  # a function, or an aggregation (`sum by (x) (...)`)
        if text.lower() in _KEYWORDS:
            continue
        names.add(text)
    return names


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def exposed_names(exposition: str) -> set[str]:
    """Every sample name a text exposition can carry, from its # TYPE lines: a counter's
    _total and _created, a histogram's _bucket, _sum, _count and _created."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split()
        if kind == "counter":
            family = name.removesuffix("_total")
            names |= {f"{family}_total", f"{family}_created"}
        elif kind == "histogram":
            names |= {name, *(f"{name}_{s}" for s in ("bucket", "sum", "count", "created"))}
        else:
            names.add(name)
    return names


@pytest.fixture(scope="module")
def engine_metrics() -> set[str]:
    """The /metrics of the four services as the cluster builds them (its engine.toml), each
    service constructed by the engine's composition root on an in-memory bus."""
    settings = load_settings(
        DEPLOY_ROOT / STAGING_CONFIG,
        {"STORMPROOF_JOURNAL_DSN": "postgresql://stormproof@127.0.0.1:1/stormproof"},
        strategy_params=STRATEGY_PARAMS,
    )
    metrics = EngineMetrics()
    ctx = ServiceContext(
        settings=settings, clock=LiveClock(), bus=MemoryBus(), metrics=metrics, instance="t"
    )
    for service in SERVICES:
        build_service(service, ctx)
    return exposed_names(generate_latest(metrics.registry).decode())


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('max by (state) (trading_state{state="HALTED", x=~"a|b"}) == 1', {"trading_state"}),
        (
            "histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[5m:30s])))",
            {"x_seconds_bucket"},
        ),
        ("max(a offset 15m) - on (namespace) group_left (pod) b >= 3e2", {"a", "b"}),
        ("sum without (feed) (c) / ignoring (x) d and bool e unless f", {"c", "d", "e", "f"}),
        ('label_replace(g, "dst", "$1", "src", "(.*)") or vector(1)', {"g"}),
    ],
)
def test_the_expression_reader_finds_metrics_and_only_them(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_engine_exports_the_feed_collector_and_the_registry(engine_metrics: set[str]) -> None:
    assert {
        "trading_market_data_age_seconds",
        "trading_state",
        "trading_orders_sent_total",
        "trading_tick_to_order_seconds_bucket",
    } <= engine_metrics
    assert "trading_orders_sent" not in engine_metrics


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_metric_queried_exists_in_the_engine(source: str, engine_metrics: set[str]) -> None:
    expressions = rule_expressions() if source == "rules" else dashboard_expressions()
    used = set().union(*(metric_names(expr) for expr in expressions))
    assert len(used) >= (5 if source == "rules" else 20)
    assert used - engine_metrics == set()


def test_an_unknown_metric_is_caught(engine_metrics: set[str]) -> None:
    assert metric_names("trading_lease_transitions_total > 3") - engine_metrics == {
        "trading_lease_transitions_total"
    }


def test_every_alert_the_issue_names_is_there() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"]}
    assert alerts == {
        "StormproofMarketDataStale",
        "StormproofTradingHalted",
        "StormproofPositionDrift",
        "StormproofExecutionLeaderFlapping",
        "StormproofExecutionLeaseLost",
    }


def test_the_dashboard_is_grafana_json(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "stormproof-engine"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}" and target["refId"]
