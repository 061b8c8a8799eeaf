"""Binance futures JSON shapes: orders, trades, account, balances, positions; USD-M and COIN-M
differ where Binance's differ (COIN-M reports `cumBase`/`baseQty` in the coin, `notionalValue`,
`pair`; USD-M `cumQuote`/`quoteQty`, `notional`)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from replay.exchange.formats import fmt
from replay.exchange.futures.contract import Contract
from replay.exchange.futures.ledger import (
    FuturesAccount,
    FuturesLedger,
    OpenOrderMargin,
    Position,
)
from replay.exchange.matching import SimFill, SimOrder

__all__ = [
    "account_json",
    "balance_json",
    "order_json",
    "position_json",
    "trade_json",
]

_ZERO = Decimal(0)


def _filled_value(order: SimOrder, contract: Contract) -> tuple[Decimal, Decimal]:
    """(average price, value filled in the margin asset) from the order's fills."""
    if order.executed_qty <= 0:
        return _ZERO, _ZERO
    if contract.inverse:
        coins = sum((contract.notional(f.qty, f.price) for f in order.fills), _ZERO)
        average = order.executed_qty * contract.size / coins if coins else _ZERO
        return average, coins
    quote = sum((f.price * f.qty for f in order.fills), _ZERO)
    return quote / order.executed_qty, quote


def order_json(order: SimOrder, contract: Contract, *, new: bool = False) -> dict[str, Any]:
    average, value = _filled_value(order, contract)
    body: dict[str, Any] = {
        "orderId": order.order_id,
        "symbol": order.symbol,
        "status": order.status,
        "clientOrderId": order.client_order_id,
        "price": fmt(order.price),
        "avgPrice": fmt(average),
        "origQty": fmt(order.orig_qty),
        "executedQty": fmt(order.executed_qty),
        "timeInForce": order.time_in_force or "GTC",
        "type": order.type,
        "reduceOnly": order.reduce_only,
        "closePosition": False,
        "side": order.side,
        "positionSide": order.position_side or "BOTH",
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": order.type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE",
        "goodTillDate": 0,
        "updateTime": order.update_ms,
    }
    if contract.inverse:
        body["cumBase"] = fmt(value)
        body["pair"] = order.symbol.split("_", 1)[0]
    else:
        body["cumQuote"] = fmt(value)
    if new:
        body["cumQty"] = fmt(order.executed_qty)
    else:
        body["time"] = order.time_ms
    return body


def trade_json(fill: SimFill, order: SimOrder, contract: Contract, asset: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "buyer": fill.side == "BUY",
        "commission": fmt(fill.commission),
        "commissionAsset": asset,
        "id": fill.trade_id,
        "maker": fill.is_maker,
        "orderId": fill.order_id,
        "price": fmt(fill.price),
        "qty": fmt(fill.qty),
        "realizedPnl": fmt(fill.realized_pnl),
        "side": fill.side,
        "positionSide": order.position_side or "BOTH",
        "symbol": fill.symbol,
        "time": fill.time_ms,
    }
    if contract.inverse:
        body["baseQty"] = fmt(contract.notional(fill.qty, fill.price))
        body["marginAsset"] = asset
        body["pair"] = fill.symbol.split("_", 1)[0]
    else:
        body["quoteQty"] = fmt(fill.price * fill.qty)
    return body


def position_json(
    ledger: FuturesLedger,
    account: FuturesAccount,
    position: Position,
    *,
    inverse: bool,
    version: int,
    now_ms: int,
) -> dict[str, Any]:
    """One entry of positionRisk (USD-M v2 / v3, COIN-M v1)."""
    symbol = position.symbol
    contract = ledger.contracts[symbol]
    mark = ledger.marks.get(symbol, position.entry)
    unrealized = ledger.unrealized(position)
    notional = contract.notional(position.qty, mark)
    signed_notional = notional if position.qty >= 0 else -notional
    liquidation = ledger.liquidation_price(account, position) if position.qty else None
    isolated = symbol in account.isolated
    leverage = account.leverage_of(symbol)
    body: dict[str, Any] = {
        "symbol": symbol,
        "positionSide": position.side,
        "positionAmt": fmt(position.qty),
        "entryPrice": fmt(position.entry),
        "breakEvenPrice": fmt(position.entry),
        "markPrice": fmt(mark),
        "unRealizedProfit": fmt(unrealized),
        "liquidationPrice": fmt(liquidation or _ZERO),
        "isolatedMargin": fmt(position.isolated_margin + unrealized if isolated else _ZERO),
        "isolatedWallet": fmt(position.isolated_margin if isolated else _ZERO),
        "updateTime": position.update_ms or now_ms,
    }
    if inverse:
        body.update(
            notionalValue=fmt(signed_notional),
            leverage=str(leverage),
            maxQty="1000000",
            marginType="isolated" if isolated else "cross",
            isAutoAddMargin="false",
        )
        return body
    body["notional"] = fmt(signed_notional)
    body["marginAsset"] = ledger.margin_assets[symbol]
    if version == 2:
        body.update(
            leverage=str(leverage),
            maxNotionalValue="1000000000",
            marginType="isolated" if isolated else "cross",
            isAutoAddMargin="false",
        )
    else:
        initial = notional / leverage
        body.update(
            initialMargin=fmt(initial),
            maintMargin=fmt(ledger.maint_margin(position)),
            positionInitialMargin=fmt(initial),
            openOrderInitialMargin=fmt(_ZERO),
            adl=0,
            bidNotional="0",
            askNotional="0",
        )
    return body


def _asset_figures(
    ledger: FuturesLedger,
    account: FuturesAccount,
    asset: str,
    orders: Sequence[OpenOrderMargin],
) -> dict[str, Decimal]:
    """One margin asset's figures; what is available is the ledger's own margin check's."""
    wallet = account.wallet.get(asset, _ZERO)
    unrealized = initial = maint = cross_unrealized = _ZERO
    for position in account.open_positions():
        if ledger.margin_assets[position.symbol] != asset:
            continue
        pnl = ledger.unrealized(position)
        unrealized += pnl
        initial += ledger.position_margin(account, position)
        maint += ledger.maint_margin(position)
        if position.symbol not in account.isolated:
            cross_unrealized += pnl
    open_margin = sum(
        (
            ledger.order_margin(account, o)
            for o in orders
            if ledger.margin_assets[o.symbol] == asset
        ),
        _ZERO,
    )
    return {
        "wallet": wallet,
        "unrealized": unrealized,
        "margin_balance": wallet + unrealized,
        "position_initial": initial,
        "open_order_initial": open_margin,
        "maint": maint,
        "cross_unrealized": cross_unrealized,
        "available": max(_ZERO, ledger.available(account, asset, orders)),
    }


def account_json(
    ledger: FuturesLedger,
    account: FuturesAccount,
    orders: Sequence[OpenOrderMargin],
    *,
    now_ms: int,
) -> dict[str, Any]:
    """GET account (USD-M v2/v3, COIN-M v1): totals (USD-M), assets and positions."""
    assets = []
    totals = dict.fromkeys(("wallet", "unrealized", "margin_balance", "maint", "available"), _ZERO)
    for asset in sorted(account.wallet):
        f = _asset_figures(ledger, account, asset, orders)
        for name in totals:
            totals[name] += f[name]
        assets.append(
            {
                "asset": asset,
                "walletBalance": fmt(f["wallet"]),
                "unrealizedProfit": fmt(f["unrealized"]),
                "marginBalance": fmt(f["margin_balance"]),
                "maintMargin": fmt(f["maint"]),
                "initialMargin": fmt(f["position_initial"] + f["open_order_initial"]),
                "positionInitialMargin": fmt(f["position_initial"]),
                "openOrderInitialMargin": fmt(f["open_order_initial"]),
                "crossWalletBalance": fmt(f["wallet"]),
                "crossUnPnl": fmt(f["cross_unrealized"]),
                "availableBalance": fmt(f["available"]),
                "maxWithdrawAmount": fmt(f["available"]),
                "marginAvailable": True,
                "updateTime": now_ms,
            }
        )
    positions = [
        {
            "symbol": p.symbol,
            "positionSide": p.side,
            "positionAmt": fmt(p.qty),
            "entryPrice": fmt(p.entry),
            "unrealizedProfit": fmt(ledger.unrealized(p)),
            "isolatedMargin": fmt(p.isolated_margin),
            "isolated": p.symbol in account.isolated,
            "leverage": str(account.leverage_of(p.symbol)),
            "updateTime": p.update_ms,
        }
        for p in account.positions.values()
    ]
    return {
        "totalWalletBalance": fmt(totals["wallet"]),
        "totalUnrealizedProfit": fmt(totals["unrealized"]),
        "totalMarginBalance": fmt(totals["margin_balance"]),
        "totalMaintMargin": fmt(totals["maint"]),
        "availableBalance": fmt(totals["available"]),
        "maxWithdrawAmount": fmt(totals["available"]),
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "feeTier": 0,
        "updateTime": now_ms,
        "assets": assets,
        "positions": positions,
    }


def balance_json(
    ledger: FuturesLedger,
    account: FuturesAccount,
    orders: Sequence[OpenOrderMargin],
    *,
    now_ms: int,
) -> list[dict[str, Any]]:
    """GET balance: one entry per asset."""
    out = []
    for asset in sorted(account.wallet):
        f = _asset_figures(ledger, account, asset, orders)
        out.append(
            {
                "accountAlias": "SgsR",
                "asset": asset,
                "balance": fmt(f["wallet"]),
                "crossWalletBalance": fmt(f["wallet"]),
                "crossUnPnl": fmt(f["cross_unrealized"]),
                "availableBalance": fmt(f["available"]),
                "maxWithdrawAmount": fmt(f["available"]),
                "marginAvailable": True,
                "updateTime": now_ms,
            }
        )
    return out
