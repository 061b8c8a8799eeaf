"""Recovery adopts the venue orders a lost journal tail recorded, and never sends them again.

The situation a machine crash leaves with `journal_durability = "process"`: the venue has
orders under our clientOrderIds, the bus still has their order requests (some acknowledged,
some still to be delivered), and the journal knows none of them. Here the venue's orders are
placed first with ccxt under the ids execution would have used, and execution starts on an
empty journal. The simulator's ground truth judges: no order sent twice (not even a refused
duplicate), every intent worked to the end, the engine's positions equal to the venue's.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync

from engine.core.ids import client_order_id
from engine.core.messages import Intent, Side
from tests.helpers import (
    ReplayProcess,
    redis,
    replay_process,
    sim_exchange,
    wait_until,
)
from tests.integration.trading import (
    Bus,
    duplicate_client_ids,
    engine_argv,
    engine_config,
    intent,
    resent_client_ids,
    running,
    start,
    status,
    stop,
    venue_base_position,
    venue_orders,
    wait_started,
)

pytestmark = pytest.mark.integration
SPLIT = {"max_child_qty": "0.001"}


async def place_at_venue(
    sim: ReplayProcess, orders: list[tuple[str, str, str, float | None]]
) -> None:
    """What the crashed execution had sent: (clientOrderId, side, type, price) of 0.001 BTC."""
    exchange = sim_exchange(sim.rest_url)
    try:
        await exchange.load_markets()
        for cid, side, kind, price in orders:
            await exchange.create_order(
                "BTC/USDT", kind, side, 0.001, price, {"newClientOrderId": cid}
            )
    finally:
        await exchange.close()


def far_below_market(sim: ReplayProcess) -> float:
    async def bid() -> float:
        exchange = sim_exchange(sim.rest_url)
        try:
            book = await exchange.fetch_order_book("BTC/USDT", 5)
            return round(float(book["bids"][0][0]) * 0.8, 2)
        finally:
            await exchange.close()

    return asyncio.run(bid())


def test_orders_a_lost_journal_recorded_are_adopted_from_the_venue_never_sent_again(
    tmp_path: Path, synth_recording: Path
) -> None:
    with (
        redis(tmp_path) as redis_port,
        replay_process(tmp_path, synth_recording, speed="1", wait_for_market=True) as sim,
    ):
        bus = Bus(redis_port)
        raw = redis_sync.Redis(port=redis_port)
        acked = [
            intent("acked-direct", side=Side.SELL),
            intent("acked-split", qty="0.003", algo="split", algo_params=SPLIT),
        ]
        pending = [
            intent("pending-direct"),
            intent("pending-split", qty="0.003", algo="split", algo_params=SPLIT),
        ]
        # the acknowledged requests come before the group's last delivered entry: the
        # consumer group will never deliver them again
        for request in acked:
            bus.request(request)
        raw.xgroup_create("orders.binance", "execution", id="$", mkstream=True)
        for request in pending:
            bus.request(request)
        below = far_below_market(sim)
        asyncio.run(
            place_at_venue(
                sim,
                [
                    (client_order_id("acked-direct", 0), "sell", "market", None),
                    *((client_order_id("acked-split", k), "buy", "market", None) for k in range(3)),
                    (client_order_id("pending-direct", 0), "buy", "market", None),
                    # two of the split's three children reached the venue before the crash
                    *((client_order_id("pending-split", k), "buy", "market", None) for k in (0, 1)),
                    # an id under our rule whose intent the bus no longer holds, and someone
                    # else's order: neither is adopted (resting, they move no balance)
                    (client_order_id("trimmed-long-ago", 0), "buy", "limit", below),
                    ("manual-order-1", "buy", "limit", below),
                ],
            )
        )
        before = {o["client_order_id"] for o in venue_orders(sim)}

        config, ports = engine_config(tmp_path, sim, redis_port)
        log = tmp_path / "execution.log"
        with running(engine_argv(config, "feed"), tmp_path / "feed.log"):
            proc = start(engine_argv(config, "execution"), log)
            try:
                wait_started(ports["execution"], proc, log)
                everyone = {i.intent_id for i in acked + pending}
                wait_until(
                    lambda: everyone <= set(bus.done()),
                    timeout_s=30,
                    what="every intent to be worked to the end",
                )
                final = status(ports["execution"])
            finally:
                stop(proc)
        done = bus.done()
        bus.close()
        raw.close()

        assert resent_client_ids(sim) == [], "no order the venue had was sent again"
        assert duplicate_client_ids(sim) == []
        by_intent: dict[str, list[dict[str, Any]]] = {}
        intents: dict[str, Intent] = {i.intent_id: i for i in acked + pending}
        for order in venue_orders(sim):
            for intent_id in intents:
                if order["client_order_id"].startswith(client_order_id(intent_id, 0)[:-1]):
                    by_intent.setdefault(intent_id, []).append(order)
        for intent_id, request in intents.items():
            filled = sum((Decimal(o["executed_qty"]) for o in by_intent[intent_id]), Decimal(0))
            assert filled == request.qty, intent_id
            assert done[intent_id].filled_qty == filled, intent_id
            assert done[intent_id].outcome == "filled", intent_id
        # the split whose third child had not been sent gets exactly that one more
        new = {o["client_order_id"] for o in venue_orders(sim)} - before
        assert new == {client_order_id("pending-split", 2)}
        recovery = final["recovery"]
        assert recovery["orders_adopted"] == 7
        assert recovery["parents_restored"] == 2
        assert recovery["unexplained_orders"] == [client_order_id("trimmed-long-ago", 0)]
        assert recovery["drift_percent"] == {"BTCUSDT": 0.0}
        assert Decimal(final["positions"]["BTCUSDT"]) == venue_base_position(sim)
