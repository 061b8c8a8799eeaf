"""Game-day reports: one JSON document (the record), JUnit XML (for CI dashboards) and a
comparison of two reports (did this release make recovery slower?).

Everything downstream reads the JSON document, so its schema is stable and versioned; a change
that breaks readers gets a new schema string. ``stormproof.gameday/v2`` (v2: correctness SLIs
from ground truth, the engine's own account beside them, the evidence of each fault, the gate's
mode)::

    schema        "stormproof.gameday/v2"
    gameday       the game day's name
    definition    {description, file, baseline_s, settle_s, load}: from the game-day file
    started_at    ISO-8601 string, as given by the runner
    finished_at   ISO-8601 string
    verdict       "pass" | "warn" | "fail" | "inconclusive"
    score         weighted score in [0, 1]
    exit_code     0 (pass, warn), 1 (fail, inconclusive), or 2 when a scenario could not be
                  played at all (its stack did not start: an error, not a verdict)
    gate_mode     "strict" (any failed SLO fails) or "score" (Keptn-style weighted score)
    pass_score    the gate's thresholds (mode "score")
    warn_score
    counts        {"pass": n, "warn": n, "fail": n, "inconclusive": n}
    reasons       [str]: the SLOs and scores that decided the verdict
    environment   {...}: free-form, as given by the runner
    scenarios     [{name, experiment (path or null), error (str or null), measurements {...},
                    slos: [{name, objective ("max" | "min"), value, baseline,
                            pass_threshold, warn_threshold (effective: after baseline scaling,
                            null when not computable), configured_pass_threshold,
                            configured_warn_threshold (as written in the game-day file),
                            relative, weight, key, verdict, message}]}],
                   written by the game-day runner, per scenario, besides:
                   timeline {t0_ns, series {name: [[t_s, value], ...]},
                             faults [{name, start_s, end_s}], events [{t_s, label}]}
                             (empty for a scenario that was not played),
                   chaos_exit_code (int or null; informative only, never judged),
                   truth {lost_intents [intent id], duplicates [{intent_id, client_order_ids,
                          reason}], orders_after_halt [clientOrderId], observer_errors [str],
                          failed_rollbacks [str]}: the detail behind the truth SLIs,
                   engine_says {orders_lost, time_to_switch_feed_s, max_market_data_age_s,
                          time_to_flatten_s, slippage_bps, ...}: the engine's own account of
                          what the truth measures, shown beside it, never judged,
                   evidence [{evidence, proven, detail}]: the fault's declared evidence and
                          what proved it (or did not)

Only JSON types appear: Decimal becomes float, Path and unknown objects become strings, enums
their values, and non-finite floats (NaN, inf) become null so the file is strict JSON (the SLO
message keeps the text, e.g. ``rto_s = inf s > 3 s (fail)``).

JUnit: one ``<testsuite>`` per scenario, one ``<testcase classname="gameday.<scenario>"
name="<slo>">`` per SLO. FAIL is a ``<failure>``; INCONCLUSIVE is an ``<error>`` (not
``<skipped>``: missing evidence must not look green); WARN passes with a ``<system-out>`` line; a
scenario that could not run gives every case an ``<error>`` (and one case if it had no SLO). A
last suite ``gate`` holds one case ``verdict`` that fails or errors like the gate, so the
dashboard is red exactly when the exit code is 1 (a FAIL on score alone has no failing SLO).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import msgspec

from harness.errors import GameDayReportError
from harness.gameday.slo import GameDay, GateResult, ScenarioResult, SloResult, Verdict

SCHEMA = "stormproof.gameday/v2"


# --- the JSON document --------------------------------------------------------------------------


def report_dict(
    gameday: GameDay,
    gate: GateResult,
    scenarios: Sequence[ScenarioResult],
    *,
    measurements: Mapping[str, Mapping[str, Any]],
    started_at: str,
    finished_at: str,
    environment: Mapping[str, Any],
) -> dict[str, Any]:
    """The game day's record in the ``stormproof.gameday/v2`` schema (module docstring);
    ``measurements`` is keyed by scenario name."""
    specs = {s.name: s for s in gameday.scenarios}
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "gameday": gameday.name,
        "definition": {
            "description": gameday.description,
            "file": None if gameday.path is None else str(gameday.path),
            "baseline_s": gameday.baseline_s,
            "settle_s": gameday.settle_s,
            "load": None if gameday.load is None else msgspec.to_builtins(gameday.load),
        },
        "started_at": started_at,
        "finished_at": finished_at,
        "verdict": gate.verdict.value,
        "score": gate.score,
        "exit_code": gate.exit_code,
        "gate_mode": gate.mode,
        "pass_score": gate.pass_score,
        "warn_score": gate.warn_score,
        "counts": dict(gate.counts),
        "reasons": list(gate.reasons),
        "environment": dict(environment),
        "scenarios": [
            {
                "name": scenario.name,
                "experiment": (
                    str(specs[scenario.name].experiment) if scenario.name in specs else None
                ),
                "error": scenario.error,
                "measurements": dict(measurements.get(scenario.name, {})),
                "slos": [_slo_entry(r) for r in scenario.slos],
            }
            for scenario in scenarios
        ],
    }
    result = jsonable(report)
    assert isinstance(result, dict)
    return result


def _slo_entry(result: SloResult) -> dict[str, Any]:
    slo = result.slo
    return {
        "name": slo.name,
        "objective": slo.objective,
        "value": result.value,
        "baseline": result.baseline,
        "pass_threshold": result.pass_threshold,
        "warn_threshold": result.warn_threshold,
        "configured_pass_threshold": slo.pass_threshold,
        "configured_warn_threshold": slo.warn_threshold,
        "relative": slo.relative_to_baseline,
        "weight": slo.weight,
        "key": slo.key,
        "verdict": result.verdict.value,
        "message": result.message,
    }


def jsonable(value: Any) -> Any:
    """``value`` made of JSON types only (see the module docstring for the conversions)."""
    if isinstance(value, Enum):
        return jsonable(value.value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=str)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    return str(value)


def write_report_json(path: Path | str, report: Mapping[str, Any]) -> None:
    """Sorted keys, indent 2, strict JSON; written atomically (a reader never sees half a file)."""
    text = json.dumps(report, sort_keys=True, indent=2, allow_nan=False) + "\n"
    _write_atomic(Path(path), text)


def load_report(path: Path | str) -> dict[str, Any]:
    """A report written by `write_report_json`, or a `GameDayReportError` saying why not."""
    path = Path(path)
    try:
        report: object = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GameDayReportError(f"{path}: cannot read report: {exc.strerror}") from exc
    except ValueError as exc:
        raise GameDayReportError(f"{path}: not a JSON document: {exc}") from exc
    check_report(report, str(path))
    assert isinstance(report, dict)
    return report


def check_report(report: object, where: str = "report") -> None:
    """Refuse anything that is not a ``stormproof.gameday/v2`` report with readable scenarios."""
    if not isinstance(report, dict):
        raise GameDayReportError(f"{where}: not a stormproof game-day report (not a JSON object)")
    schema = report.get("schema")
    if schema != SCHEMA:
        raise GameDayReportError(
            f"{where}: schema {schema!r} is not {SCHEMA!r}: not a stormproof game-day report, "
            "or one from an incompatible version"
        )
    scenarios = report.get("scenarios")
    if not isinstance(scenarios, list) or not all(
        isinstance(s, dict)
        and isinstance(s.get("name"), str)
        and isinstance(s.get("slos"), list)
        and all(isinstance(x, dict) and isinstance(x.get("name"), str) for x in s["slos"])
        for s in scenarios
    ):
        raise GameDayReportError(
            f"{where}: 'scenarios' must be a list of {{name, slos: [{{name, ...}}]}} objects"
        )


# --- JUnit XML ----------------------------------------------------------------------------------


def junit_xml(report: Mapping[str, Any]) -> str:
    """The report as a JUnit XML document (see the module docstring for the mapping)."""
    check_report(report)
    root = ET.Element("testsuites", name=_xml(f"gameday.{report.get('gameday')}"))
    for scenario in report["scenarios"]:
        suite = ET.SubElement(root, "testsuite", name=_xml(scenario["name"]))
        classname = _xml(f"gameday.{scenario['name']}")
        error = scenario.get("error")
        for slo in scenario["slos"]:
            case = ET.SubElement(suite, "testcase", classname=classname, name=_xml(slo["name"]))
            verdict = slo.get("verdict")
            message = str(slo.get("message", ""))
            if error is not None or verdict == Verdict.INCONCLUSIVE.value:
                _outcome(case, "error", f"inconclusive: {message}", "inconclusive")
            elif verdict == Verdict.FAIL.value:
                _outcome(case, "failure", message, "fail")
            elif verdict == Verdict.WARN.value:
                ET.SubElement(case, "system-out").text = _xml(f"warn: {message}")
        if error is not None and not scenario["slos"]:
            case = ET.SubElement(suite, "testcase", classname=classname, name="scenario")
            _outcome(case, "error", f"scenario could not run: {error}", "error")
        _count(suite)

    suite = ET.SubElement(root, "testsuite", name="gate")
    case = ET.SubElement(suite, "testcase", classname="gameday.gate", name="verdict")
    summary = f"gate {report.get('verdict')} (score {report.get('score')}): " + "; ".join(
        str(r) for r in report.get("reasons", [])
    )
    verdict = report.get("verdict")
    if verdict == Verdict.FAIL.value:
        _outcome(case, "failure", summary, "fail")
    elif verdict in (Verdict.PASS.value, Verdict.WARN.value):
        ET.SubElement(case, "system-out").text = _xml(summary)
    else:
        _outcome(case, "error", f"inconclusive: {summary}", "inconclusive")
    _count(suite)

    for attribute in ("tests", "failures", "errors"):
        root.set(attribute, str(sum(int(s.get(attribute, "0")) for s in root)))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path: Path | str, report: Mapping[str, Any]) -> None:
    _write_atomic(Path(path), junit_xml(report))


def _outcome(case: ET.Element, tag: str, message: str, kind: str) -> None:
    element = ET.SubElement(case, tag, message=_xml(message), type=kind)
    element.text = _xml(message)


def _count(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("skipped", "0")


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """Characters XML 1.0 cannot hold (control bytes from a captured stderr) become '?'."""
    return _NOT_XML.sub("?", text)


# --- comparing two reports ----------------------------------------------------------------------


def compare(base: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (scenario, SLO) of either report, base order first: values, ``delta``
    (candidate - base), ``relative_change`` (delta / |base|, None when base is 0 or a value is
    missing) and ``verdict_change`` ("pass -> fail", "absent -> warn"; None when unchanged)."""
    check_report(base, "base report")
    check_report(candidate, "candidate report")
    before, after = _slos_by_key(base), _slos_by_key(candidate)
    rows: list[dict[str, Any]] = []
    for key in [*before, *(k for k in after if k not in before)]:
        old, new = before.get(key, {}), after.get(key, {})
        old_value, new_value = _value(old), _value(new)
        delta = None if old_value is None or new_value is None else new_value - old_value
        relative = None if delta is None or not old_value else delta / abs(old_value)
        old_verdict, new_verdict = old.get("verdict"), new.get("verdict")
        rows.append(
            {
                "scenario": key[0],
                "slo": key[1],
                "objective": new.get("objective", old.get("objective")),
                "base_value": old_value,
                "candidate_value": new_value,
                "delta": delta,
                "relative_change": relative,
                "base_verdict": old_verdict,
                "candidate_verdict": new_verdict,
                "verdict_change": (
                    None
                    if old_verdict == new_verdict
                    else f"{old_verdict or 'absent'} -> {new_verdict or 'absent'}"
                ),
            }
        )
    return rows


def format_comparison(rows: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table of `compare` rows, one line per SLO (no trailing newline)."""
    if not rows:
        return "no SLO to compare"
    header = ("scenario", "slo", "base", "candidate", "delta", "change", "verdict")
    lines = [header]
    for row in rows:
        relative = row["relative_change"]
        lines.append(
            (
                str(row["scenario"]),
                str(row["slo"]),
                _cell(row["base_value"]),
                _cell(row["candidate_value"]),
                "-" if row["delta"] is None else f"{row['delta']:+.4g}",
                "-" if relative is None else f"{relative * 100:+.1f}%",
                row["verdict_change"] or str(row["candidate_verdict"] or "-"),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _slos_by_key(report: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(s["name"], x["name"]): x for s in report["scenarios"] for x in s["slos"]}


def _value(slo: Mapping[str, Any]) -> float | None:
    value = slo.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


# --- files --------------------------------------------------------------------------------------


def _write_atomic(path: Path, text: str) -> None:
    """Write beside the target, fsync, then rename over it: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(temp, 0o644)  # mkstemp's 0600 would hide a CI artifact from other readers
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


_VERDICT_RANK = {"pass": 0, "warn": 1, "fail": 2, "inconclusive": 2}


def regressions(
    rows: Sequence[Mapping[str, Any]], *, max_regression_pct: float | None = None
) -> list[dict[str, Any]]:
    """The rows of `compare` where the candidate is worse, each with its ``reason``:
    - its verdict is worse (pass < warn < fail; inconclusive counts as fail: missing data is
      never a pass; an SLO the candidate no longer reports counts as inconclusive);
    - with `max_regression_pct`, its value moved the wrong way (up for a ``max`` objective, down
      for a ``min`` one) by more than that share of the base value, or at all off a base of 0.
    An SLO only the candidate has is not a regression."""
    if max_regression_pct is not None and not max_regression_pct >= 0:
        raise ValueError("max_regression_pct must be >= 0")
    found: list[dict[str, Any]] = []
    for row in rows:
        old, new = row["base_verdict"], row["candidate_verdict"]
        if old is None:
            continue
        reasons = []
        if _VERDICT_RANK.get(new or "inconclusive", 2) > _VERDICT_RANK.get(old, 2):
            reasons.append(f"verdict {old} -> {new or 'absent'}")
        delta, base = row["delta"], row["base_value"]
        if max_regression_pct is not None and delta is not None:
            worse = delta if row["objective"] == "max" else -delta
            allowed = abs(base) * max_regression_pct / 100.0
            if worse > allowed:
                change = "" if not base else f" ({worse / abs(base) * 100:+.1f}%)"
                reasons.append(f"value {base:g} -> {row['candidate_value']:g}{change}")
        if reasons:
            found.append({**row, "reason": "; ".join(reasons)})
    return found
