"""Load on the local stack: Locust headless in its own process, its statistics gated like a game
day, and a 10x market burst with order flow that loses and duplicates nothing.

One stack for the module (venue limits raised for load, as `stormproof load run` does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.bus.base import RISK_EVENTS
from engine.core.ids import client_order_id
from engine.core.messages import RiskDenial, decode
from harness.chaos import probes
from harness.load.runner import LOAD_ORDERS_PER_10S, LoadRun, LoadSpec
from harness.stack import Stack
from harness.tools import PROJECT_ROOT
from tests.helpers import synthetic_stack, wait_until

pytestmark = pytest.mark.e2e
REPO = PROJECT_ROOT
LOCUSTFILE = REPO / "load" / "trading.py"


def risk_denials(stack: Stack, intent_ids: set[str]) -> dict[str, str]:
    """Intent id -> the denial's reason, for those of `intent_ids` that risk denied (from the
    `risk.events` stream, read straight from the stack's Redis)."""
    denied: dict[str, str] = {}
    with stack.redis_client() as client:
        for _, fields in client.xrange(RISK_EVENTS):
            message = decode(fields[b"m"])
            if isinstance(message, RiskDenial) and message.intent_id in intent_ids:
                denied[message.intent_id] = f"{message.check}: {message.reason}"
    return denied


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # 100x the replay speed for a few seconds eats recorded market quickly: an hour of it
    with synthetic_stack(
        tmp_path_factory.mktemp("load"),
        duration_s=3600,
        seed=5,
        orders_per_10s=LOAD_ORDERS_PER_10S,
    ) as running:
        yield running


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "160"},
    )


def test_a_headless_locust_run_is_gated_and_a_tight_slo_fails_the_gate(
    stack: Stack, tmp_path: Path
) -> None:
    out = tmp_path / "load"
    run = cli(
        "load", "run", str(LOCUSTFILE), "--shape", "steady", "--duration", "15s",
        "--users", "2", "--rate", "2", "--stack", str(stack.run_dir), "--out", str(out),
        "--slo", "intents_acked>=10", "--slo", "load_failure_ratio<=0.05",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    slis = json.loads((out / "load-slis.json").read_text())
    # every accepted intent is counted once, acked or timed out (a timeout is an intent risk
    # denied: the burst test below checks each one against risk.events and the venue)
    assert slis["intents_sent"] >= 10
    assert slis["intents_acked"] + slis["intent_ack_timeouts"] == slis["intents_sent"]
    assert slis["intent_to_ack_p99_ms"] is not None and slis["intent_to_ack_p99_ms"] >= 0
    assert json.loads((out / "gate.json").read_text())["verdict"] == "pass"
    # the same statistics against an objective no system meets: the gate fails, exit 1
    tight = cli("load", "gate", str(out / "load-slis.json"), "--slo", "intent_to_ack_p99_ms<=0")
    assert tight.returncode == 1, tight.stdout + tight.stderr
    gate = json.loads((out / "gate.json").read_text())
    assert gate["verdict"] == "fail"
    assert gate["slos"] == [
        {"name": "intent_to_ack_p99_ms", "verdict": "fail", "message": gate["slos"][0]["message"]}
    ]
    # a missing SLI is inconclusive, and that does not pass either
    missing = cli("load", "gate", str(out / "load-slis.json"), "--slo", "no_such_sli<=1")
    assert missing.returncode == 1
    assert json.loads((out / "gate.json").read_text())["verdict"] == "inconclusive"


def test_a_10x_market_burst_with_order_flow_drains_and_loses_or_duplicates_no_intent(
    stack: Stack, tmp_path: Path
) -> None:
    intents_log = tmp_path / "intents.jsonl"
    spec = LoadSpec(
        locustfile=LOCUSTFILE,
        shape="flash-crash",
        duration_s=30,
        users=3,
        intent_rate=2,
        burst_multiplier=10,
        intents_log=intents_log,
    )
    run = LoadRun(stack, spec, tmp_path / "load")
    run.start()
    assert run.wait(timeout_s=120) == 0, (tmp_path / "load" / "locust.log").read_text()[-3000:]
    slis = run.slis(drain_s=20)

    # the burst happened (the replay ran at 10x its speed for the crash stage) and ended
    stats = {e["name"]: e for e in json.loads((tmp_path / "load" / "locust.json").read_text())}
    burst = stats["POST /replay/burst"]
    assert burst["num_requests"] >= 1 and burst["num_failures"] == 0
    code, status = stack.client().control("GET", "/status")
    assert code == 200 and status["burst"] is None, "the burst ended by itself"
    # lag rose under the burst, stayed bounded and drained once it was over
    assert slis["stream_lag_max"] is not None and slis["stream_lag_max"] < 50_000
    assert slis["stream_lag_end"] == 0
    # ground truth: every intent the intake accepted is accounted for exactly once: it became
    # exactly one venue order, or risk denied it with a reason and it never reached the venue
    # (on a machine slow enough that the burst ages market data past the stale-data breaker).
    # Locust's own ack has a timeout; an order the venue answered late is late, not lost, so the
    # venue's ground truth decides, once every intent has settled one way or the other.
    records = [json.loads(line) for line in intents_log.read_text().splitlines()]
    sent = {r["intent_id"] for r in records if r["event"] == "submitted" and r["status"] == 202}
    acked = {r["intent_id"] for r in records if r["event"] == "acked"}
    assert len(sent) >= 30, f"too little order flow to judge: {len(sent)}"
    ids = {client_order_id(i, 0): i for i in sent}

    def venue_counts() -> Counter[str]:
        code, truth = stack.client().control("GET", "/truth/orders")
        assert code == 200
        return Counter(
            ids[o["client_order_id"]] for o in truth["orders"] if o["client_order_id"] in ids
        )

    def unsettled() -> set[str]:
        return sent - set(venue_counts()) - set(risk_denials(stack, sent))

    wait_until(lambda: not unsettled(), timeout_s=60, interval_s=0.5, what="every intent settled")
    counts, denied = venue_counts(), risk_denials(stack, sent)
    at_venue = set(counts)
    assert len(at_venue) >= len(sent) // 2, (
        f"most intents were denied: {sorted(denied.items())[:5]}"
    )
    assert not at_venue & set(denied), (
        f"at the venue and denied: {sorted(at_venue & set(denied))[:5]}"
    )
    assert all(reason for reason in denied.values())
    assert acked <= at_venue, "Locust saw an ack the venue has no order for"
    assert set(counts.values()) == {1}, "an intent became more than one venue order"
    config = {"stormproof_run_dir": str(stack.run_dir)}
    assert probes.unattributable_venue_orders(configuration=config) == 0
