"""The execution service against the exchange simulator: algos, ambiguity, push and poll.

Order requests go in on the real bus; what reached the venue is read from the simulator's ground
truth, so "no duplicate order" and "positions equal venue fills" are judged by the venue.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from engine.core.messages import Fill, OrderType, Side
from tests.helpers import ReplayProcess, control, redis, replay_process, wait_until
from tests.integration.trading import (
    Bus,
    duplicate_client_ids,
    engine_argv,
    engine_config,
    intent,
    running,
    status,
    venue_base_position,
    venue_orders,
    wait_started,
)

pytestmark = pytest.mark.integration


class Stack:
    def __init__(self, tmp: Path, sim: ReplayProcess, redis_port: int) -> None:
        self.tmp = tmp
        self.sim = sim
        self.redis_port = redis_port
        self.bus = Bus(redis_port)
        self.log = tmp / "execution.log"


@contextmanager
def execution(stack: Stack, **config: str) -> Iterator[int]:
    """The feed (the algos need the touch) and the execution service; yields execution's port."""
    path, ports = engine_config(stack.tmp, stack.sim, stack.redis_port, **config)
    log = stack.log
    with (
        running(engine_argv(path, "feed"), stack.tmp / "feed.log"),
        running(engine_argv(path, "execution"), log) as proc,
    ):
        wait_started(ports["execution"], proc, log)
        yield ports["execution"]
    assert proc.returncode == 0, log.read_text()[-3000:]


@pytest.fixture
def stack(tmp_path: Path, synth_recording: Path) -> Iterator[Stack]:
    with redis(tmp_path) as redis_port, replay_process(tmp_path, synth_recording, speed="1") as sim:
        stack = Stack(tmp_path, sim, redis_port)
        yield stack
        stack.bus.close()


def orders_of(sim: ReplayProcess, intent_id: str, coids: set[str]) -> list[dict[str, object]]:
    return [o for o in venue_orders(sim) if o["client_order_id"] in coids]


def test_direct_and_algo_intents_are_worked_to_completion(stack: Stack) -> None:
    with execution(stack) as port:
        requests = [
            intent("direct-1", qty="0.002"),
            intent("split-1", qty="0.003", algo="split", algo_params={"max_child_qty": "0.001"}),
            intent(
                "twap-1", qty="0.002", algo="twap", algo_params={"duration_ms": 1500, "slices": 3}
            ),
            intent(
                "maker-1",
                side=Side.SELL,
                qty="0.002",
                algo="maker_first",
                algo_params={"timeout_ms": 1500},
            ),
        ]
        for request in requests:
            stack.bus.request(request)
        done = wait_until(
            lambda: (d := stack.bus.done()) and len(d) == len(requests) and d,
            timeout_s=30,
            what="every intent to be done",
        )
        assert isinstance(done, dict)
        for request in requests:
            outcome = done[request.intent_id]
            assert (outcome.outcome, outcome.filled_qty) == ("filled", request.qty), outcome
        assert done["split-1"].children == 3, "0.003 in children of at most 0.001"
        assert done["twap-1"].children >= 3, "one child per slice at least"
        assert duplicate_client_ids(stack.sim) == []
        journal = wait_until(
            lambda: status(port).get("positions", {}).get("BTCUSDT"),
            timeout_s=5,
            what="execution positions",
        )
        assert Decimal(str(journal)) == venue_base_position(stack.sim)
        # every fill carries the venue's time (game days place fills in their windows by it),
        # also those that came in an order's response, which lists fills without a time
        fills = [m for m in stack.bus.messages("exec.binance") if isinstance(m, Fill)]
        assert fills
        now_ms = time.time() * 1000
        assert all(now_ms - 120_000 < f.venue_ts_ms <= now_ms + 5_000 for f in fills), [
            (f.client_order_id, f.venue_ts_ms) for f in fills
        ]


def test_accept_but_never_answer_resolves_by_query_without_duplicates(stack: Stack) -> None:
    with execution(stack):
        control(
            stack.sim,
            "POST",
            "/faults",
            {
                "kind": "no_answer",
                "endpoint": "POST /api/v3/order",
                "hold_ms": 2500,
                "duration_ms": 4000,
            },
        )
        ids = [f"na-{n}" for n in range(4)]
        for intent_id in ids:
            stack.bus.request(intent(intent_id, qty="0.001"))
        done = wait_until(
            lambda: (d := stack.bus.done()) and all(i in d for i in ids) and d,
            timeout_s=40,
            what="ambiguous orders to be resolved",
        )
        assert isinstance(done, dict)
        assert {done[i].outcome for i in ids} == {"filled"}
        assert duplicate_client_ids(stack.sim) == []
        per_intent = [o for o in venue_orders(stack.sim) if o["status"] == "FILLED"]
        assert len(per_intent) == len(ids), "exactly one venue order per intent"
        text = stack.log.read_text()
        assert "order_outcome_unknown" in text, "the send was ambiguous"
        assert "order_resent_same_client_id" not in text or duplicate_client_ids(stack.sim) == []


def test_fills_arrive_by_push_and_polling_covers_a_dropped_stream(stack: Stack) -> None:
    with execution(stack) as port:
        stack.bus.request(intent("push-1", qty="0.001", order_type=OrderType.MARKET))
        wait_until(lambda: "push-1" in stack.bus.done(), timeout_s=15, what="push-1 done")
        events = wait_until(
            lambda: (status(port).get("user_stream") or {}).get("events"),
            timeout_s=10,
            what="user stream events",
        )
        assert events
        control(stack.sim, "POST", "/faults", {"kind": "user_stream_drop", "duration_ms": 6000})
        stack.bus.request(intent("poll-1", qty="0.001"))
        stack.bus.request(
            intent(
                "poll-2",
                side=Side.SELL,
                qty="0.001",
                algo="maker_first",
                algo_params={"timeout_ms": 1000},
            )
        )
        done = wait_until(
            lambda: (d := stack.bus.done()) and "poll-1" in d and "poll-2" in d and d,
            timeout_s=30,
            what="orders to complete while the user stream is down",
        )
        assert isinstance(done, dict)
        assert done["poll-1"].outcome == done["poll-2"].outcome == "filled"
        assert duplicate_client_ids(stack.sim) == []
