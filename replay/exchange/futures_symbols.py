"""Built-in exchangeInfo entries of perpetual futures, laid out as `GET /fapi/v1/exchangeInfo`
(USD-M) and `GET /dapi/v1/exchangeInfo` (COIN-M) lay them out.

USD-M contracts are linear: quantity in the base asset, margin and PnL in the quote (USDT).
COIN-M contracts are inverse: quantity in contracts of `contractSize` USD each, margin and PnL
in the base coin. The figures for the symbols of our recordings are Binance's (tick and step
sizes, contract size, minimum notional, maintenance margin of the first bracket); any other
symbol gets generic figures, and docs/futures.md says so.
"""

from __future__ import annotations

from typing import Any

from replay.market_kind import MarketKind

__all__ = [
    "futures_entry",
    "futures_rate_limits",
    "futures_response_extras",
    "split_futures_symbol",
]

PERPETUAL_DELIVERY_MS = 4133404800000
"""The delivery date Binance gives perpetual contracts (2100-12-25)."""

_ORDER_TYPES = [
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
]
_TIME_IN_FORCE = ["GTC", "IOC", "FOK", "GTX"]

# symbol: tick, step (= min qty), max qty, min notional (USD-M) or contract size (COIN-M),
# maintenance margin rate of the first bracket
_USDM = {
    "BTCUSDT": ("0.10", "0.001", "1000", "100", "0.004"),
    "ETHUSDT": ("0.01", "0.001", "10000", "20", "0.005"),
    "SOLUSDT": ("0.010", "1", "1000000", "5", "0.005"),
    "BNBUSDT": ("0.010", "0.01", "10000", "5", "0.005"),
}
_COINM = {
    "BTCUSD_PERP": ("0.1", "1", "1000000", "100", "0.004"),
    "ETHUSD_PERP": ("0.01", "1", "1000000", "10", "0.005"),
}
_GENERIC_USDM = ("0.01", "0.001", "100000", "5", "0.01")
_GENERIC_COINM = ("0.01", "1", "1000000", "10", "0.01")
_USDM_QUOTES = ("USDT", "USDC", "BUSD")


def split_futures_symbol(symbol: str, kind: MarketKind) -> tuple[str, str, str]:
    """(base, quote, margin asset) of a futures symbol: ETHUSDT → ETH, USDT, USDT;
    ETHUSD_PERP → ETH, USD, ETH."""
    if kind is MarketKind.COINM:
        pair = symbol.split("_", 1)[0]
        base = pair[:-3] if pair.endswith("USD") else pair
        return base, "USD", base
    quote = next((q for q in _USDM_QUOTES if symbol.endswith(q)), symbol[-4:])
    return symbol[: -len(quote)], quote, quote


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1].rstrip("0")) if "." in text else 0


def futures_entry(symbol: str, kind: MarketKind) -> dict[str, Any]:
    """One `symbols[]` entry of the futures exchangeInfo."""
    base, quote, margin = split_futures_symbol(symbol, kind)
    if kind is MarketKind.COINM:
        tick, step, max_qty, sized, maint = _COINM.get(symbol, _GENERIC_COINM)
    else:
        tick, step, max_qty, sized, maint = _USDM.get(symbol, _GENERIC_USDM)
    lot = {"stepSize": step, "maxQty": max_qty, "minQty": step}
    entry: dict[str, Any] = {
        "symbol": symbol,
        "pair": symbol.split("_", 1)[0],
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_MS,
        "onboardDate": 1569398400000,
        "maintMarginPercent": f"{float(maint) * 100:.4f}",
        "requiredMarginPercent": f"{float(maint) * 200:.4f}",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": margin,
        "pricePrecision": _decimals(tick),
        "quantityPrecision": _decimals(step),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500" if kind is MarketKind.USDM else "0.010000",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": "1000000",
                "tickSize": tick,
            },
            {"filterType": "LOT_SIZE", **lot},
            {"filterType": "MARKET_LOT_SIZE", **lot},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": list(_ORDER_TYPES),
        "timeInForce": list(_TIME_IN_FORCE),
    }
    if kind is MarketKind.COINM:
        entry["contractStatus"] = "TRADING"
        entry["contractSize"] = int(sized)
        entry["equalQtyPrecision"] = 4
    else:
        entry["status"] = "TRADING"
        entry["settlePlan"] = 0
        entry["filters"].insert(5, {"filterType": "MIN_NOTIONAL", "notional": sized})
    return entry


def futures_response_extras(kind: MarketKind, symbols: list[str]) -> dict[str, Any]:
    """Top-level keys a futures exchangeInfo has and spot's has not (none for spot)."""
    if kind is MarketKind.USDM:
        margins = sorted({split_futures_symbol(s, kind)[2] for s in symbols})
        return {
            "futuresType": "U_MARGINED",
            "assets": [
                {"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"}
                for a in margins
            ],
        }
    return {}


def futures_rate_limits(kind: MarketKind) -> list[dict[str, Any]]:
    """Binance's published futures limits (weight per minute, orders per minute and per 10 s)."""
    limits: list[dict[str, Any]] = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    ]
    if kind is MarketKind.USDM:
        limits.append(
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}
        )
    return limits
