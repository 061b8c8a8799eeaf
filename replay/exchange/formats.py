"""Binance JSON shapes for orders, fills and balances. An order's status goes in as the
StrEnum member itself: it is a str, and encoders write its value (reading `.value` is an enum
property call per order)."""

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any

from replay.exchange.matching import Account, SimFill, SimOrder

ZERO_8DP = "0.00000000"


def fmt(value: Decimal) -> str:
    """Binance's eight decimals. Zero (most quantities of a new or cancelled order) is common
    enough to skip Decimal's formatting for."""
    return f"{value:.8f}" if value else ZERO_8DP


def order_json(order: SimOrder) -> dict[str, Any]:
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": fmt(order.price),
        "origQty": fmt(order.orig_qty),
        "executedQty": fmt(order.executed_qty),
        "cummulativeQuoteQty": fmt(order.cumm_quote),
        "status": order.status,
        "timeInForce": order.time_in_force or "GTC",
        "type": order.type,
        "side": order.side,
        "stopPrice": ZERO_8DP,
        "icebergQty": ZERO_8DP,
        "time": order.time_ms,
        "updateTime": order.update_ms,
        "isWorking": order.working_time_ms >= 0,
        "workingTime": order.working_time_ms if order.working_time_ms >= 0 else order.time_ms,
        "origQuoteOrderQty": fmt(order.orig_quote_qty),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def new_order_json(order: SimOrder, resp_type: str) -> dict[str, Any]:
    ack = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "transactTime": order.time_ms,
    }
    if resp_type == "ACK":
        return ack
    result = {
        **ack,
        "price": fmt(order.price),
        "origQty": fmt(order.orig_qty),
        "executedQty": fmt(order.executed_qty),
        "origQuoteOrderQty": fmt(order.orig_quote_qty),
        "cummulativeQuoteQty": fmt(order.cumm_quote),
        "status": order.status,
        "timeInForce": order.time_in_force or "GTC",
        "type": order.type,
        "side": order.side,
        "workingTime": order.working_time_ms if order.working_time_ms >= 0 else order.time_ms,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }
    if resp_type == "FULL":
        result["fills"] = [
            {
                "price": fmt(f.price),
                "qty": fmt(f.qty),
                "commission": fmt(f.commission),
                "commissionAsset": f.commission_asset,
                "tradeId": f.trade_id,
            }
            for f in order.fills
        ]
    return result


def cancel_json(order: SimOrder, orig_client_order_id: str | None) -> dict[str, Any]:
    return {
        "symbol": order.symbol,
        "origClientOrderId": orig_client_order_id or order.client_order_id,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "transactTime": order.update_ms,
        "price": fmt(order.price),
        "origQty": fmt(order.orig_qty),
        "executedQty": fmt(order.executed_qty),
        "cummulativeQuoteQty": fmt(order.cumm_quote),
        "status": order.status,
        "timeInForce": order.time_in_force or "GTC",
        "type": order.type,
        "side": order.side,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def trade_json(fill: SimFill) -> dict[str, Any]:
    return {
        "symbol": fill.symbol,
        "id": fill.trade_id,
        "orderId": fill.order_id,
        "orderListId": -1,
        "price": fmt(fill.price),
        "qty": fmt(fill.qty),
        "quoteQty": fmt(fill.quote_qty),
        "commission": fmt(fill.commission),
        "commissionAsset": fill.commission_asset,
        "time": fill.time_ms,
        "isBuyer": fill.side == "BUY",
        "isMaker": fill.is_maker,
        "isBestMatch": True,
    }


def account_json(
    account: Account, *, maker_fee: Decimal, taker_fee: Decimal, now_ms: int
) -> dict[str, Any]:
    return {
        "makerCommission": int(maker_fee * 10_000),
        "takerCommission": int(taker_fee * 10_000),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": fmt(maker_fee),
            "taker": fmt(taker_fee),
            "buyer": fmt(Decimal(0)),
            "seller": fmt(Decimal(0)),
        },
        "canTrade": True,
        "canWithdraw": False,
        "canDeposit": False,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": now_ms,
        "accountType": "SPOT",
        "balances": [
            {"asset": asset, "free": fmt(b.free), "locked": fmt(b.locked)}
            for asset, b in sorted(account.balances.items())
        ],
        "permissions": ["SPOT"],
        "uid": zlib.crc32(account.api_key.encode()) % 10**9,
    }
