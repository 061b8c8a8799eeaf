"""Start-up (and takeover) recovery: the journal, then the venue's truth, then a drift check.

    1. positions from the journal's fills
    2. parents (algo intents) resumed from the journal
    3. every non-terminal order resolved at the venue by clientOrderId
    4. fills the journal missed (an order's filled quantity ahead of its recorded trades)
       fetched from the venue's trade list
    5. the state of recently updated orders published again (a crash may have fallen between
       journal and bus; consumers are idempotent)
    6. position drift: journal positions vs venue balances minus the balances before we traded
       (journal meta `baseline.<ASSET>`, recorded the first time), per symbol, as
       trading_position_drift_percent; over the threshold the engine halts and says why

The baseline is recorded at the first start: from then on, any change of the venue balance that
our fills do not explain (a lost fill, a duplicate order, a manual trade) is drift.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import msgspec

from engine.core.algos import Instrument
from engine.core.clock import Clock
from engine.core.errors import VenueError
from engine.core.messages import Fill
from engine.core.orders import OrderState
from engine.core.positions import split_symbol
from engine.core.reconcile import position_drift_percent, venue_position
from engine.execution.desk import OrderDesk
from engine.execution.gateway import VenueGateway
from engine.execution.journal import Journal
from engine.execution.parents import ParentOrders
from engine.runtime.metrics import EngineMetrics
from plumbing.logging import get_logger

log = get_logger("engine.execution.recovery")


class RecoveryReport(msgspec.Struct, kw_only=True):
    duration_ms: float = 0.0
    orders_reconciled: int = 0
    fills_recovered: int = 0
    parents_resumed: int = 0
    republished: int = 0
    drift_percent: dict[str, float] = msgspec.field(default_factory=dict)
    drift_detail: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)
    halt_reason: str = ""


async def recover(
    *,
    journal: Journal,
    desk: OrderDesk,
    parents: ParentOrders,
    gateway: VenueGateway,
    clock: Clock,
    metrics: EngineMetrics,
    venue: str,
    symbols: list[str],
    instruments: dict[str, Instrument],
    drift_halt_percent: float,
    republish_window_ms: int,
) -> RecoveryReport:
    started = clock.monotonic_ns()
    report = RecoveryReport()
    for fill in await journal.fills():
        desk.positions.apply(fill)
    await parents.load()
    report.parents_resumed = len(parents.parents)
    for order in await journal.open_orders():
        await desk.reconcile(order)
        report.orders_reconciled += 1
    fills_by_order = _by_order(await journal.fills())
    for order in await journal.all_orders():
        if order.filled_qty <= 0 or order.state is OrderState.PENDING:
            continue
        recorded = sum((f.qty for f in fills_by_order.get(order.client_order_id, [])), Decimal(0))
        if recorded < order.filled_qty:
            log.warning(
                "recovering_missed_fills",
                client_order_id=order.client_order_id,
                recorded=str(recorded),
                filled=str(order.filled_qty),
            )
            await desk.reconcile(order)
            report.fills_recovered += 1
    # one pass over the journal as it is now: orders and fills may have moved above
    horizon = clock.time_ns() - republish_window_ms * 1_000_000
    recent = [o for o in await journal.all_orders() if o.updated_ts_ns >= horizon]
    if recent:
        if report.fills_recovered:
            fills_by_order = _by_order(await journal.fills())
        report.republished = await desk.republish_many(
            recent, fills_by_order, await journal.parent_ids()
        )
    await _check_drift(
        journal, desk, gateway, metrics, venue, symbols, instruments, report, drift_halt_percent
    )
    report.duration_ms = round((clock.monotonic_ns() - started) / 1e6, 1)
    metrics.recovery_seconds.set(report.duration_ms / 1000)
    return report


def _by_order(fills: list[Fill]) -> dict[str, list[Fill]]:
    grouped: dict[str, list[Fill]] = defaultdict(list)
    for fill in fills:
        grouped[fill.client_order_id].append(fill)
    return grouped


async def _check_drift(
    journal: Journal,
    desk: OrderDesk,
    gateway: VenueGateway,
    metrics: EngineMetrics,
    venue: str,
    symbols: list[str],
    instruments: dict[str, Instrument],
    report: RecoveryReport,
    halt_percent: float,
) -> None:
    try:
        balance: dict[str, Any] = await gateway.call("fetch_balance", side_effect=False)
    except VenueError as exc:
        report.halt_reason = f"cannot read venue balances to check position drift: {exc}"
        return
    totals = balance.get("total") or {}
    expected_by_asset: dict[str, Decimal] = defaultdict(Decimal)
    symbols_by_asset: dict[str, list[str]] = defaultdict(list)
    for symbol in symbols:
        base, _ = split_symbol(symbol)
        expected_by_asset[base] += desk.positions.get(venue, symbol).qty
        symbols_by_asset[base].append(symbol)
    problems = []
    for asset, expected in expected_by_asset.items():
        actual_balance = Decimal(str(totals.get(asset) or 0))
        key = f"baseline.{asset}"
        stored = await journal.get_meta(key)
        if stored is None:
            # first start on this journal: whatever we hold now beyond our fills was there before
            baseline = actual_balance - expected
            await journal.set_meta(key, str(baseline))
            log.info("balance_baseline_recorded", asset=asset, baseline=str(baseline))
        else:
            baseline = Decimal(stored)
        actual = venue_position(balance=actual_balance, baseline=baseline)
        tolerance = min(instruments[s].lot_size for s in symbols_by_asset[asset])
        drift = position_drift_percent(expected=expected, actual=actual, tolerance=tolerance)
        for symbol in symbols_by_asset[asset]:
            metrics.position_drift.labels(venue=venue, symbol=symbol).set(drift)
            report.drift_percent[symbol] = drift
        report.drift_detail[asset] = {
            "journal": str(expected),
            "venue": str(actual),
            "baseline": str(baseline),
        }
        if drift > halt_percent:
            problems.append(
                f"{asset}: journal {expected} vs venue {actual} ({drift:.2f}% > {halt_percent}%)"
            )
    if problems:
        report.halt_reason = "position drift: " + "; ".join(problems)
