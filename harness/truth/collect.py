"""Gathering one scenario's ground truth from its sources: the simulator and the replay (control
API), the submitters' own records (the load generator's intents log, the harness's), and the bus
observer. Any source that does not answer raises `TruthUnavailable`: the scenario is then
inconclusive, never judged on half the truth.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.client import StackClient
from harness.truth.bus import BusObserver
from harness.truth.records import IntentRecord, Truth, merge_intents
from harness.truth.submitted import (
    HARNESS_INTENTS,
    HARNESS_VENUE_ORDERS,
    read_submissions,
    read_venue_orders,
)
from harness.truth.venue import (
    Get,
    TruthUnavailable,
    replay_mids,
    venue_funding,
    venue_liquidations,
    venue_orders,
    venue_refusals,
)

VENUE_ORDER_PREFIXES = ("autoclose-", "adl_autoclose")
"""Orders the venue itself places in an account (Binance's liquidation and auto-deleverage
orders): set aside with the harness's own, never an engine's duplicate or loss."""
MD_LOOKBACK_MS = 30_000
"""Market observations kept from before the window: freshness needs the last one before it."""


def control_getter(client: StackClient) -> Any:
    return lambda path: client.truth(path, timeout_s=10)


def collect(
    client: StackClient,
    observer: BusObserver,
    *,
    start_ns: int,
    end_ns: int,
    load_logs: Iterable[Path],
) -> Truth:
    """The local stack's truth: its control API, the load generator's and the harness's own
    records of what they submitted, and the bus observer."""
    loads = read_submissions(load_logs, source="load")
    harness = read_submissions([client.run_dir.file(HARNESS_INTENTS)], source="harness")
    truth = collect_from(
        control_getter(client),
        observer,
        start_ns=start_ns,
        end_ns=end_ns,
        submitted=[*loads.intents, *harness.intents],
        outside=read_venue_orders(client.run_dir.file(HARNESS_VENUE_ORDERS)),
    )
    if loads.unreadable or harness.unreadable:
        truth.observer_errors.append(
            f"{loads.unreadable + harness.unreadable} unreadable intent record(s)"
        )
    return truth


def collect_from(
    get: Get,
    observer: BusObserver,
    *,
    start_ns: int,
    end_ns: int,
    submitted: Iterable[IntentRecord] = (),
    outside: set[str] | frozenset[str] = frozenset(),
) -> Truth:
    """Truth from any target: `get` reads the simulator's and the replay's control API (the
    local stack's loopback port, or a cluster's venue Service), `submitted` is what the
    harness's own submitters recorded, `outside` the clientOrderIds of the orders the harness
    placed at the venue itself; those and the venue's own (liquidations) are set aside: they
    are nobody's intent and no engine defect."""
    start_ms = start_ns // 1_000_000
    all_orders = venue_orders(get)
    outside = {
        *outside,
        *(
            o.client_order_id
            for o in all_orders
            if o.client_order_id.startswith(VENUE_ORDER_PREFIXES)
        ),
    }
    truth = Truth(
        intents=merge_intents([*submitted, *observer.all_intents()]),
        orders=[o for o in all_orders if o.client_order_id not in outside],
        outside_orders=[o.client_order_id for o in all_orders if o.client_order_id in outside],
        refusals=venue_refusals(get),
        answers=observer.answers_since(0),
        md=observer.md_between(start_ms - MD_LOOKBACK_MS, end_ns // 1_000_000),
        mids=replay_mids(get, since_ms=start_ms - MD_LOOKBACK_MS),
        liquidations=venue_liquidations(get, since_ms=start_ms),
    )
    funding = venue_funding(get, since_ms=start_ms)
    if funding is not None:
        truth.funding, truth.funding_times = funding
    if observer.unreadable:
        truth.observer_errors.append(
            f"{observer.unreadable} bus message(s) the observer could not read"
        )
    if observer.md_dropped:
        truth.observer_errors.append(
            f"the bus observer dropped {observer.md_dropped} market records"
        )
    if not observer.is_alive():
        raise TruthUnavailable("the bus observer is not running")
    return truth
