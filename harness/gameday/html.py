"""The game-day report as one self-contained HTML page: `render_html(report, path)`.

The page reads the report dict (schema ``stormproof.gameday/v2``, see `harness.gameday.report`)
and nothing else: inline CSS, the timelines as inline SVG drawn by matplotlib, no script, no
network resource (a Content-Security-Policy of ``default-src 'none'`` makes sure of it), so it can
be attached to a CI run and opened anywhere.

It shows, in this order: the verdict, score, times and reasons of the gate; the scenarios that
could not run; every scenario x SLO with its thresholds and verdict; the documented RTO of every
scenario (detection, halt, flatten, feed switch); slippage baseline vs fault; order integrity
(lost, duplicated, stuck, position drift); then per scenario a timeline figure: stacked panels on
a shared axis of seconds from t0 (feed age, tick-to-order latency, positions, then any other
series), every fault window shaded on every panel and every event a thin vertical line.

The report comes from other code and may be partial: any key may be missing, any measurement
null, any series empty. Missing values show as "n/a"; a scenario without timeline data shows a
note instead of an empty plot. Everything taken from the report is escaped (jinja2 autoescape;
matplotlib escapes SVG text and math parsing is off).

Figures are drawn with the object-oriented `matplotlib.figure.Figure` on an Agg canvas, never
through pyplot: no window can open, no backend is switched under a caller that uses pyplot, and
no figure is registered anywhere that could leak; each figure is still cleared once rendered.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import matplotlib
from markupsafe import Markup
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["NO_TIMELINE_NOTE", "render_html", "render_html_string", "write_html"]

NO_TIMELINE_NOTE = "no timeline data"

VERDICTS = ("pass", "warn", "fail", "inconclusive")

# The documented RTO of a scenario: recovery and the steps of the safety ladder, in seconds.
RTO_KEYS = (
    ("rto_s", "RTO"),
    ("time_to_detect_s", "detect"),
    ("time_to_halt_s", "halt"),
    ("time_to_flatten_s", "flatten"),
    ("time_to_switch_feed_s", "switch feed"),
    ("time_to_failover_s", "failover"),
)
# The runner's measurements hold the fault window's value under the plain name and the baseline
# window's with a `_baseline` suffix (report.json, `measurements`).
SLIPPAGE_KEYS = ("slippage_bps_baseline", "slippage_bps", "fills_baseline", "fills")
INTEGRITY_KEYS = ("orders_lost", "orders_duplicated", "orders_stuck", "position_drift")
SHOWN_KEYS = frozenset(k for k, _ in RTO_KEYS) | frozenset(SLIPPAGE_KEYS) | set(INTEGRITY_KEYS)
# What the judge measured from ground truth beside what the engine said of the same thing.
SIDE_BY_SIDE = (
    ("orders_lost", "orders lost"),
    ("time_to_switch_feed_s", "feed switch (s)"),
    ("max_market_data_age_s", "max market-data age (s)"),
    ("time_to_flatten_s", "time to flat (s)"),
    ("slippage_bps", "slippage (bps)"),
)

# Timeline panels, top to bottom: (series name prefix, y label). A series matching none of them
# gets a panel of its own after these, so nothing measured is silently left out.
PANELS = (
    ("market_data_age", "feed age (s)"),
    ("tick_to_order", "tick-to-order (ms)"),
    ("position_", "position"),
)

_FAULT_COLOUR = "#d62728"
_EVENT_COLOUR = "#555555"
_RC = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, searchable
    "svg.hashsalt": "stormproof",  # deterministic ids
    "text.parse_math": False,  # a "$" in a fault name is a dollar, not TeX
    "text.usetex": False,
    "font.size": 9,
}
_SVG_ID = re.compile(r'(\bid=")([^"]+)(")')
_SVG_REF = re.compile(r'(url\(#|href="#)([^)"]+)')


def render_html(report: Mapping[str, Any], path: Path | str) -> None:
    """Write the report as a self-contained HTML page at `path` (atomically; parents created)."""
    _write_atomic(Path(path), render_html_string(report))


def write_html(path: Path | str, report: Mapping[str, Any]) -> None:
    """`render_html` with the argument order of `harness.gameday.report.write_report_json`."""
    render_html(report, path)


def render_html_string(report: Mapping[str, Any]) -> str:
    """The HTML page of the report, as a string."""
    scenarios = [_scenario_view(i, s) for i, s in enumerate(_records(report.get("scenarios")))]
    environment = report.get("environment")
    return _template().render(
        title=str(report.get("gameday") or "game day"),
        schema=_text(report.get("schema")),
        verdict=_verdict(report.get("verdict")),
        score=_fmt(report.get("score")),
        exit_code=_fmt(report.get("exit_code")),
        started_at=_text(report.get("started_at")),
        finished_at=_text(report.get("finished_at")),
        duration=_duration(report.get("started_at"), report.get("finished_at")),
        reasons=[str(r) for r in _list(report.get("reasons"))],
        scenarios=scenarios,
        errors=[s for s in scenarios if s.error],
        rto_columns=[label for _, label in RTO_KEYS],
        environment=(
            json.dumps(environment, indent=2, sort_keys=True, default=str)
            if environment not in (None, {}, [])
            else None
        ),
        generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


@dataclass
class _SloRow:
    name: str
    key: bool
    objective: str
    value: str
    baseline: str
    pass_threshold: str
    warn_threshold: str
    relative: bool
    weight: str
    verdict: str
    message: str


@dataclass
class _ScenarioView:
    index: int
    name: str
    anchor: str
    experiment: str
    error: str | None
    slos: list[_SloRow]
    rto: list[str]
    slippage_baseline: str
    slippage_fault: str
    slippage_delta: str
    fills_baseline: str
    fills_fault: str
    integrity: dict[str, str]
    other_measurements: list[tuple[str, str]]
    figure: Markup | None
    side_by_side: list[tuple[str, str, str]]
    evidence: list[dict[str, str]]
    findings: list[str]
    caption: str
    faults: list[dict[str, str]] = field(default_factory=list)
    events: list[dict[str, str]] = field(default_factory=list)


def _scenario_view(index: int, scenario: Mapping[str, Any]) -> _ScenarioView:
    name = _text(scenario.get("name")) or f"scenario {index + 1}"
    measurements = _mapping(scenario.get("measurements"))
    timeline = _mapping(scenario.get("timeline"))
    error = scenario.get("error")
    base = _number(measurements.get("slippage_bps_baseline"))
    fault = _number(measurements.get("slippage_bps"))
    figure, caption = _timeline_figure(index, name, timeline)
    says = _mapping(scenario.get("engine_says"))
    return _ScenarioView(
        side_by_side=[
            (label, _fmt(measurements.get(key)), _fmt(says.get(key)))
            for key, label in SIDE_BY_SIDE
            if key in measurements or key in says
        ],
        evidence=[
            {
                "evidence": _text(e.get("evidence")),
                "proven": "proven" if e.get("proven") else "NOT proven",
                "detail": _text(e.get("detail")),
            }
            for e in _records(scenario.get("evidence"))
        ],
        findings=_findings(_mapping(scenario.get("truth"))),
        index=index,
        name=name,
        anchor=f"scenario-{index + 1}",
        experiment=_text(scenario.get("experiment")),
        error=None if error in (None, "") else str(error),
        slos=[_slo_row(s) for s in _records(scenario.get("slos"))],
        rto=[_fmt(measurements.get(k)) for k, _ in RTO_KEYS],
        slippage_baseline=_fmt(measurements.get("slippage_bps_baseline")),
        slippage_fault=_fmt(measurements.get("slippage_bps")),
        slippage_delta=_fmt(None if base is None or fault is None else fault - base, signed=True),
        fills_baseline=_fmt(measurements.get("fills_baseline")),
        fills_fault=_fmt(measurements.get("fills")),
        integrity={k: _fmt(measurements.get(k)) for k in INTEGRITY_KEYS},
        other_measurements=[
            (k, _fmt(v)) for k, v in sorted(measurements.items()) if k not in SHOWN_KEYS
        ],
        figure=figure,
        caption=caption,
        faults=[
            {
                "name": _text(f.get("name")),
                "start": _fmt(f.get("start_s")),
                "end": _fmt(f.get("end_s")),
            }
            for f in _records(timeline.get("faults"))
        ],
        events=[
            {"t": _fmt(e.get("t_s")), "label": _text(e.get("label"))}
            for e in _records(timeline.get("events"))
        ],
    )


def _findings(truth: Mapping[str, Any]) -> list[str]:
    """The judge's detail in words: which intents were lost, which orders doubled."""
    out = [f"lost intent {i}" for i in _list(truth.get("lost_intents"))]
    for d in _records(truth.get("duplicates")):
        ids = ", ".join(str(c) for c in _list(d.get("client_order_ids")))
        owner = _text(d.get("intent_id")) or "no intent"
        out.append(f"duplicate ({owner}): {ids}: {_text(d.get('reason'))}")
    out += [f"order after the halt: {c}" for c in _list(truth.get("orders_after_halt"))]
    for d in _records(truth.get("stale_decisions")):
        out.append(
            f"decision on a {_fmt(d.get('tick_age_ms'))} ms old tick: {_text(d.get('intent_id'))}"
        )
    out += [f"observer: {e}" for e in _list(truth.get("observer_errors"))]
    out += [f"rollback failed: {r}" for r in _list(truth.get("failed_rollbacks"))]
    return out


def _slo_row(slo: Mapping[str, Any]) -> _SloRow:
    return _SloRow(
        name=_text(slo.get("name")),
        key=bool(slo.get("key")),
        objective=_text(slo.get("objective")),
        value=_fmt(slo.get("value")),
        baseline=_fmt(slo.get("baseline")),
        pass_threshold=_fmt(slo.get("pass_threshold")),
        warn_threshold=_fmt(slo.get("warn_threshold")),
        relative=bool(slo.get("relative")),
        weight=_fmt(slo.get("weight")),
        verdict=_verdict(slo.get("verdict")),
        message=_text(slo.get("message")),
    )


# --- the timeline figure -------------------------------------------------------------------------


def _timeline_figure(
    index: int, name: str, timeline: Mapping[str, Any]
) -> tuple[Markup | None, str]:
    """The scenario's timeline as inline SVG and its caption; (None, reason) with no data."""
    series = {
        str(k): points
        for k, v in sorted(_mapping(timeline.get("series")).items())
        if (points := _points(v))
    }
    if not series:
        return None, f"{NO_TIMELINE_NOTE} for {name}"
    panels: list[tuple[str, dict[str, list[tuple[float, float]]]]] = []
    for prefix, label in PANELS:
        panels.append((label, {k: v for k, v in series.items() if k.startswith(prefix)}))
    grouped = {k for _, members in panels for k in members}
    panels.extend((k, {k: v}) for k, v in series.items() if k not in grouped)

    faults = [
        (_text(f.get("name")), start, _number(f.get("end_s")))
        for f in _records(timeline.get("faults"))
        if (start := _number(f.get("start_s"))) is not None
    ]
    events = [
        (t, _text(e.get("label")))
        for e in _records(timeline.get("events"))
        if (t := _number(e.get("t_s"))) is not None
    ]
    xs = [t for points in series.values() for t, _ in points]
    xs += [t for _, start, end in faults for t in (start, end) if t is not None]
    xs += [t for t, _ in events]
    x_max = max(xs)

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(10, 1.9 * len(panels) + 0.6), layout="constrained")
        FigureCanvasAgg(fig)
        try:
            axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
            for i, (ax, (label, members)) in enumerate(zip(axes, panels, strict=True)):
                for key, points in members.items():
                    line_x, line_y = _with_gaps(points)
                    ax.plot(
                        line_x,
                        line_y,
                        linewidth=1.2,
                        drawstyle="steps-post" if key.startswith("position_") else "default",
                        label=key.removeprefix("position_") if label == "position" else key,
                    )
                if not members:
                    ax.text(
                        0.5,
                        0.5,
                        "no data",
                        transform=ax.transAxes,
                        ha="center",
                        va="center",
                        color="#888888",
                    )
                for j, (fault_name, start, end) in enumerate(faults):
                    ax.axvspan(
                        start,
                        x_max if end is None else end,
                        color=_FAULT_COLOUR,
                        alpha=0.15,
                        linewidth=0,
                        label=(fault_name or "fault") if i == 0 and j < 8 else None,
                    )
                for t, _ in events:
                    ax.axvline(t, color=_EVENT_COLOUR, linewidth=0.6, linestyle="--")
                ax.set_ylabel(label)
                ax.grid(True, linewidth=0.3, alpha=0.6)
                if len(members) > 1 or (members and label == "position") or (i == 0 and faults):
                    ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
            t0 = _t0_text(timeline.get("t0_ns"))
            axes[-1].set_xlabel("seconds from t0" + (f" ({t0})" if t0 else ""))
            axes[0].set_title(name, loc="left")
            buffer = io.StringIO()
            fig.savefig(buffer, format="svg", metadata={"Date": None})
        finally:
            fig.clear()
    svg = _scoped_svg(buffer.getvalue(), f"tl{index + 1}-")
    caption = (
        f"Timeline of {name}: {len(series)} series, "
        f"{len(faults)} fault window{'s' if len(faults) != 1 else ''} (shaded), "
        f"{len(events)} event{'s' if len(events) != 1 else ''} (dashed lines)"
    )
    return Markup(svg), caption


def _scoped_svg(svg: str, prefix: str) -> str:
    """The <svg> element alone, its ids prefixed: several figures share one HTML document."""
    svg = svg[svg.index("<svg") :]
    svg = _SVG_ID.sub(lambda m: f"{m[1]}{prefix}{m[2]}{m[3]}", svg)
    return _SVG_REF.sub(lambda m: f"{m[1]}{prefix}{m[2]}", svg)


def _with_gaps(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """The points as x and y, broken (NaN) where samples are missing: an outage is not a slope."""
    steps = sorted(b[0] - a[0] for a, b in itertools.pairwise(points) if b[0] > a[0])
    gap = 3 * steps[len(steps) // 2] if steps else math.inf
    xs: list[float] = []
    ys: list[float] = []
    for i, (t, v) in enumerate(points):
        if i and t - points[i - 1][0] > gap:
            xs.append(math.nan)
            ys.append(math.nan)
        xs.append(t)
        ys.append(v)
    return xs, ys


def _points(value: object) -> list[tuple[float, float]]:
    points = []
    for item in _list(value):
        if isinstance(item, Sequence) and not isinstance(item, str) and len(item) >= 2:
            t, v = _number(item[0]), _number(item[1])
            if t is not None and v is not None:
                points.append((t, v))
    return sorted(points)


def _t0_text(t0_ns: object) -> str:
    if isinstance(t0_ns, bool) or not isinstance(t0_ns, int | float) or not math.isfinite(t0_ns):
        return ""
    try:
        t0 = datetime.fromtimestamp(t0_ns / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return ""
    return "t0 = " + t0.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- values --------------------------------------------------------------------------------------


def _fmt(value: object, *, signed: bool = False) -> str:
    """A measurement for a table cell: "n/a" for null or NaN, no float noise."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:+d}" if signed else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return ("+" if signed and value > 0 else "") + ("inf" if value > 0 else "-inf")
        if value != 0 and abs(value) < 1e-3:
            text = f"{value:.3g}"
        else:
            text = f"{value:.4f}".rstrip("0").rstrip(".")
            text = "0" if text in ("-0", "") else text
        return f"+{text}" if signed and value > 0 else text
    return str(value)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _verdict(value: object) -> str:
    text = str(value).lower() if value is not None else "inconclusive"
    return text if text in VERDICTS else "unknown"


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def _records(value: object) -> Iterable[Mapping[str, Any]]:
    return [item for item in _list(value) if isinstance(item, Mapping)]


def _duration(started: object, finished: object) -> str:
    try:
        start = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(finished).replace("Z", "+00:00"))
        return _fmt((end - start).total_seconds()) + " s"
    except (TypeError, ValueError):
        return "n/a"


# --- template and file ---------------------------------------------------------------------------

_environment: jinja2.Environment | None = None


def _template() -> jinja2.Template:
    global _environment
    if _environment is None:
        _environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return _environment.get_template("report.html.j2")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
