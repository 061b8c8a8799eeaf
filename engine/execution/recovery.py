"""Start-up (and takeover) recovery: the journal, then the venue's truth, then a drift check.

    1. positions from the journal's fills
    2. adoption (engine/core/adoption.py): the venue orders a lost journal tail recorded (the
       journal's "process" durability after a machine crash) are journaled from the venue with
       their fills and published, never sent; algo parents the tail lost are restored. Their
       order requests, still on `orders.{venue}`, say whose they are.
    3. parents (algo intents) resumed from the journal
    4. every non-terminal order resolved at the venue by clientOrderId
    5. fills the journal missed (an order's filled quantity ahead of its recorded trades)
       fetched from the venue's trade list
    6. the state of recently updated orders published again (a crash may have fallen between
       journal and bus; consumers are idempotent)
    7. position drift: journal positions vs venue balances minus the balances before we traded
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

from engine.bus.base import Bus, orders_stream, read_since
from engine.core.adoption import (
    AdoptionPlan,
    Horizon,
    ListedOrder,
    adoption_horizon,
    last_write_ns,
    plan_adoption,
)
from engine.core.algos import Instrument
from engine.core.clock import Clock
from engine.core.errors import StormproofError, VenueError
from engine.core.futures import ContractTerms, position_drift
from engine.core.messages import Fill, Intent, OrderRequest, Side, decode, encode
from engine.core.orders import OrderRecord, OrderState
from engine.core.positions import split_symbol
from engine.core.reconcile import position_drift_percent, venue_position
from engine.execution.desk import OrderDesk, dec
from engine.execution.gateway import VenueGateway
from engine.execution.journal import Journal, ParentRecord
from engine.execution.parents import ParentOrders
from engine.runtime.metrics import EngineMetrics
from plumbing.logging import get_logger

log = get_logger("engine.execution.recovery")


PAGE = 1000
"""Orders (trades) per allOrders (myTrades) request: Binance's maximum."""


class RecoveryReport(msgspec.Struct, kw_only=True):
    duration_ms: float = 0.0
    orders_adopted: int = 0
    parents_restored: int = 0
    unexplained: list[str] = msgspec.field(default_factory=list)
    """Venue orders under our clientOrderId rule that no intent on the bus or in the journal
    explains (at most 20 listed): a journal lost further back than the bus remembers."""
    orders_reconciled: int = 0
    fills_recovered: int = 0
    parents_resumed: int = 0
    republished: int = 0
    drift_percent: dict[str, float] = msgspec.field(default_factory=dict)
    drift_detail: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)
    halt_reason: str = ""


class _Adoption(msgspec.Struct, frozen=True, kw_only=True):
    plan: AdoptionPlan
    raw: dict[str, dict[str, Any]]
    """The venue's answer (a ccxt order) per clientOrderId, for the desk to apply."""


async def recover(
    *,
    journal: Journal,
    desk: OrderDesk,
    parents: ParentOrders,
    gateway: VenueGateway,
    bus: Bus,
    clock: Clock,
    metrics: EngineMetrics,
    venue: str,
    symbols: list[str],
    instruments: dict[str, Instrument],
    drift_halt_percent: float,
    republish_window_ms: int,
    adoption_lookback_ms: int,
    adoption_required: bool,
) -> RecoveryReport:
    started = clock.monotonic_ns()
    report = RecoveryReport()
    for fill in await journal.fills():
        desk.positions.apply(fill)
    adoption = await _plan_adoption(
        journal, gateway, bus, clock, desk, venue, symbols, adoption_lookback_ms, adoption_required
    )
    await _restore_parents(journal, adoption, report)
    await parents.load()
    report.parents_resumed = len(parents.parents)
    await _adopt(journal, desk, adoption, report, metrics, venue)
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


async def _plan_adoption(
    journal: Journal,
    gateway: VenueGateway,
    bus: Bus,
    clock: Clock,
    desk: OrderDesk,
    venue: str,
    symbols: list[str],
    lookback_ms: int,
    required: bool,
) -> _Adoption:
    """Read what adoption decides on (journal, bus, venue) and decide. A venue that cannot list
    its orders stops the start when the journal may have lost a tail ("process" durability):
    a request redelivered then could be placed a second time."""
    orders = await journal.all_orders()
    active = await journal.active_parents()
    horizon = adoption_horizon(
        last_write_ns=last_write_ns(orders, (p.created_ts_ns for p in active)),
        now_ns=clock.time_ns(),
        lookback_ns=lookback_ms * 1_000_000,
    )
    requests = [
        d.message
        for d in await read_since(bus, orders_stream(venue), horizon.requests_since_ns // 1_000_000)
        if isinstance(d.message, OrderRequest)
        and d.message.intent.venue == venue
        and d.message.approved_ts_ns >= horizon.requests_since_ns
    ]
    raw: dict[str, dict[str, Any]] = {}
    listed: list[ListedOrder] = []
    try:
        for symbol in symbols:
            history = await _paged_since(
                gateway, "fetch_orders", desk.unified[symbol], horizon.venue_since_ms, "orderId"
            )
            for answer in history:
                entry = _listed(answer, symbol)
                if entry is not None:
                    raw[entry.client_order_id] = answer
                    listed.append(entry)
    except VenueError as exc:
        if required:
            raise StormproofError(
                f"cannot list the venue's orders to find those a lost journal tail recorded: {exc}"
            ) from exc
        log.warning("adoption_skipped", error=str(exc)[:300])
        listed = []
    parent_intents = [i for i in (decode(p.payload) for p in active) if isinstance(i, Intent)]
    plan = plan_adoption(
        journal_orders={o.client_order_id: o.intent_id for o in orders},
        journal_parents=await journal.parent_ids(),
        requests=requests,
        parent_intents=parent_intents,
        venue_orders=listed,
        venue=venue,
    )
    try:
        await _attach_trades(gateway, desk, plan, raw, horizon)
    except VenueError as exc:  # the desk then asks for each adopted order's trades
        log.warning("adoption_trades_deferred", error=str(exc)[:300])
    log.info(
        "adoption_planned",
        venue_since_ms=horizon.venue_since_ms,
        requests=len(requests),
        venue_orders=len(listed),
        adopt=len(plan.adopt),
        parents=len(plan.parents),
        unexplained=len(plan.unknown),
    )
    return _Adoption(plan=plan, raw=raw)


async def _paged_since(
    gateway: VenueGateway, method: str, unified_symbol: str, since_ms: int, cursor: str
) -> list[dict[str, Any]]:
    """A venue history from `since_ms` on (startTime), then page by page on the id `cursor`
    (allOrders: orderId; myTrades: fromId), oldest first."""
    out: list[dict[str, Any]] = []
    page: list[dict[str, Any]] = await gateway.call(
        method, unified_symbol, since_ms, PAGE, side_effect=False
    )
    while True:
        out.extend(page)
        if len(page) < PAGE:
            return out
        next_id = max(int(item["id"]) for item in page) + 1
        page = await gateway.call(
            method, unified_symbol, None, PAGE, {cursor: next_id}, side_effect=False
        )


async def _attach_trades(
    gateway: VenueGateway,
    desk: OrderDesk,
    plan: AdoptionPlan,
    raw: dict[str, dict[str, Any]],
    horizon: Horizon,
) -> None:
    """The adopted orders' fills, read once per symbol (GET /api/v3/myTrades from the horizon
    on, then by fromId) rather than once per order: a recovery that adopts a hundred orders
    must not spend the request weight of a hundred trade lists. Each adopted order's answer
    gets its trades, as a send response carries them; the desk asks again for any order whose
    trades do not account for its filled quantity."""
    symbols = sorted({o.symbol for o in plan.adopt if _filled(raw, o)})
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for symbol in symbols:
        trades = await _paged_since(
            gateway, "fetch_my_trades", desk.unified[symbol], horizon.venue_since_ms, "fromId"
        )
        for trade in trades:
            by_order[str(trade.get("order"))].append(trade)
    for order in plan.adopt:
        answer = raw[order.client_order_id]
        venue_order_id = str((answer.get("info") or {}).get("orderId") or answer.get("id"))
        if venue_order_id in by_order:
            raw[order.client_order_id] = {**answer, "trades": by_order[venue_order_id]}


def _filled(raw: dict[str, dict[str, Any]], order: OrderRecord) -> bool:
    answer = raw.get(order.client_order_id) or {}
    return dec((answer.get("info") or {}).get("executedQty", answer.get("filled"))) > 0


def _listed(raw: dict[str, Any], symbol: str) -> ListedOrder | None:
    info = raw.get("info") or {}
    side = str(info.get("side") or raw.get("side") or "").upper()
    client_order_id = str(info.get("clientOrderId") or raw.get("clientOrderId") or "")
    if side not in Side.__members__ or not client_order_id:
        return None
    return ListedOrder(
        client_order_id=client_order_id,
        venue_order_id=str(info.get("orderId") or raw.get("id") or ""),
        symbol=str(info.get("symbol") or symbol),
        side=Side(side),
        order_type=str(info.get("type") or raw.get("type") or "").upper(),
        qty=dec(info.get("origQty", raw.get("amount"))),
        price=dec(info.get("price", raw.get("price"))),
        time_in_force=str(info.get("timeInForce") or raw.get("timeInForce") or "GTC"),
        status=str(info.get("status") or raw.get("status") or "").upper(),
        filled_qty=dec(info.get("executedQty", raw.get("filled"))),
        quote_qty=dec(info.get("cummulativeQuoteQty", raw.get("cost"))),
        time_ms=int(info.get("time") or raw.get("timestamp") or 0),
    )


async def _restore_parents(journal: Journal, adoption: _Adoption, report: RecoveryReport) -> None:
    for restored in adoption.plan.parents:
        record = ParentRecord(
            intent_id=restored.intent.intent_id,
            payload=encode(restored.intent).decode(),
            created_ts_ns=restored.created_ts_ns,
            state=restored.state,
        )
        if await journal.insert_parent(record):
            report.parents_restored += 1
            log.warning(
                "parent_restored", intent_id=record.intent_id, state=record.state, algo=True
            )


async def _adopt(
    journal: Journal,
    desk: OrderDesk,
    adoption: _Adoption,
    report: RecoveryReport,
    metrics: EngineMetrics,
    venue: str,
) -> None:
    """Journal each adopted order as its lost insert had it, then record what the venue says
    (its state, its fills from the venue's trade list) and publish it: never send it."""
    for order in adoption.plan.adopt:
        async with desk.lock(order.client_order_id):
            if not await journal.insert_order(order):
                continue
            await desk.apply(order, adoption.raw[order.client_order_id])
        report.orders_adopted += 1
        metrics.recovery_adopted.labels(venue=venue, outcome="adopted").inc()
        log.warning(
            "order_adopted",
            client_order_id=order.client_order_id,
            intent_id=order.intent_id,
            correlation_id=order.correlation_id,
        )
    for unknown in adoption.plan.unknown:
        metrics.recovery_adopted.labels(venue=venue, outcome="unexplained").inc()
        log.error(
            "venue_order_unexplained",
            client_order_id=unknown.order.client_order_id,
            status=unknown.order.status,
            filled=str(unknown.order.filled_qty),
            reason=unknown.reason,
        )
        if len(report.unexplained) < 20:
            report.unexplained.append(unknown.order.client_order_id)


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
    if desk.futures:
        await _check_futures_drift(
            journal, desk, gateway, metrics, venue, symbols, instruments, report, halt_percent
        )
        return
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


def venue_contracts(positions: list[dict[str, Any]]) -> dict[str, tuple[Decimal, Decimal, Any]]:
    """Venue symbol -> (signed contracts, mark price, ccxt market) from ccxt positions (one-way
    or hedge mode: long minus short)."""
    out: dict[str, tuple[Decimal, Decimal, Any]] = {}
    for position in positions:
        info = position.get("info") or {}
        symbol = str(info.get("symbol") or "")
        contracts = Decimal(str(position.get("contracts") or 0))
        if position.get("side") == "short":
            contracts = -contracts
        held, _, _ = out.get(symbol, (Decimal(0), Decimal(0), None))
        mark = Decimal(str(position.get("markPrice") or 0))
        out[symbol] = (held + contracts, mark, position)
    return out


async def _check_futures_drift(
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
    """Futures: the journal's positions against the venue's position endpoint, in contracts and
    in USD. A position the account held before this journal's first start is its baseline."""
    try:
        positions: list[dict[str, Any]] = await gateway.call(
            "fetch_positions", [desk.unified[s] for s in symbols], side_effect=False
        )
    except VenueError as exc:
        report.halt_reason = f"cannot read venue positions to check position drift: {exc}"
        return
    held = venue_contracts(positions)
    problems = []
    for symbol in symbols:
        expected = desk.positions.get(venue, symbol).qty
        contracts, mark, _ = held.get(symbol, (Decimal(0), Decimal(0), None))
        key = f"baseline.position.{symbol}"
        stored = await journal.get_meta(key)
        if stored is None:
            baseline = contracts - expected
            await journal.set_meta(key, str(baseline))
            log.info("position_baseline_recorded", symbol=symbol, baseline=str(baseline))
        else:
            baseline = Decimal(stored)
        actual = contracts - baseline
        market = gateway.exchange.markets.get(desk.unified[symbol]) or {}
        terms = ContractTerms(
            inverse=bool(market.get("inverse")),
            contract_size=Decimal(str(market.get("contractSize") or 1)),
        )
        drift = position_drift(
            journal=expected,
            venue=actual,
            price=mark,
            terms=terms,
            tolerance=instruments[symbol].lot_size,
        )
        metrics.position_drift.labels(venue=venue, symbol=symbol).set(drift.percent)
        report.drift_percent[symbol] = drift.percent
        report.drift_detail[symbol] = {
            "journal": str(expected),
            "venue": str(actual),
            "baseline": str(baseline),
            "drift_contracts": str(drift.contracts),
            "drift_notional_usd": str(drift.notional_usd),
        }
        if drift.percent > halt_percent:
            problems.append(
                f"{symbol}: journal {expected} vs venue {actual} contracts"
                f" ({drift.notional_usd} USD, {drift.percent:.2f}% > {halt_percent}%)"
            )
    if problems:
        report.halt_reason = "position drift: " + "; ".join(problems)
