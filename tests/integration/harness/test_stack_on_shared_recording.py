"""Acceptance: the real stack trades the shared BTCUSDT recording at 10x.

Orders are placed, filled and journaled; the engine's position equals the simulator's balance
change; no process logs an error; every process exits cleanly on `stack down`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.quiesce import quiesce
from harness.stack import Stack, StackOptions
from harness.summary import RunSummary, fetch_json, summarize
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

REPLAYED_NS = 45 * 1_000_000_000


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, shared_recording: Path
) -> tuple[Stack, RunSummary, dict[str, list[int]]]:
    stack = Stack(tmp_path_factory.mktemp("stack"))
    stack.up(StackOptions(recordings=[shared_recording], speed="10"))
    try:
        control = f"http://127.0.0.1:{stack.ports['replay_control']}"
        token = stack.secrets["STORMPROOF_SIM_CONTROL_TOKEN"]
        start = fetch_json(f"{control}/status", token)["position_recv_ns"]
        wait_until(
            lambda: (
                fetch_json(f"{control}/status", token)["position_recv_ns"] - start >= REPLAYED_NS
            ),
            timeout_s=60,
            what="45 s of replayed market",
        )
        quiesce(stack)
        summary = summarize(stack.journal_path, control, token)
    finally:
        codes = stack.down()
    return stack, summary, codes


def test_orders_were_placed_filled_and_journaled(run: tuple[Stack, RunSummary, dict]) -> None:  # type: ignore[type-arg]
    _, summary, _ = run
    assert summary.orders_sent >= 5
    assert summary.count("FILLED") >= 1
    assert summary.fills >= 1
    assert summary.venue_orders == summary.orders_sent, "every venue order is in the journal"
    assert summary.venue_fills == summary.fills
    assert summary.venue_duplicate_client_ids == 0


def test_engine_position_equals_the_simulator_balance_change(
    run: tuple[Stack, RunSummary, dict],  # type: ignore[type-arg]
) -> None:
    _, summary, _ = run
    assert summary.engine_position, "the engine holds a position record"
    assert summary.engine_position == summary.venue_position
    assert all(drift == 0 for drift in summary.position_drift.values())


def test_no_process_logged_an_error(run: tuple[Stack, RunSummary, dict]) -> None:  # type: ignore[type-arg]
    stack, _, _ = run
    problems = []
    for log in sorted((stack.run_dir / "logs").glob("*.log")):
        for number, line in enumerate(log.read_text(errors="replace").splitlines(), 1):
            if "Traceback" in line:
                problems.append(f"{log.name}:{number}: {line[:200]}")
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and str(record.get("level", "")).lower() in (
                "error",
                "critical",
                "fatal",
                "panic",
            ):
                problems.append(f"{log.name}:{number}: {line[:200]}")
    assert problems == []


def test_every_process_exits_cleanly_on_stack_down(run: tuple[Stack, RunSummary, dict]) -> None:  # type: ignore[type-arg]
    stack, _, codes = run
    assert set(codes) == {
        "redis",
        "toxiproxy",
        "replay",
        "engine-feed",
        "engine-strategy",
        "engine-risk",
        "engine-execution",
    }
    assert {name: exits[-1] for name, exits in codes.items()} == dict.fromkeys(codes, 0)
    assert all(len(exits) == 1 for exits in codes.values()), "no process restarted"
    events = [e["event"] for e in stack.events() if e["process"] == "stack"]
    assert events[-2:] == ["ready", "stopped"]
