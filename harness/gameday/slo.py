"""SLOs, their verdicts and the game-day gate: pure functions, so the rules can be read and tested.

A game day runs chaos scenarios and measures SLIs (``rto_s``, ``orders_duplicated``,
``slippage_bps``...). This module judges those measurements; it does no I/O except reading the
game-day file in `load_gameday` (its keys are declared in `harness.gameday.schema`).

One SLO (`evaluate_slo`)
    * ``objective="max"``: PASS if ``value <= pass``, WARN if ``value <= warn``, else FAIL.
      ``objective="min"`` mirrors it: PASS if ``value >= pass``, WARN if ``value >= warn``.
      Boundaries are inclusive: a value equal to a threshold meets it (compared with a relative
      tolerance of 1e-9, so ``0.7 x 3`` still admits ``2.1``). Without ``warn`` there is no
      warning band: what misses ``pass`` fails.
    * A missing value (None or NaN) is INCONCLUSIVE, never PASS: no evidence is not good news.
    * A censored value is a lower bound (the window closed before the event: "at least 30 s").
      It decides only when the bound already does: ``max`` FAILs when the bound is beyond the
      last threshold, ``min`` PASSes when it reaches ``min``; otherwise INCONCLUSIVE.
    * ``relative_to_baseline``: the thresholds are multipliers of the value measured for the same
      SLI in the same scenario's baseline window (``max: 1.5`` means ``value <= 1.5 x baseline``).
      A missing or non-finite baseline makes the SLO INCONCLUSIVE, and so does a negative one (a
      multiple of a negative number would invert the objective). A baseline of exactly 0 gives
      thresholds of exactly 0: for ``max`` only a value of 0 passes and anything above fails
      (the warning band collapses); for ``min`` any value >= 0 passes. A steady state with no
      slippage at all allows none under chaos; write an absolute SLO if that is too strict.

The gate (`gate`), mode ``strict`` (the default: ``gate: {mode: strict}``), first rule that
applies:

    0. INCONCLUSIVE if there is no SLO at all (nothing was judged).
    1. FAIL if any SLO failed, key or not: a measurement beyond its fail threshold is a defect
       whatever its weight.
    2. INCONCLUSIVE if a key SLO is inconclusive or a scenario could not run.
    3. WARN if any SLO is in its warning band or a non-key SLO is inconclusive (the release
       may go; the reasons say what was not proven).
    4. PASS otherwise.

Mode ``score`` (opt in, Keptn-style: ``gate: {mode: score, pass_score, warn_score}``):
    score = sum(weight x credit) / sum(weight), credit PASS 1, WARN 0.5, FAIL 0, INCONCLUSIVE 0
    (missing evidence earns nothing), rounded to 9 decimals; 0 when there is no SLO. Then, first
    rule that applies:

    0. INCONCLUSIVE if there is no SLO at all (nothing was judged).
    1. FAIL if a key SLO failed, or the score is below ``warn_score`` even when every
       inconclusive SLO is counted as a pass (what was measured sinks the game day whatever the
       missing data would have shown).
    2. INCONCLUSIVE if a key SLO is inconclusive (missing data on a key SLO cannot pass), a
       scenario could not run (nothing was proven about it), or the score is below
       ``warn_score`` only because of inconclusive SLOs. The verdict names the cause: fix the
       measurement, not the engine. (FAIL and INCONCLUSIVE both stop a release.)
    3. WARN if any SLO failed (a failure of any weight caps the gate at WARN, whatever the
       score), a key SLO is only in its warning band, or the score is below ``pass_score``
       (inconclusive non-key SLOs are tolerated only within this margin).
    4. PASS otherwise: score >= ``pass_score``, no failure, every key SLO passed.

    The score is computed and reported in both modes; only mode ``score`` decides by it.

    Exit codes: PASS 0, WARN 0 (the release may go, the reasons say what to look at), FAIL 1,
    INCONCLUSIVE 1 (a gate that could not judge must not let a release through). A runner that
    could not run the game day at all exits 2; that is not decided here.

A scenario that could not run (``ScenarioResult.error``) has all its SLOs INCONCLUSIVE, whatever
results were attached to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Literal, SupportsFloat, cast

import yaml

from harness.errors import GameDayConfigError
from harness.gameday.schema import (
    DefaultsSection,
    GameDayFile,
    LoadSection,
    ScenarioEntry,
    SloEntry,
    StackSection,
    decode,
)

Objective = Literal["max", "min"]
GateMode = Literal["strict", "score"]
GATE_MODES: tuple[GateMode, ...] = ("strict", "score")

DEFAULT_PASS_SCORE = 0.9
DEFAULT_WARN_SCORE = 0.7
DEFAULT_BASELINE_S = 20.0
DEFAULT_SETTLE_S = 10.0
REL_TOL = 1e-9
"""Relative tolerance of threshold comparisons: float products must not flip a boundary."""


class Verdict(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


CREDIT: Mapping[Verdict, float] = {
    Verdict.PASS: 1.0,
    Verdict.WARN: 0.5,
    Verdict.FAIL: 0.0,
    Verdict.INCONCLUSIVE: 0.0,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Slo:
    """One objective on one SLI; invalid combinations are refused at construction."""

    name: str
    objective: Objective
    pass_threshold: float
    warn_threshold: float | None = None
    relative_to_baseline: bool = False
    weight: float = 1.0
    key: bool = False

    def __post_init__(self) -> None:
        def refuse(why: str) -> GameDayConfigError:
            return GameDayConfigError(f"slo {self.name!r}: {why}")

        if not isinstance(self.name, str) or not self.name:
            raise GameDayConfigError(f"slo name must be a non-empty string, not {self.name!r}")
        if self.objective not in ("max", "min"):
            raise refuse(f"objective must be 'max' or 'min', not {self.objective!r}")
        if not _finite(self.pass_threshold):
            raise refuse(f"{self.objective} must be a finite number, not {self.pass_threshold!r}")
        if self.warn_threshold is not None:
            if not _finite(self.warn_threshold):
                raise refuse(f"warn must be a finite number, not {self.warn_threshold!r}")
            if self.objective == "max" and self.warn_threshold < self.pass_threshold:
                raise refuse(
                    f"warn {self.warn_threshold:g} is below max {self.pass_threshold:g}; with "
                    "'max' the value passes up to max and warns up to warn, so warn must be >= max"
                )
            if self.objective == "min" and self.warn_threshold > self.pass_threshold:
                raise refuse(
                    f"warn {self.warn_threshold:g} is above min {self.pass_threshold:g}; with "
                    "'min' the value passes down to min and warns down to warn, so warn must be "
                    "<= min"
                )
        if self.relative_to_baseline and (
            self.pass_threshold < 0 or (self.warn_threshold is not None and self.warn_threshold < 0)
        ):
            raise refuse("relative thresholds are multipliers of the baseline and must be >= 0")
        if isinstance(self.weight, bool) or not _finite(self.weight) or self.weight <= 0:
            raise refuse(f"weight must be a number > 0, not {self.weight!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class SloResult:
    """An SLO judged in one scenario; thresholds are the effective ones (after baseline scaling),
    None when they could not be computed (relative SLO without a usable baseline)."""

    slo: Slo
    scenario: str
    value: float | None
    baseline: float | None
    pass_threshold: float | None
    warn_threshold: float | None
    verdict: Verdict
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ScenarioResult:
    """The SLO results of one scenario; with ``error`` set (the scenario could not run) every
    result is made INCONCLUSIVE here, so no consumer can mistake it for evidence."""

    name: str
    slos: Sequence[SloResult] = ()
    error: str | None = None

    def __post_init__(self) -> None:
        results = tuple(self.slos)
        if self.error is not None:
            results = tuple(_did_not_run(r, self.error) for r in results)
        object.__setattr__(self, "slos", results)


@dataclass(frozen=True, kw_only=True, slots=True)
class GateResult:
    verdict: Verdict
    score: float
    counts: dict[str, int]
    reasons: tuple[str, ...]
    pass_score: float = DEFAULT_PASS_SCORE
    warn_score: float = DEFAULT_WARN_SCORE
    mode: GateMode = "strict"

    @property
    def exit_code(self) -> int:
        """0 lets the release through (PASS, WARN); 1 stops it (FAIL, and INCONCLUSIVE: a gate
        that could not judge must not let a release through)."""
        return 0 if self.verdict in (Verdict.PASS, Verdict.WARN) else 1


@dataclass(frozen=True, kw_only=True, slots=True)
class ScenarioSpec:
    """One scenario of a game-day file. ``load`` is the scenario's own ``load:`` section (the
    runner decides how it combines with `GameDay.load`)."""

    name: str
    experiment: Path
    baseline_s: float
    settle_s: float
    slos: tuple[Slo, ...]
    load: LoadSection | None = None
    stack: StackSection = field(default_factory=StackSection)
    """The stack this scenario needs: the game day's ``stack:`` updated by its own."""


@dataclass(frozen=True, kw_only=True, slots=True)
class GameDay:
    name: str
    description: str
    pass_score: float
    warn_score: float
    baseline_s: float
    settle_s: float
    scenarios: tuple[ScenarioSpec, ...]
    load: LoadSection | None = None
    stack: StackSection = field(default_factory=StackSection)
    path: Path | None = field(default=None, compare=False)
    gate_mode: GateMode = "strict"
    market: str = "spot"
    engine_toml: str = ""


# --- one SLO ------------------------------------------------------------------------------------


def evaluate_slo(
    slo: Slo,
    *,
    scenario: str,
    value: SupportsFloat | None,
    baseline: SupportsFloat | None = None,
    censored: bool = False,
) -> SloResult:
    """Judge one measurement (any number: int, float, Decimal); `censored`: the value is a
    lower bound. See the module docstring."""
    measured = _as_float(value)
    base = _as_float(baseline)
    unit = _unit(slo.name)

    def result(
        verdict: Verdict, message: str, pass_t: float | None, warn_t: float | None
    ) -> SloResult:
        return SloResult(
            slo=slo,
            scenario=scenario,
            value=measured,
            baseline=base,
            pass_threshold=pass_t,
            warn_threshold=warn_t,
            verdict=verdict,
            message=message,
        )

    pass_t: float | None = slo.pass_threshold
    warn_t: float | None = slo.warn_threshold
    if slo.relative_to_baseline:
        problem = _baseline_problem(base)
        if problem is not None:
            seen = "no measurement" if measured is None else f"= {_num(measured, unit)}"
            return result(
                Verdict.INCONCLUSIVE, f"{slo.name} {seen}, {problem}: inconclusive", None, None
            )
        assert base is not None
        pass_t = slo.pass_threshold * base
        warn_t = None if slo.warn_threshold is None else slo.warn_threshold * base
    if measured is None:
        return result(
            Verdict.INCONCLUSIVE, f"{slo.name}: no measurement: inconclusive", pass_t, warn_t
        )
    assert pass_t is not None

    def shown(threshold: float, multiplier: float | None) -> str:
        text = _num(threshold, unit)
        if slo.relative_to_baseline and multiplier is not None:
            text += f" ({multiplier:g}x baseline {_num(base, unit)})"
        return text

    ok, miss = ("<=", ">") if slo.objective == "max" else (">=", "<")
    head = f"{slo.name} = {_num(measured, unit)}"
    pass_text = shown(pass_t, slo.pass_threshold)
    if censored:
        head = f"{slo.name} >= {_num(measured, unit)} (the window ended first)"
        last = warn_t if warn_t is not None else pass_t
        if slo.objective == "max" and not _meets(measured, last, "max"):
            return result(Verdict.FAIL, f"{head} {miss} {shown(last, None)} (fail)", pass_t, warn_t)
        if slo.objective == "min" and _meets(measured, pass_t, "min"):
            return result(Verdict.PASS, f"{head} {ok} {pass_text} (pass)", pass_t, warn_t)
        return result(
            Verdict.INCONCLUSIVE, f"{head}: the bound does not decide: inconclusive", pass_t, warn_t
        )
    if _meets(measured, pass_t, slo.objective):
        return result(Verdict.PASS, f"{head} {ok} {pass_text} (pass)", pass_t, warn_t)
    if warn_t is not None:
        warn_text = shown(warn_t, slo.warn_threshold)
        if _meets(measured, warn_t, slo.objective):
            message = f"{head} {miss} {pass_text} but {ok} {warn_text} (warn)"
            return result(Verdict.WARN, message, pass_t, warn_t)
        return result(Verdict.FAIL, f"{head} {miss} {warn_text} (fail)", pass_t, warn_t)
    return result(Verdict.FAIL, f"{head} {miss} {pass_text} (fail)", pass_t, warn_t)


def evaluate_scenario(
    spec: ScenarioSpec,
    *,
    values: Mapping[str, SupportsFloat | None],
    baselines: Mapping[str, SupportsFloat | None] | None = None,
    error: str | None = None,
    censored: frozenset[str] = frozenset(),
) -> ScenarioResult:
    """Judge every SLO of a scenario: ``values`` and ``baselines`` are keyed by SLI name; an SLI
    absent from them is missing (INCONCLUSIVE); one named in ``censored`` is a lower bound."""
    baselines = baselines or {}
    results = [
        evaluate_slo(
            slo,
            scenario=spec.name,
            value=values.get(slo.name),
            baseline=baselines.get(slo.name),
            censored=slo.name in censored,
        )
        for slo in spec.slos
    ]
    return ScenarioResult(name=spec.name, slos=results, error=error)


def _meets(value: float, threshold: float, objective: Objective) -> bool:
    if math.isclose(value, threshold, rel_tol=REL_TOL, abs_tol=0.0):
        return True
    return value <= threshold if objective == "max" else value >= threshold


def _baseline_problem(baseline: float | None) -> str | None:
    if baseline is None:
        return "no baseline for a relative SLO"
    if math.isinf(baseline):
        return f"baseline {baseline:g} is not finite"
    if baseline < 0:
        return f"baseline {baseline:g} is negative, a multiple of it would invert the objective"
    return None


def _did_not_run(result: SloResult, error: str) -> SloResult:
    return replace(
        result,
        verdict=Verdict.INCONCLUSIVE,
        message=f"{result.slo.name}: scenario could not run ({error}): inconclusive",
    )


# --- the gate -----------------------------------------------------------------------------------


def gate(
    scenarios: Sequence[ScenarioResult],
    *,
    pass_score: float = DEFAULT_PASS_SCORE,
    warn_score: float = DEFAULT_WARN_SCORE,
    mode: GateMode = "strict",
) -> GateResult:
    """Decide the game day from every scenario's SLO results; see the module docstring."""
    check_scores(pass_score=pass_score, warn_score=warn_score)
    if mode not in GATE_MODES:
        raise GameDayConfigError(f"gate mode must be one of {', '.join(GATE_MODES)}, not {mode!r}")
    results = [r for s in scenarios for r in s.slos]
    counts = {v.value: sum(1 for r in results if r.verdict is v) for v in Verdict}
    total = sum(r.slo.weight for r in results)
    earned = sum(r.slo.weight * CREDIT[r.verdict] for r in results)
    score = round(earned / total, 9) if total > 0 else 0.0

    named = _named

    def by(verdict: Verdict, *, key: bool | None = None) -> list[SloResult]:
        return _by(results, verdict, key=key)

    def decided(verdict: Verdict, reasons: list[str]) -> GateResult:
        return GateResult(
            verdict=verdict,
            score=score,
            counts=counts,
            reasons=tuple(reasons),
            pass_score=pass_score,
            warn_score=warn_score,
            mode=mode,
        )

    if not results:
        return decided(Verdict.INCONCLUSIVE, ["no SLO was evaluated"])
    errored = [s for s in scenarios if s.error is not None]
    if mode == "strict":
        return decided(*_strict(results, errored))

    unknown = by(Verdict.INCONCLUSIVE)
    optimistic = round((earned + sum(r.slo.weight for r in unknown)) / total, 9)
    key_failed = by(Verdict.FAIL, key=True)
    if key_failed or optimistic < warn_score:
        reasons = named(key_failed)
        if optimistic < warn_score:
            lost = [r for r in results if r.verdict is not Verdict.PASS and r not in key_failed]
            reasons.append(f"score {score:.3f} < warn_score {warn_score:g}")
            reasons += named(lost)
        return decided(Verdict.FAIL, reasons)

    key_unknown = by(Verdict.INCONCLUSIVE, key=True)
    if key_unknown or errored or score < warn_score:
        reasons = [f"{s.name}: scenario could not run: {s.error}" for s in errored]
        reasons += named(key_unknown)
        if score < warn_score:
            reasons.append(
                f"score {score:.3f} < warn_score {warn_score:g} only because of inconclusive "
                f"SLOs ({optimistic:.3f} if they had passed)"
            )
            reasons += named([r for r in unknown if r not in key_unknown])
        return decided(Verdict.INCONCLUSIVE, reasons)

    failed = by(Verdict.FAIL)
    key_warned = by(Verdict.WARN, key=True)
    if failed or key_warned or score < pass_score:
        reasons = named(failed) + named(key_warned)
        if score < pass_score:
            reasons.append(f"score {score:.3f} < pass_score {pass_score:g}")
        return decided(Verdict.WARN, reasons)

    return decided(
        Verdict.PASS,
        [f"score {score:.3f} >= pass_score {pass_score:g}, no SLO failed, every key SLO passed"],
    )


def _named(results: Sequence[SloResult]) -> list[str]:
    return [
        f"{r.scenario}/{r.slo.name}{' [key]' if r.slo.key else ''}: {r.message}" for r in results
    ]


def _by(
    results: Sequence[SloResult], verdict: Verdict, *, key: bool | None = None
) -> list[SloResult]:
    return [r for r in results if r.verdict is verdict and (key is None or r.slo.key is key)]


def _strict(
    results: Sequence[SloResult], errored: Sequence[ScenarioResult]
) -> tuple[Verdict, list[str]]:
    """The strict gate's rules (module docstring): any failure fails."""
    failed = _by(results, Verdict.FAIL)
    if failed:
        return Verdict.FAIL, _named(failed)
    key_unknown = _by(results, Verdict.INCONCLUSIVE, key=True)
    if key_unknown or errored:
        reasons = [f"{s.name}: scenario could not run: {s.error}" for s in errored]
        return Verdict.INCONCLUSIVE, reasons + _named(key_unknown)
    warned = _by(results, Verdict.WARN) + _by(results, Verdict.INCONCLUSIVE, key=False)
    if warned:
        return Verdict.WARN, _named(warned)
    return Verdict.PASS, [f"all {len(results)} SLOs passed, every key SLO among them"]


def check_scores(*, pass_score: float, warn_score: float) -> None:
    """0 <= warn_score <= pass_score <= 1, or a `GameDayConfigError`."""
    if not (_finite(pass_score) and _finite(warn_score) and 0 <= warn_score <= pass_score <= 1):
        raise GameDayConfigError(
            f"gate scores must satisfy 0 <= warn_score <= pass_score <= 1, "
            f"not pass_score={pass_score!r}, warn_score={warn_score!r}"
        )


# --- game-day files -----------------------------------------------------------------------------


def load_gameday(path: Path | str, *, root: Path | str | None = None) -> GameDay:
    """Read and validate a game-day YAML file (`harness.gameday.schema`); every mistake is a
    `GameDayConfigError` naming the file, the scenario and the key. Experiment paths are
    relative to ``root`` (default: the parent of the file's directory, the repository for
    ``gamedays/x.yaml``) and must exist (locustfiles are looked for when the game day runs)."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GameDayConfigError(f"{where}: cannot read game-day file: {exc.strerror}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GameDayConfigError(f"{where}: not valid YAML: {exc}") from exc
    repo = Path(root) if root is not None else path.resolve().parent.parent
    file = decode(doc, GameDayFile, where=where)
    try:
        check_scores(pass_score=file.gate.pass_score, warn_score=file.gate.warn_score)
    except GameDayConfigError as exc:
        raise GameDayConfigError(f"{where}: {exc}") from None
    _check_load(file.load, where)
    stack = _checked_stack(file.stack, StackSection(), where)
    scenarios: list[ScenarioSpec] = []
    for entry in file.scenarios:
        spec = _scenario(entry, where, repo, file.defaults, stack)
        if any(s.name == spec.name for s in scenarios):
            raise GameDayConfigError(f"{where}: scenario name {spec.name!r} is used twice")
        scenarios.append(spec)
    return GameDay(
        name=file.name,
        description=file.description,
        pass_score=file.gate.pass_score,
        warn_score=file.gate.warn_score,
        baseline_s=file.defaults.baseline_s,
        settle_s=file.defaults.settle_s,
        scenarios=tuple(scenarios),
        load=file.load,
        stack=stack,
        path=path,
        gate_mode=file.gate.mode,
        market=file.market,
        engine_toml=file.engine,
    )


def _scenario(
    entry: ScenarioEntry, file: str, root: Path, defaults: DefaultsSection, stack: StackSection
) -> ScenarioSpec:
    where = f"{file}: scenario {entry.name!r}"
    experiment = root / entry.experiment
    if not experiment.is_file():
        raise GameDayConfigError(
            f"{where}: experiment {entry.experiment!r} not found at {experiment} "
            f"(experiment paths are relative to the repository root {root})"
        )
    baseline = defaults.baseline_s if entry.baseline_s is None else entry.baseline_s
    slos: list[Slo] = []
    for slo_entry in entry.slos:
        slo = _slo(slo_entry, where)
        if any(s.name == slo.name for s in slos):
            raise GameDayConfigError(f"{where}: slo {slo.name!r} is listed twice")
        slos.append(slo)
    if baseline <= 0 and any(s.relative_to_baseline for s in slos):
        raise GameDayConfigError(
            f"{where}: relative SLOs need a baseline window, but baseline_s is {baseline:g}"
        )
    _check_load(entry.load, where)
    return ScenarioSpec(
        name=entry.name,
        experiment=experiment,
        baseline_s=baseline,
        settle_s=defaults.settle_s if entry.settle_s is None else entry.settle_s,
        slos=tuple(slos),
        load=entry.load,
        stack=stack if entry.stack is None else _checked_stack(entry.stack, stack, where),
    )


def _slo(entry: SloEntry, scenario_where: str) -> Slo:
    where = f"{scenario_where}: slo {entry.name!r}"
    if (entry.max is None) == (entry.min is None):
        raise GameDayConfigError(
            f"{where}: give exactly one of 'max' (value must be <= it) or 'min' (value must be "
            f">= it), not {'both' if entry.max is not None else 'neither'}"
        )
    objective: Objective = "max" if entry.max is not None else "min"
    try:
        return Slo(
            name=entry.name,
            objective=objective,
            pass_threshold=entry.max if entry.max is not None else cast(float, entry.min),
            warn_threshold=entry.warn,
            relative_to_baseline=entry.relative,
            weight=entry.weight,
            key=entry.key,
        )
    except GameDayConfigError as exc:
        raise GameDayConfigError(f"{scenario_where}: {exc}") from None


def _check_load(load: LoadSection | None, where: str) -> None:
    if load is None or load.off:
        return
    if load.locustfile is None:
        raise GameDayConfigError(f"{where}: load: 'locustfile' is required (e.g. load/trading.py)")


def _checked_stack(own: StackSection, inherited: StackSection, where: str) -> StackSection:
    """``stack: {feeds, journal, standby}`` over ``inherited``."""
    stack = own.over(inherited)
    if stack.standby and stack.journal != "postgres":
        raise GameDayConfigError(
            f"{where}: stack: a standby execution instance needs journal: postgres"
        )
    return stack


# --- small helpers ------------------------------------------------------------------------------

_UNITS = (("_ms", "ms"), ("_s", "s"), ("_bps", "bps"), ("_percent", "%"), ("_pct", "%"))


def _unit(name: str) -> str:
    """The unit an SLI name's suffix announces (``rto_s`` -> s), for messages only."""
    return next((unit for suffix, unit in _UNITS if name.endswith(suffix)), "")


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "none"
    return f"{value:.6g} {unit}" if unit else f"{value:.6g}"


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _as_float(value: SupportsFloat | None) -> float | None:
    """None and NaN are 'no measurement'; numbers (int, float, Decimal) become floats."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number
