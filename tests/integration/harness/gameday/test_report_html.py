"""The HTML game-day report: its content, parsed, and its rendering in a real headless Chromium.

Chromium is a prerequisite like redis-server: `scripts/bootstrap.sh chromium` installs it. Without
it the browser test fails (it does not skip), so a CI without a browser cannot pass silently.
"""

from __future__ import annotations

import gc
import math
import os
import shutil
import signal
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from harness.gameday.html import NO_TIMELINE_NOTE, render_html, render_html_string
from harness.gameday.measure import report_measurements
from harness.tools import PROJECT_ROOT

pytestmark = pytest.mark.integration

CHROMIUM_TIMEOUT_S = 60
ARTIFACT = PROJECT_ROOT / ".stormproof" / "artifacts" / "report-screenshot.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WARN_BADGE_RGB = (0xB3, 0x59, 0x00)  # --warn in the template: the verdict badge of this report


# --- a realistic report ---------------------------------------------------------------------------


def _report() -> dict[str, Any]:
    ts = [round(i * 0.5, 3) for i in range(121)]  # 60 s sampled every 500 ms
    fault_start, fault_end = 20.1, 24.0

    def during_fault(t: float) -> bool:
        return fault_start <= t <= fault_end

    timeline = {
        "t0_ns": 1_763_700_000_000_000_000,
        "series": {
            "market_data_age_s": [
                [t, 0.05 + (t - fault_start if during_fault(t) else 0.0)] for t in ts
            ],
            "tick_to_order_ms": [[t, 2.5 + 0.4 * math.sin(t)] for t in ts if not during_fault(t)],
            "position_BTCUSDT": [[t, 0.002 * (t // 7.5)] for t in ts],
            "position_ETHUSDT": [[t, -0.03 if t > 40 else 0.0] for t in ts],
            "services_ready": [[t, 4.0 if during_fault(t) else 5.0] for t in ts],
        },
        "faults": [{"name": "kill execution", "start_s": fault_start, "end_s": fault_end}],
        "events": [
            {"t_s": fault_start, "label": "engine-execution exit"},
            {"t_s": 22.3, "label": "halt"},
            {"t_s": 25.5, "label": "engine-execution ready"},
        ],
    }
    return {
        "schema": "stormproof.gameday/v2",
        "gameday": "smoke",
        "started_at": "2026-11-21T10:00:00Z",
        "finished_at": "2026-11-21T10:04:30Z",
        "verdict": "warn",
        "score": 0.93,
        "exit_code": 0,
        "reasons": [
            "slippage_bps of execution-sigkill is in its warning band",
            "feed-partition could not run",
        ],
        "environment": {"git": "0123abc", "python": "3.11.7", "host": {"cores": 2}},
        "scenarios": [
            {
                "name": "execution-sigkill",
                "experiment": "experiments/execution-sigkill.json",
                "error": None,
                # named as the runner names them: fault window plain, baseline suffixed
                "measurements": report_measurements(
                    {
                        "rto_s": 1.4,
                        "time_to_detect_s": 0.2,
                        "time_to_halt_s": 2.2,
                        "time_to_flatten_s": None,
                        "time_to_switch_feed_s": None,
                        "time_to_failover_s": 3.2,
                        "orders_lost": 0,
                        "orders_duplicated": 0,
                        "orders_stuck": 1,
                        "position_drift": 0.0,
                        "slippage_bps": 2.3,
                        "fills": 9,
                        "tick_to_order_p99_ms": 3.9,
                    },
                    {"slippage_bps": 1.1, "fills": 12},
                ),
                "slos": [
                    {
                        "name": "rto_s",
                        "objective": "max",
                        "value": 1.4,
                        "baseline": None,
                        "pass_threshold": 2.0,
                        "warn_threshold": 3.0,
                        "relative": False,
                        "weight": 1.0,
                        "key": True,
                        "verdict": "pass",
                        "message": "rto_s = 1.4 <= 2.0 (pass)",
                    },
                    {
                        "name": "orders_duplicated",
                        "objective": "max",
                        "value": 0,
                        "baseline": None,
                        "pass_threshold": 0.0,
                        "warn_threshold": None,
                        "relative": False,
                        "weight": 3.0,
                        "key": True,
                        "verdict": "pass",
                        "message": "orders_duplicated = 0 <= 0 (pass)",
                    },
                    {
                        "name": "slippage_bps",
                        "objective": "max",
                        "value": 2.3,
                        "baseline": 1.1,
                        "pass_threshold": 1.5,
                        "warn_threshold": 2.5,
                        "relative": True,
                        "weight": 0.5,
                        "key": False,
                        "verdict": "warn",
                        "message": "slippage_bps = 2.3 <= 2.5 x baseline 1.1 (warn)",
                    },
                ],
                "timeline": timeline,
            },
            {
                "name": "feed-partition",
                "experiment": "experiments/feed-partition.json",
                "error": "ActivityFailed: toxiproxy refused the toxic <timeout>",
                "measurements": {
                    "rto_s": None,
                    "time_to_detect_s": None,
                    "orders_lost": None,
                    "slippage_bps_baseline": None,
                },
                "slos": [
                    {
                        "name": "time_to_switch_feed_s",
                        "objective": "max",
                        "value": None,
                        "baseline": None,
                        "pass_threshold": 1.0,
                        "warn_threshold": None,
                        "relative": False,
                        "weight": 1.0,
                        "key": True,
                        "verdict": "inconclusive",
                        "message": "the scenario could not run",
                    }
                ],
            },
        ],
    }


# --- a small DOM from the stdlib parser -----------------------------------------------------------

VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [
            n
            for n in self.iter()
            if n.tag == tag
            and all(
                (v in n.attrs.get(k, "").split()) if k == "class" else n.attrs.get(k) == v
                for k, v in wanted.items()
            )
        ]

    def one(self, tag: str, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
        return found[0]

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def cells(self) -> list[str]:
        return [" ".join(c.text().split()) for c in self.children if isinstance(c, Node)]


class DomBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = DomBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def rows(table: Node) -> list[list[str]]:
    return [tr.cells() for tr in table.one("tbody").find_all("tr")]


# --- the page's content ---------------------------------------------------------------------------


def _live_figures() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Figure))


def test_report_html_shows_verdict_slos_rto_slippage_and_timelines(tmp_path: Path) -> None:
    report = _report()
    figures_before = _live_figures()
    path = tmp_path / "out" / "report.html"
    render_html(report, path)
    assert _live_figures() == figures_before, "a matplotlib figure outlived the rendering"

    html = path.read_text(encoding="utf-8")
    dom = parse(html)

    # header: name, verdict badge, score, times, reasons
    assert "smoke" in dom.one("h1").text()
    badge = dom.one("span", id="verdict")
    assert badge.text() == "warn" and "verdict-warn" in badge.attrs["class"].split()
    assert dom.one("dd", id="score").text() == "0.93"
    assert "2026-11-21T10:00:00Z" in html and "2026-11-21T10:04:30Z" in html
    assert [li.text() for li in dom.one("ul", id="reasons").find_all("li")] == report["reasons"]

    # every scenario x SLO, with value, thresholds, verdict and message
    slo_rows = dom.one("table", class_="slos").find_all("tr", class_="slo")
    expected = [(s["name"], slo) for s in report["scenarios"] for slo in s["slos"]]
    assert [(r.attrs["data-scenario"], r.attrs["data-slo"]) for r in slo_rows] == [
        (name, slo["name"]) for name, slo in expected
    ]
    by_key = {(r.attrs["data-scenario"], r.attrs["data-slo"]): r for r in slo_rows}
    rto = by_key[("execution-sigkill", "rto_s")].cells()
    assert rto[:8] == ["execution-sigkill", "rto_s", "key", "max", "1.4", "n/a", "2", "3"]
    assert rto[10:] == ["pass", "rto_s = 1.4 <= 2.0 (pass)"]
    slippage = by_key[("execution-sigkill", "slippage_bps")]
    assert slippage.attrs["data-verdict"] == "warn" and slippage.cells()[5] == "1.1"
    missing = by_key[("feed-partition", "time_to_switch_feed_s")]
    assert missing.attrs["data-verdict"] == "inconclusive" and missing.cells()[4] == "n/a"

    # the documented RTO of every scenario, "n/a" where null or absent
    rto_table = dom.one("section", id="rto").one("table")
    assert [th.text() for th in rto_table.one("thead").find_all("th")] == [
        "scenario", "RTO (s)", "detect (s)", "halt (s)", "flatten (s)", "switch feed (s)",
        "failover (s)",
    ]  # fmt: skip
    assert rows(rto_table) == [
        ["execution-sigkill", "1.4", "0.2", "2.2", "n/a", "n/a", "3.2"],
        ["feed-partition", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"],
    ]
    assert rows(dom.one("section", id="slippage").one("table")) == [
        ["execution-sigkill", "1.1", "2.3", "+1.2", "12", "9"],
        ["feed-partition", "n/a", "n/a", "n/a", "n/a", "n/a"],
    ]
    assert rows(dom.one("section", id="integrity").one("table")) == [
        ["execution-sigkill", "0", "0", "1", "0"],
        ["feed-partition", "n/a", "n/a", "n/a", "n/a"],
    ]

    # the scenario with a timeline: one figure, one inline svg, a caption
    figure = dom.one("figure", class_="timeline", data_scenario="execution-sigkill")
    svg = figure.one("svg")
    assert len(svg.find_all("path")) > 20  # curves, spans and event lines, not an empty frame
    caption = figure.one("figcaption").text()
    assert "execution-sigkill" in caption and "1 fault window" in caption
    assert "3 events" in caption
    for label in ("feed age (s)", "tick-to-order (ms)", "position", "services_ready"):
        assert label in svg.text(), f"panel {label!r} missing from the timeline"
    assert "seconds from t0" in svg.text() and "kill execution" in svg.text()

    # the scenario that could not run: its error, prominently, and no empty plot
    assert not dom.find_all("figure", data_scenario="feed-partition")
    note = dom.one("p", class_="no-timeline", data_scenario="feed-partition")
    assert NO_TIMELINE_NOTE in note.text()
    errors = dom.one("section", id="errors")
    assert "toxiproxy refused the toxic <timeout>" in errors.text()  # escaped, shown verbatim

    # self-contained: no script, nothing fetched, ids unique across the inline svgs
    assert not dom.find_all("script") and not dom.find_all("link") and not dom.find_all("img")
    for node in dom.iter():
        for attr in ("src", "href", "xlink:href"):
            value = node.attrs.get(attr, "")
            assert not value or value.startswith("#"), f"<{node.tag} {attr}={value!r}>"
    ids = [n.attrs["id"] for n in dom.iter() if "id" in n.attrs]
    assert len(ids) == len(set(ids)), "duplicate ids in the page"


def test_missing_series_null_values_and_hostile_text_render(tmp_path: Path) -> None:
    report: dict[str, Any] = {
        "gameday": "<script>alert(1)</script>",
        "verdict": "bogus",
        "scenarios": [
            {"name": "empty", "timeline": {"t0_ns": 0, "series": {"market_data_age_s": []}}},
            {
                "name": "dollars $x$ & <b>",
                "measurements": {"rto_s": float("nan")},
                "timeline": {
                    "series": {"position_BTCUSDT": [[0, 1], [1, None], ["x", 2], [2, 0]]},
                    "faults": [{"name": "cost $5 and $6", "start_s": 0.5, "end_s": None}],
                    "events": [{"t_s": None, "label": "ignored"}],
                },
            },
        ],
    }
    dom = parse(render_html_string(report))
    assert not dom.find_all("script")
    assert dom.one("span", id="verdict").attrs["data-verdict"] == "unknown"
    assert NO_TIMELINE_NOTE in dom.one("p", class_="no-timeline", data_scenario="empty").text()
    figure = dom.one("figure", class_="timeline", data_scenario="dollars $x$ & <b>")
    assert "cost $5 and $6" in figure.one("svg").text()
    assert rows(dom.one("section", id="rto").one("table"))[1][1] == "n/a"


# --- in a real browser ----------------------------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "Chromium is not installed (neither `chromium` nor `chromium-browser` is on PATH): "
        "run `scripts/bootstrap.sh chromium` to install it"
    )


def _run_chromium(binary: str, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run on local files only; its whole process group dies on timeout."""
    command = [
        binary,
        "--headless=new",
        "--no-sandbox",  # required as root, harmless otherwise
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing can resolve: no internet, whatever
        f"--user-data-dir={work / 'chromium-profile'}",
        *args,
    ]
    env = {**os.environ, "HOME": str(work)}  # crash dumps and caches stay in tmp
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=work,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=CHROMIUM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(
            f"chromium did not finish in {CHROMIUM_TIMEOUT_S}s: {' '.join(command)}\n"
            f"{stderr[-3000:]}"
        )
    assert process.returncode == 0, (
        f"chromium exited {process.returncode}: {' '.join(command)}\n{stderr[-3000:]}"
    )
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE, "not a PNG file"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13, "PNG without IHDR chunk"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    binary = _chromium()
    page = tmp_path / "report.html"
    render_html(_report(), page)
    work = tmp_path / "chromium"
    work.mkdir()
    url = page.resolve().as_uri()
    assert url.startswith("file://")

    shot = work / "report.png"
    _run_chromium(binary, work, f"--screenshot={shot}", "--window-size=1280,2000", url)
    dumped = _run_chromium(binary, work, "--dump-dom", url).stdout

    assert shot.is_file(), "chromium wrote no screenshot"
    data = shot.read_bytes()
    assert len(data) > 10_000, f"screenshot is only {len(data)} bytes: a blank page?"
    assert _png_size(data) == (1280, 2000)
    shutil.copyfile(shot, tmp_path / "report-screenshot.png")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACT)

    # the page was painted: the verdict badge's colour is on the screenshot
    import numpy as np
    from PIL import Image

    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    near_badge = np.abs(pixels - np.array(WARN_BADGE_RGB, dtype=np.int16)).max(axis=2) <= 12
    assert near_badge.sum() > 200, "the verdict badge is not on the screenshot"
    assert (pixels.min(axis=2) < 200).mean() > 0.02, "the screenshot is (almost) blank"

    # the browser parsed the inline svg as svg elements inside the figure
    dom = parse(dumped)
    figure = dom.one("figure", class_="timeline", data_scenario="execution-sigkill")
    svg = figure.one("svg")
    assert len(svg.find_all("path")) > 20 and svg.find_all("g")
    assert len(dom.find_all("svg")) == 1
    assert dom.one("p", class_="no-timeline", data_scenario="feed-partition")
    assert dom.one("span", id="verdict").text() == "warn"
