"""The game-day SLO gate: how one measurement is judged, how the gate decides a release, how
game-day files are read, and what the reports say."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import GameDayConfigError, GameDayReportError, HarnessError
from harness.gameday.report import (
    SCHEMA,
    compare,
    format_comparison,
    load_report,
    regressions,
    report_dict,
    write_junit,
    write_report_json,
)
from harness.gameday.runner import scenario_load
from harness.gameday.schema import LoadSection, StackSection
from harness.gameday.slo import (
    GameDay,
    GateResult,
    ScenarioResult,
    ScenarioSpec,
    Slo,
    SloResult,
    Verdict,
    evaluate_scenario,
    evaluate_slo,
    gate,
    load_gameday,
)
from harness.tools import PROJECT_ROOT

pytestmark = pytest.mark.unit

PASS, WARN, FAIL, UNKNOWN = Verdict.PASS, Verdict.WARN, Verdict.FAIL, Verdict.INCONCLUSIVE

RTO = Slo(name="rto_s", objective="max", pass_threshold=2.0, warn_threshold=3.0, key=True)
FILL = Slo(name="fill_ratio", objective="min", pass_threshold=0.9, warn_threshold=0.8)
DUPES = Slo(name="orders_duplicated", objective="max", pass_threshold=0, key=True)
SLIPPAGE = Slo(
    name="slippage_bps",
    objective="max",
    pass_threshold=1.5,
    warn_threshold=2.0,
    relative_to_baseline=True,
    weight=0.5,
)


def judge(slo: Slo, value: Any, baseline: Any = None) -> SloResult:
    return evaluate_slo(slo, scenario="s", value=value, baseline=baseline)


# values that give each verdict for an SLO "max 1, warn 2"
VALUE_FOR = {PASS: 0.5, WARN: 1.5, FAIL: 3.0, UNKNOWN: None}


def judged(
    verdict: Verdict, *, name: str = "x", weight: float = 1.0, key: bool = False
) -> SloResult:
    slo = Slo(
        name=name, objective="max", pass_threshold=1, warn_threshold=2, weight=weight, key=key
    )
    result = evaluate_slo(slo, scenario="s", value=VALUE_FOR[verdict], baseline=None)
    assert result.verdict is verdict
    return result


def one_scenario(*results: SloResult) -> list[ScenarioResult]:
    return [ScenarioResult(name="s", slos=list(results))]


# --- one SLO: absolute thresholds ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        (0.0, PASS),
        (1.42, PASS),
        (2.0, PASS),
        (2.0001, WARN),
        (3.0, WARN),
        (3.0001, FAIL),
        (math.inf, FAIL),
    ],
)
def test_max_passes_up_to_pass_warns_up_to_warn_boundaries_inclusive(
    value: float, verdict: Verdict
) -> None:
    assert judge(RTO, value).verdict is verdict


@pytest.mark.parametrize(
    ("value", "verdict"),
    [(1.0, PASS), (0.9, PASS), (0.8999, WARN), (0.8, WARN), (0.7999, FAIL), (-1.0, FAIL)],
)
def test_min_mirrors_max(value: float, verdict: Verdict) -> None:
    assert judge(FILL, value).verdict is verdict


def test_without_warn_band_whatever_misses_pass_fails() -> None:
    assert judge(DUPES, 0).verdict is PASS
    assert judge(DUPES, 1).verdict is FAIL


def test_messages_are_one_readable_line() -> None:
    assert judge(RTO, 1.42).message == "rto_s = 1.42 s <= 2 s (pass)"
    assert judge(RTO, 2.5).message == "rto_s = 2.5 s > 2 s but <= 3 s (warn)"
    assert judge(RTO, 4).message == "rto_s = 4 s > 3 s (fail)"
    assert judge(FILL, 0.5).message == "fill_ratio = 0.5 < 0.8 (fail)"
    assert judge(RTO, None).message == "rto_s: no measurement: inconclusive"


def test_decimal_and_int_measurements_are_numbers() -> None:
    result = judge(RTO, Decimal("1.5"))
    assert result.verdict is PASS and result.value == 1.5 and isinstance(result.value, float)


@pytest.mark.parametrize("slo", [RTO, FILL, DUPES, SLIPPAGE])
@pytest.mark.parametrize("missing", [None, math.nan, Decimal("NaN")])
def test_missing_value_is_inconclusive_never_pass(slo: Slo, missing: Any) -> None:
    result = judge(slo, missing, baseline=1.0)
    assert result.verdict is UNKNOWN and result.value is None


# --- one SLO: relative to the baseline ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "verdict"), [(1.0, PASS), (1.8, PASS), (1.81, WARN), (2.4, WARN), (2.41, FAIL)]
)
def test_relative_thresholds_are_multiples_of_the_baseline(value: float, verdict: Verdict) -> None:
    result = judge(SLIPPAGE, value, baseline=1.2)
    assert result.verdict is verdict
    assert result.pass_threshold == pytest.approx(1.8) and result.warn_threshold == pytest.approx(
        2.4
    )
    assert result.baseline == 1.2


def test_relative_message_shows_multiplier_and_baseline() -> None:
    assert judge(SLIPPAGE, 1.0, baseline=1.0).message == (
        "slippage_bps = 1 bps <= 1.5 bps (1.5x baseline 1 bps) (pass)"
    )


def test_float_products_do_not_move_a_boundary() -> None:
    slo = Slo(name="lag_s", objective="max", pass_threshold=0.7, relative_to_baseline=True)
    assert 0.7 * 3 < 2.1  # the product is 2.0999999999999996
    assert judge(slo, 2.1, baseline=3).verdict is PASS


@pytest.mark.parametrize("baseline", [None, math.nan, math.inf, -0.5])
def test_relative_without_a_usable_baseline_is_inconclusive(baseline: float | None) -> None:
    result = judge(SLIPPAGE, 0.1, baseline=baseline)
    assert result.verdict is UNKNOWN
    assert result.pass_threshold is None and result.warn_threshold is None
    assert result.message.endswith(": inconclusive")


def test_zero_baseline_means_thresholds_of_exactly_zero() -> None:
    assert judge(SLIPPAGE, 0.0, baseline=0.0).verdict is PASS
    # the warning band collapses: anything above zero fails
    assert judge(SLIPPAGE, 1e-12, baseline=0.0).verdict is FAIL
    at_least = Slo(name="fills", objective="min", pass_threshold=0.5, relative_to_baseline=True)
    assert judge(at_least, 0.0, baseline=0.0).verdict is PASS


def test_absolute_slo_ignores_the_baseline() -> None:
    assert judge(RTO, 1.0, baseline=None).verdict is PASS
    assert judge(RTO, 1.0, baseline=0.1).pass_threshold == 2.0


# --- SLO definitions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"objective": "max", "pass_threshold": 2.0, "warn_threshold": 1.0}, "warn must be >="),
        ({"objective": "min", "pass_threshold": 0.8, "warn_threshold": 0.9}, "warn must be <="),
        ({"objective": "max", "pass_threshold": 1.0, "weight": 0}, "weight"),
        ({"objective": "max", "pass_threshold": 1.0, "weight": -1}, "weight"),
        ({"objective": "max", "pass_threshold": math.nan}, "finite"),
        ({"objective": "mean", "pass_threshold": 1.0}, "'max' or 'min'"),
        (
            {"objective": "max", "pass_threshold": -1.0, "relative_to_baseline": True},
            "multipliers",
        ),
    ],
)
def test_invalid_slo_is_refused_with_a_clear_message(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(GameDayConfigError, match=words) as caught:
        Slo(name="rto_s", **kwargs)
    assert "rto_s" in str(caught.value) and isinstance(caught.value, HarnessError)


def test_warn_equal_to_pass_is_allowed_and_means_no_band() -> None:
    slo = Slo(name="x", objective="max", pass_threshold=1.0, warn_threshold=1.0)
    assert judge(slo, 1.0).verdict is PASS and judge(slo, 1.01).verdict is FAIL


# --- scenarios ----------------------------------------------------------------------------------


def spec(*slos: Slo, name: str = "s") -> ScenarioSpec:
    return ScenarioSpec(
        name=name, experiment=Path("e.json"), baseline_s=20, settle_s=10, slos=tuple(slos)
    )


def test_evaluate_scenario_judges_every_slo_and_missing_slis_are_inconclusive() -> None:
    result = evaluate_scenario(
        spec(RTO, FILL, SLIPPAGE), values={"rto_s": 1.0, "slippage_bps": 1.0}, baselines={}
    )
    assert [r.verdict for r in result.slos] == [PASS, UNKNOWN, UNKNOWN]
    assert all(r.scenario == "s" for r in result.slos)


def test_scenario_that_could_not_run_has_only_inconclusive_slos() -> None:
    passing = [judge(RTO, 1.0), judge(FILL, 1.0)]
    result = ScenarioResult(name="s", slos=passing, error="experiment file unreadable")
    assert [r.verdict for r in result.slos] == [UNKNOWN, UNKNOWN]
    assert "scenario could not run (experiment file unreadable)" in result.slos[0].message
    via_evaluate = evaluate_scenario(spec(RTO), values={"rto_s": 1.0}, error="stack down")
    assert via_evaluate.slos[0].verdict is UNKNOWN


# --- the gate: strict, the default -------------------------------------------------------------


def test_any_failed_slo_fails_the_strict_gate_whatever_its_weight_or_the_score() -> None:
    results = [judged(PASS, name=f"ok{i}") for i in range(30)]
    results.append(judged(FAIL, name="slippage_bps", weight=0.1))
    result = gate(one_scenario(*results))
    assert result.score > 0.95 and result.mode == "strict"
    assert result.verdict is FAIL and result.exit_code == 1
    assert [r.split(":")[0] for r in result.reasons] == ["s/slippage_bps"]


def test_strict_gate_is_inconclusive_on_a_key_slo_without_data_and_warns_on_other_gaps() -> None:
    key_gap = gate(one_scenario(judged(PASS), judged(UNKNOWN, name="orders_lost", key=True)))
    assert key_gap.verdict is UNKNOWN and key_gap.exit_code == 1
    other_gap = gate(one_scenario(judged(PASS, key=True), judged(UNKNOWN, name="intake_p99_ms")))
    assert other_gap.verdict is WARN and other_gap.exit_code == 0
    assert other_gap.reasons[0].startswith("s/intake_p99_ms")


def test_strict_gate_warns_on_any_warning_band_and_passes_only_a_clean_sheet() -> None:
    assert gate(one_scenario(judged(PASS), judged(WARN))).verdict is WARN
    clean = gate(one_scenario(judged(PASS, key=True), judged(PASS)))
    assert clean.verdict is PASS and clean.reasons == (
        "all 2 SLOs passed, every key SLO among them",
    )


def test_strict_gate_is_inconclusive_when_a_scenario_could_not_run() -> None:
    ran = ScenarioResult(name="a", slos=[judged(PASS)])
    broken = ScenarioResult(name="b", slos=[judged(PASS)], error="fault not proven injected")
    result = gate([ran, broken])
    assert result.verdict is UNKNOWN and "b: scenario could not run" in result.reasons[0]


def test_an_unknown_gate_mode_is_refused() -> None:
    with pytest.raises(GameDayConfigError, match="gate mode"):
        gate([], mode="lenient")  # type: ignore[arg-type]


# --- the gate: score mode (opt in) ----------------------------------------------------------------


def test_everything_passing_passes_with_exit_0() -> None:
    result = gate(one_scenario(judged(PASS, key=True), judged(PASS)), mode="score")
    assert result.verdict is PASS and result.score == 1.0 and result.exit_code == 0
    assert result.counts == {"pass": 2, "warn": 0, "fail": 0, "inconclusive": 0}


def test_key_slo_failure_fails_the_gate_even_with_a_high_score() -> None:
    results = [judged(PASS, name=f"ok{i}") for i in range(30)]
    results.append(judged(FAIL, name="orders_duplicated", key=True))
    result = gate(one_scenario(*results), mode="score")
    assert result.score > 0.95
    assert result.verdict is FAIL and result.exit_code == 1
    assert len(result.reasons) == 1 and result.reasons[0].startswith("s/orders_duplicated [key]:")


def test_inconclusive_key_slo_makes_the_gate_inconclusive_with_exit_1() -> None:
    result = gate(
        one_scenario(judged(UNKNOWN, name="rto_s", key=True), judged(PASS), judged(PASS)),
        mode="score",
    )
    assert result.verdict is UNKNOWN and result.exit_code == 1
    assert any("rto_s" in reason for reason in result.reasons)


def test_failed_non_key_slo_caps_the_gate_at_warn_whatever_the_score() -> None:
    results = [judged(PASS, name=f"ok{i}") for i in range(30)] + [judged(FAIL, name="feed_s")]
    result = gate(one_scenario(*results), mode="score")
    assert result.score >= 0.9
    assert result.verdict is WARN and result.exit_code == 0
    assert any("feed_s" in reason for reason in result.reasons)


def test_key_slo_in_its_warning_band_caps_the_gate_at_warn() -> None:
    results = [judged(PASS, name=f"ok{i}") for i in range(30)] + [judged(WARN, key=True)]
    assert gate(one_scenario(*results), mode="score").verdict is WARN


def test_score_below_warn_score_fails_without_any_key_slo() -> None:
    result = gate(one_scenario(judged(PASS), judged(FAIL), judged(UNKNOWN)), mode="score")
    assert result.score == pytest.approx(1 / 3)
    assert result.verdict is FAIL
    assert any("warn_score" in reason for reason in result.reasons)


def test_score_sunk_only_by_missing_data_is_inconclusive_not_fail() -> None:
    result = gate(
        one_scenario(
            judged(PASS), judged(PASS), judged(UNKNOWN, name="a"), judged(UNKNOWN, name="b")
        ),
        mode="score",
    )
    assert result.score == 0.5 and result.verdict is UNKNOWN and result.exit_code == 1
    assert "only because of inconclusive SLOs (1.000 if they had passed)" in result.reasons[0]
    assert [r.split(":")[0] for r in result.reasons[1:]] == ["s/a", "s/b"]


def test_score_between_warn_and_pass_score_warns() -> None:
    # 3 pass + 1 warn = 3.5 / 4 = 0.875
    result = gate(
        one_scenario(judged(PASS), judged(PASS), judged(PASS), judged(WARN)), mode="score"
    )
    assert result.score == 0.875 and result.verdict is WARN


def test_weights_change_the_score() -> None:
    heavy_pass = gate(one_scenario(judged(PASS, weight=3), judged(FAIL, weight=1)), mode="score")
    heavy_fail = gate(one_scenario(judged(PASS, weight=1), judged(FAIL, weight=3)), mode="score")
    assert heavy_pass.score == 0.75 and heavy_pass.verdict is WARN
    assert heavy_fail.score == 0.25 and heavy_fail.verdict is FAIL


def test_gate_thresholds_are_configurable() -> None:
    scenario = one_scenario(judged(PASS), judged(WARN))  # 0.75
    assert gate(scenario, pass_score=0.7, warn_score=0.5, mode="score").verdict is PASS
    assert gate(scenario, pass_score=0.9, warn_score=0.8, mode="score").verdict is FAIL


def test_scenario_that_could_not_run_keeps_the_gate_from_passing() -> None:
    ran = ScenarioResult(name="a", slos=[judged(PASS, name=f"ok{i}") for i in range(30)])
    broken = ScenarioResult(name="b", slos=[judged(PASS)], error="toxiproxy unreachable")
    result = gate([ran, broken], mode="score")
    assert result.verdict is UNKNOWN and result.exit_code == 1
    assert any("b: scenario could not run: toxiproxy unreachable" in r for r in result.reasons)


def test_a_gate_with_nothing_to_judge_is_inconclusive() -> None:
    assert gate([]).verdict is UNKNOWN and gate([]).score == 0.0
    assert gate([ScenarioResult(name="s")]).exit_code == 1


@pytest.mark.parametrize(("pass_score", "warn_score"), [(0.7, 0.9), (1.5, 0.5), (0.9, -0.1)])
def test_gate_refuses_incoherent_scores(pass_score: float, warn_score: float) -> None:
    with pytest.raises(GameDayConfigError, match="warn_score <= pass_score"):
        gate([], pass_score=pass_score, warn_score=warn_score)


@pytest.mark.parametrize(("verdict", "code"), [(PASS, 0), (WARN, 0), (FAIL, 1), (UNKNOWN, 1)])
def test_exit_code_lets_only_pass_and_warn_through(verdict: Verdict, code: int) -> None:
    result = GateResult(verdict=verdict, score=0.0, counts={}, reasons=())
    assert result.exit_code == code


verdicts = st.sampled_from(list(Verdict))
judged_slos = st.builds(
    lambda verdict, weight, key: judged(verdict, weight=weight, key=key),
    verdicts,
    st.floats(min_value=0.01, max_value=100),
    st.booleans(),
)


@given(st.lists(st.lists(judged_slos, max_size=6), max_size=4))
def test_gate_properties(groups: list[list[SloResult]]) -> None:
    scenarios = [ScenarioResult(name=f"s{i}", slos=g) for i, g in enumerate(groups)]
    result = gate(scenarios, mode="score")
    strict = gate(scenarios)
    slos = [r for g in groups for r in g]
    assert (strict.verdict is FAIL) == any(r.verdict is FAIL for r in slos)
    if strict.verdict is PASS:
        assert slos and all(r.verdict is PASS for r in slos)
    assert 0.0 <= result.score <= 1.0
    assert sum(result.counts.values()) == len(slos)
    assert result.exit_code == (0 if result.verdict in (PASS, WARN) else 1)
    if any(r.slo.key and r.verdict in (FAIL, UNKNOWN) for r in slos):
        assert result.verdict in (FAIL, UNKNOWN)
    if result.verdict is PASS:
        assert all(r.verdict is not FAIL for r in slos)
        assert all(r.verdict is PASS for r in slos if r.slo.key)
        assert result.score >= 0.9


@given(
    st.floats(allow_nan=False, min_value=-1e6, max_value=1e6),
    st.floats(allow_nan=False, min_value=-1e6, max_value=1e6),
)
def test_a_smaller_value_is_never_judged_worse_under_max(a: float, b: float) -> None:
    rank = {PASS: 0, WARN: 1, FAIL: 2}
    low, high = sorted((a, b))
    assert rank[judge(RTO, low).verdict] <= rank[judge(RTO, high).verdict]


# --- game-day files -----------------------------------------------------------------------------

SMOKE = """\
name: smoke
description: one kill, one feed cut
gate: {pass_score: 0.9, warn_score: 0.7}
defaults: {baseline_s: 20, settle_s: 10}
load: {locustfile: load/trading.py, users: 5}
scenarios:
  - name: execution-sigkill
    experiment: experiments/execution-sigkill.json
    baseline_s: 30
    load: {locustfile: load/trading.py, shape: ramp}
    slos:
      - {name: rto_s, max: 2.0, warn: 3.0, key: true}
      - {name: orders_duplicated, max: 0, key: true}
      - {name: slippage_bps, max: 1.5, warn: 2.0, relative: true, weight: 0.5}
      - {name: time_to_switch_feed_s, max: 1.0}
      - {name: fill_ratio, min: 0.9, warn: 0.8}
  - name: feed-cut
    experiment: experiments/feed-cut.json
    slos:
      - {name: time_to_switch_feed_s, max: 1.0}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "experiments").mkdir()
    for name in ("execution-sigkill", "feed-cut"):
        (tmp_path / "experiments" / f"{name}.json").write_text("{}")
    (tmp_path / "gamedays").mkdir()
    (tmp_path / "load").mkdir()
    (tmp_path / "load" / "trading.py").write_text("")
    return tmp_path


def write_gameday(repo: Path, text: str) -> Path:
    path = repo / "gamedays" / "smoke.yaml"
    path.write_text(text)
    return path


def test_game_day_file_is_read_with_defaults_overrides_and_load(repo: Path) -> None:
    day = load_gameday(write_gameday(repo, SMOKE))
    assert (day.name, day.pass_score, day.warn_score) == ("smoke", 0.9, 0.7)
    assert (day.baseline_s, day.settle_s) == (20, 10)
    assert day.load == LoadSection(locustfile="load/trading.py", users=5)
    kill, cut = day.scenarios
    assert kill.experiment == repo / "experiments" / "execution-sigkill.json"
    assert (kill.baseline_s, kill.settle_s) == (30, 10)
    assert kill.load == LoadSection(locustfile="load/trading.py", shape="ramp")
    assert (cut.baseline_s, cut.load) == (20, None)
    assert kill.slos[0] == RTO
    assert kill.slos[1] == Slo(
        name="orders_duplicated", objective="max", pass_threshold=0, key=True
    )
    assert kill.slos[2] == SLIPPAGE
    assert kill.slos[4] == FILL


def test_game_day_root_can_be_given(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "smoke.yaml"
    elsewhere.write_text(SMOKE)
    assert load_gameday(elsewhere, root=repo).scenarios[0].experiment.is_file()


def test_game_day_defaults_apply_when_omitted(repo: Path) -> None:
    minimal = "name: m\nscenarios:\n  - name: a\n    experiment: experiments/feed-cut.json\n"
    minimal += "    slos: [{name: rto_s, max: 2}]\n"
    day = load_gameday(write_gameday(repo, minimal))
    assert (day.pass_score, day.warn_score, day.baseline_s, day.settle_s) == (0.9, 0.7, 20, 10)
    assert day.description == "" and day.load is None


def test_game_day_stack_is_inherited_and_overridden_per_scenario(repo: Path) -> None:
    text = SMOKE.replace("scenarios:\n", "stack: {feeds: 1}\nscenarios:\n", 1)
    text = text.replace(
        "    baseline_s: 30\n",
        "    baseline_s: 30\n    stack: {journal: postgres, standby: true}\n",
        1,
    )
    kill, cut = load_gameday(write_gameday(repo, text)).scenarios
    assert kill.stack == StackSection(feeds=1, journal="postgres", standby=True)
    assert cut.stack == StackSection(feeds=1)


@pytest.mark.parametrize(
    ("stack", "words"),
    [
        ("{feeds: 3}", ["'feeds' must be 1 or 2"]),
        ("{journal: mysql}", ["'journal' must be sqlite or postgres"]),
        ("{standby: true}", ["standby execution instance needs journal: postgres"]),
        ("{replicas: 2}", ["stack: unknown key 'replicas'"]),
    ],
)
def test_game_day_stack_mistakes_are_named(repo: Path, stack: str, words: list[str]) -> None:
    text = SMOKE.replace("    baseline_s: 30\n", f"    baseline_s: 30\n    stack: {stack}\n", 1)
    with pytest.raises(GameDayConfigError) as caught:
        load_gameday(write_gameday(repo, text))
    assert "scenario 'execution-sigkill'" in str(caught.value)
    for word in words:
        assert word in str(caught.value)


def broken(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        (
            "{name: rto_s, max: 2.0, warn: 3.0, key: true}",
            "{name: rto_s, max: 2.0, warn: 3.0, key: true, maxx: 1}",
            ["scenario 'execution-sigkill'", "slo 'rto_s'", "unknown key 'maxx'"],
        ),
        (
            "    baseline_s: 30\n",
            "    baseline_s: 30\n    retries: 3\n",
            ["scenario 'execution-sigkill'", "unknown key 'retries'"],
        ),
        ("name: smoke\n", "name: smoke\nowner: ops\n", ["unknown key 'owner'"]),
        (
            "{name: fill_ratio, min: 0.9, warn: 0.8}",
            "{name: fill_ratio, min: 0.9, max: 1.0}",
            ["slo 'fill_ratio'", "exactly one of 'max'", "not both"],
        ),
        (
            "{name: fill_ratio, min: 0.9, warn: 0.8}",
            "{name: fill_ratio, warn: 0.8}",
            ["slo 'fill_ratio'", "not neither"],
        ),
        (
            "experiments/feed-cut.json",
            "experiments/feed-cutt.json",
            ["scenario 'feed-cut'", "experiment 'experiments/feed-cutt.json' not found"],
        ),
        (
            "{name: rto_s, max: 2.0, warn: 3.0, key: true}",
            "{name: rto_s, max: 2.0, warn: 1.0, key: true}",
            ["scenario 'execution-sigkill'", "slo 'rto_s'", "warn 1 is below max 2"],
        ),
        ("name: feed-cut", "name: execution-sigkill", ["'execution-sigkill' is used twice"]),
        ("pass_score: 0.9", "pass_score: 0.5", ["warn_score <= pass_score"]),
        ("key: true}", 'key: "yes"}', ["'key' must be true or false"]),
        ("max: 0, key", "max: zero, key", ["'max' must be a finite number"]),
        ("    baseline_s: 30\n", "    baseline_s: 0\n", ["relative SLOs need a baseline"]),
        ("scenarios:", "scenarios: [\n", ["not valid YAML"]),
        ("gate: {pass_score", "gate: {mod: 1, pass_score", ["gate: unknown key 'mod'"]),
        ("defaults: {baseline_s: 20", "defaults: {base: 1, baseline_s: 20", ["defaults: unknown"]),
        (
            "load: {locustfile: load/trading.py, users: 5}",
            "load: {users: 4}",
            ["load: 'locustfile' is required"],
        ),
        (
            "load: {locustfile: load/trading.py, shape: ramp}",
            "load: {users: 4}",
            ["scenario 'execution-sigkill'", "load: 'locustfile' is required"],
        ),
    ],
)
def test_game_day_mistakes_are_named_with_file_scenario_and_key(
    repo: Path, old: str, new: str, words: list[str]
) -> None:
    path = write_gameday(repo, broken(SMOKE, old, new))
    with pytest.raises(GameDayConfigError) as caught:
        load_gameday(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    for word in words:
        assert word in message


def test_a_key_set_to_null_is_a_key_left_out(repo: Path) -> None:
    text = SMOKE.replace("description: one kill, one feed cut", "description:")
    text = text.replace("gate: {pass_score: 0.9, warn_score: 0.7}", "gate: {pass_score: null}")
    text = text.replace("relative: true, weight: 0.5}", "relative: true, weight: null}")
    day = load_gameday(write_gameday(repo, text))
    assert (day.description, day.pass_score) == ("", 0.9)
    assert [s.weight for s in day.scenarios[0].slos if s.name == "slippage_bps"] == [1.0]


def test_an_empty_load_opts_a_scenario_out_of_the_game_days_load(repo: Path) -> None:
    text = SMOKE.replace("load: {locustfile: load/trading.py, shape: ramp}", "load: {}")
    day = load_gameday(write_gameday(repo, text))
    kill, cut = day.scenarios
    assert scenario_load(day, kill) is None
    inherited = scenario_load(day, cut)
    assert inherited is not None and inherited.locustfile == "load/trading.py"


def test_missing_game_day_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(GameDayConfigError, match="cannot read"):
        load_gameday(tmp_path / "absent.yaml")


# --- reports ------------------------------------------------------------------------------------


def run(
    repo: Path, *, rto: float | None = 1.0, error: str | None = None, switch_s: float = 2.0
) -> dict[str, Any]:
    """A report for the smoke game day with the given RTO and feed-switch time."""
    day = load_gameday(write_gameday(repo, SMOKE))
    kill, cut = day.scenarios
    values = {
        "rto_s": rto,
        "orders_duplicated": 0,
        "slippage_bps": Decimal("1.1"),
        "time_to_switch_feed_s": 0.4,
        "fill_ratio": 0.85,
    }
    results = [
        evaluate_scenario(kill, values=values, baselines={"slippage_bps": 1.0}),
        evaluate_scenario(cut, values={"time_to_switch_feed_s": switch_s}, error=error),
    ]
    decided = gate(
        results, pass_score=day.pass_score, warn_score=day.warn_score, mode=day.gate_mode
    )
    return report_dict(
        day,
        decided,
        results,
        measurements={"execution-sigkill": {"drift": Decimal("0.001"), "rto_s": rto}},
        started_at="2024-05-01T10:00:00Z",
        finished_at="2024-05-01T10:05:00Z",
        environment={"repo": repo, "target": "local"},
    )


def test_report_is_plain_json_in_the_documented_schema(repo: Path) -> None:
    report = run(repo, rto=math.inf)
    json.dumps(report, allow_nan=False)  # no Decimal, Path, enum, NaN or inf
    assert report["schema"] == SCHEMA and report["gameday"] == "smoke"
    assert report["definition"]["baseline_s"] == 20 and report["definition"]["load"] == {
        "locustfile": "load/trading.py",
        "users": 5,
    }
    assert report["verdict"] == "fail" and report["exit_code"] == 1
    assert report["environment"] == {"repo": str(repo), "target": "local"}
    kill = report["scenarios"][0]
    assert kill["experiment"] == str(repo / "experiments" / "execution-sigkill.json")
    assert kill["measurements"] == {"drift": 0.001, "rto_s": None}
    rto = kill["slos"][0]
    assert rto == {
        "name": "rto_s",
        "objective": "max",
        "value": None,
        "baseline": None,
        "pass_threshold": 2.0,
        "warn_threshold": 3.0,
        "configured_pass_threshold": 2.0,
        "configured_warn_threshold": 3.0,
        "relative": False,
        "weight": 1.0,
        "key": True,
        "verdict": "fail",
        "message": "rto_s = inf s > 3 s (fail)",
    }
    slippage = kill["slos"][2]
    assert slippage["pass_threshold"] == 1.5 and slippage["configured_pass_threshold"] == 1.5
    assert slippage["relative"] is True and slippage["baseline"] == 1.0


def test_report_json_round_trips_through_load_report(repo: Path, tmp_path: Path) -> None:
    report = run(repo)
    path = tmp_path / "out" / "report.json"
    write_report_json(path, report)
    assert load_report(path) == report
    text = path.read_text()
    assert text.endswith("\n") and text.index('"environment"') < text.index('"schema"')
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no temp file left


def test_load_report_refuses_other_documents(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "stormproof.gameday/v0", "scenarios": []}))
    with pytest.raises(GameDayReportError, match=r"schema 'stormproof.gameday/v0' is not"):
        load_report(other)
    other.write_text("not json")
    with pytest.raises(GameDayReportError, match="not a JSON document"):
        load_report(other)
    with pytest.raises(GameDayReportError, match="cannot read"):
        load_report(tmp_path / "absent.json")


def parse_junit(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def test_junit_counts_and_failure_names_the_slo(repo: Path, tmp_path: Path) -> None:
    report = run(repo, rto=5.0)  # rto fails (key); feed-cut's switch takes 2 s > 1 s: fails
    path = tmp_path / "junit.xml"
    write_junit(path, report)
    root = parse_junit(path)
    # 5 + 1 SLO cases and the gate's verdict case; failures: rto_s, feed-cut switch, the gate
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("7", "3", "0")
    assert root.get("name") == "gameday.smoke"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert list(suites) == ["execution-sigkill", "feed-cut", "gate"]
    case = suites["execution-sigkill"].find("testcase[@name='rto_s']")
    assert case is not None and case.get("classname") == "gameday.execution-sigkill"
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == "rto_s = 5 s > 3 s (fail)"
    fill = suites["execution-sigkill"].find("testcase[@name='fill_ratio']")
    assert fill is not None and fill.find("failure") is None
    assert fill.findtext("system-out", "").startswith("warn: fill_ratio = 0.85 < 0.9")
    assert root.find(".//skipped") is None


def test_junit_inconclusive_is_an_error_not_a_skip(repo: Path, tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    write_junit(path, run(repo, rto=None, switch_s=0.5))
    root = parse_junit(path)
    case = root.find(".//testcase[@name='rto_s']")
    assert case is not None
    error = case.find("error")
    assert error is not None and error.get("message", "").startswith("inconclusive: ")
    gate_case = root.find(".//testcase[@classname='gameday.gate']")
    assert gate_case is not None and gate_case.find("error") is not None  # key SLO unknown


def test_junit_scenario_error_gives_every_case_an_error(repo: Path, tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    write_junit(path, run(repo, error="chaos run exited 1\x1b[0m"))
    root = parse_junit(path)
    feed = next(s for s in root.iter("testsuite") if s.get("name") == "feed-cut")
    assert (feed.get("tests"), feed.get("errors"), feed.get("failures")) == ("1", "1", "0")
    error = feed.find("testcase/error")
    assert error is not None and "chaos run exited 1" in error.get("message", "")


def test_compare_rows_give_deltas_and_verdict_changes(repo: Path) -> None:
    base = run(repo, rto=1.0)
    candidate = run(repo, rto=2.5)
    candidate["scenarios"][0]["slos"].append({"name": "new_sli", "value": 1, "verdict": "pass"})
    rows = compare(base, candidate)
    assert len(rows) == 7
    rto = rows[0]
    assert (rto["scenario"], rto["slo"], rto["base_value"], rto["candidate_value"]) == (
        "execution-sigkill",
        "rto_s",
        1.0,
        2.5,
    )
    assert rto["delta"] == 1.5 and rto["relative_change"] == 1.5
    assert rto["verdict_change"] == "pass -> warn"
    assert rows[1]["verdict_change"] is None and rows[1]["relative_change"] is None  # 0 -> 0
    new = rows[-1]
    assert new["slo"] == "new_sli" and new["base_value"] is None and new["delta"] is None
    assert new["verdict_change"] == "absent -> pass"

    table = format_comparison(rows)
    lines = table.splitlines()
    assert lines[0].split() == [
        "scenario",
        "slo",
        "base",
        "candidate",
        "delta",
        "change",
        "verdict",
    ]
    assert lines[1].split() == [
        *("execution-sigkill", "rto_s", "1", "2.5", "+1.5", "+150.0%"),
        *("pass", "->", "warn"),
    ]
    assert not table.endswith("\n")
    assert format_comparison([]) == "no SLO to compare"


def slo(report: dict[str, Any], scenario: int, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        x for x in report["scenarios"][scenario]["slos"] if x["name"] == name
    )
    return found


def test_a_worse_verdict_is_a_regression_a_better_one_is_not(repo: Path) -> None:
    assert regressions(compare(run(repo, rto=1.0), run(repo, rto=1.0))) == []
    [worse] = regressions(compare(run(repo, rto=1.0), run(repo, rto=2.5)))
    assert (worse["slo"], worse["reason"]) == ("rto_s", "verdict pass -> warn")
    assert regressions(compare(run(repo, rto=2.5), run(repo, rto=1.0))) == []
    [inconclusive] = regressions(compare(run(repo, rto=1.0), run(repo, rto=None)))
    assert inconclusive["reason"] == "verdict pass -> inconclusive", "missing data is no pass"


def test_values_regress_in_the_direction_of_their_objective(repo: Path) -> None:
    base, candidate = run(repo, rto=1.0), run(repo, rto=1.15)  # 15% slower, still a pass
    assert regressions(compare(base, candidate)) == [], "verdicts alone: no change"
    [slower] = regressions(compare(base, candidate), max_regression_pct=10)
    assert slower["slo"] == "rto_s" and slower["reason"] == "value 1 -> 1.15 (+15.0%)"
    assert regressions(compare(base, candidate), max_regression_pct=20) == []
    slo(candidate, 0, "fill_ratio")["value"] = 0.90  # a min objective: higher is better
    slo(candidate, 0, "rto_s")["value"] = 1.0
    assert regressions(compare(base, candidate), max_regression_pct=1) == []
    slo(candidate, 0, "fill_ratio")["value"] = 0.80
    [lower] = regressions(compare(base, candidate), max_regression_pct=1)
    assert lower["slo"] == "fill_ratio" and "(+5.9%)" in lower["reason"]
    slo(candidate, 0, "fill_ratio")["value"] = 0.85
    slo(candidate, 0, "orders_duplicated")["value"] = 1  # off a base of 0: any worsening
    [duplicated] = regressions(compare(base, candidate), max_regression_pct=50)
    assert duplicated["slo"] == "orders_duplicated" and duplicated["reason"] == "value 0 -> 1"


def test_an_slo_the_candidate_dropped_regresses_and_a_new_one_does_not(repo: Path) -> None:
    base, candidate = run(repo), run(repo)
    kept = [x for x in candidate["scenarios"][0]["slos"] if x["name"] != "time_to_switch_feed_s"]
    candidate["scenarios"][0]["slos"] = kept
    candidate["scenarios"][0]["slos"].append({"name": "new_sli", "value": 1, "verdict": "fail"})
    candidate["scenarios"][1]["slos"] = []  # a failing SLO that went away is no worse
    [dropped] = regressions(compare(base, candidate))
    assert (dropped["scenario"], dropped["slo"]) == ("execution-sigkill", "time_to_switch_feed_s")
    assert dropped["reason"] == "verdict pass -> absent"
    with pytest.raises(ValueError, match="max_regression_pct"):
        regressions([], max_regression_pct=-1)


def test_gameday_compare_exits_1_on_a_regression(repo: Path, tmp_path: Path) -> None:
    base, same, worse = tmp_path / "base.json", tmp_path / "same.json", tmp_path / "worse.json"
    base.write_text(json.dumps(run(repo, rto=1.0)))
    same.write_text(json.dumps(run(repo, rto=1.0)))
    worse.write_text(json.dumps(run(repo, rto=2.5)))
    cli = [str(Path(sys.executable).with_name("stormproof")), "gameday", "compare"]
    ok = subprocess.run([*cli, str(base), str(same)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.rstrip().endswith("no regression")
    bad = subprocess.run([*cli, str(base), str(worse)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "execution-sigkill rto_s: verdict pass -> warn" in bad.stdout
    broken = subprocess.run(
        [*cli, str(base), str(tmp_path / "missing.json")], capture_output=True, text=True
    )
    assert broken.returncode == 2


def test_compare_refuses_something_that_is_not_a_report(repo: Path) -> None:
    with pytest.raises(GameDayReportError, match="base report"):
        compare({"schema": "x"}, run(repo))


def test_gameday_dataclasses_are_frozen(repo: Path) -> None:
    day = load_gameday(write_gameday(repo, SMOKE))
    assert isinstance(day, GameDay)
    with pytest.raises(AttributeError):
        day.name = "other"  # type: ignore[misc]


def test_a_game_day_names_its_market_and_engine_config(repo: Path) -> None:
    minimal = "name: m\nscenarios:\n  - name: a\n    experiment: experiments/feed-cut.json\n"
    minimal += "    slos: [{name: liquidations, max: 0}]\n"
    day = load_gameday(write_gameday(repo, minimal))
    assert (day.market, day.engine_toml) == ("spot", "")
    futures = minimal + "market: usdm\nengine: |\n  [venue]\n  leverage = 20\n"
    day = load_gameday(write_gameday(repo, futures))
    assert day.market == "usdm" and "leverage = 20" in day.engine_toml
    with pytest.raises(GameDayConfigError, match="market"):
        load_gameday(write_gameday(repo, minimal + "market: options\n"))


def test_the_futures_game_day_of_the_repository_loads() -> None:
    day = load_gameday(PROJECT_ROOT / "gamedays" / "futures.yaml", root=PROJECT_ROOT)
    assert day.market == "usdm"
    by_name = {s.name: s for s in day.scenarios}
    assert {s.name for s in by_name["liquidation-cascade"].slos} >= {
        "liquidations",
        "min_liquidation_distance_pct",
    }
    assert "funding_paid_vs_held_pct" in {s.name for s in by_name["funding-spike"].slos}
    assert "position_flipped_qty" in {s.name for s in by_name["reduce-only-refused"].slos}
    assert "liquidations" in {s.name for s in by_name["mark-last-divergence"].slos}
