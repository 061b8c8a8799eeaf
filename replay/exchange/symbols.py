"""Symbols and their filters: from a real exchangeInfo file when available, else built in.

The shared recording folder carries a real Binance `exchangeInfo` response; by default the
simulator serves the entries of the replayed symbols from it, and validates orders against their
filters exactly as Binance does. Without that file, a built-in table of Binance's filters for
common symbols is used (anything else gets generic filters, and the docs say so).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from replay.exchange.errors import filter_failure
from replay.exchange.futures_symbols import (
    futures_entry,
    futures_rate_limits,
    futures_response_extras,
)
from replay.market_kind import MarketKind

_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB")


def _builtin_symbol(symbol: str) -> dict[str, Any]:
    base = next((symbol[: -len(q)] for q in _QUOTES if symbol.endswith(q)), symbol[:-4])
    quote = symbol[len(base) :]
    tick, step, min_qty = {
        "BTCUSDT": ("0.01", "0.00001", "0.00001"),
        "ETHUSDT": ("0.01", "0.0001", "0.0001"),
        "BNBUSDT": ("0.01", "0.001", "0.001"),
        "SOLUSDT": ("0.01", "0.001", "0.001"),
    }.get(symbol, ("0.01", "0.001", "0.001"))
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": "1000000.00000000",
                "tickSize": tick,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": min_qty,
                "maxQty": "9000.00000000",
                "stepSize": step,
            },
            {
                "filterType": "MIN_NOTIONAL",
                "minNotional": "10.00000000",
                "applyToMarket": True,
                "avgPriceMins": 5,
            },
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "5",
                "multiplierDown": "0.2",
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": ["SPOT"],
    }


DEFAULT_RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


@dataclass(frozen=True)
class SymbolRules:
    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    notional_applies_to_market: bool
    percent_up: Decimal | None
    percent_down: Decimal | None
    raw: dict[str, Any]
    contract_size: Decimal = Decimal(1)
    """Futures: what one unit of quantity is worth (COIN-M: USD per contract; else 1)."""
    margin_asset: str = ""
    """Futures: the asset margin and PnL are in (USD-M: the quote; COIN-M: the base)."""

    @staticmethod
    def from_exchange_info(entry: dict[str, Any]) -> SymbolRules:
        filters = {f["filterType"]: f for f in entry.get("filters", [])}
        price = filters.get("PRICE_FILTER", {})
        lot = filters.get("LOT_SIZE", {})
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
        percent = filters.get("PERCENT_PRICE", {})
        return SymbolRules(
            symbol=entry["symbol"],
            base=entry["baseAsset"],
            quote=entry["quoteAsset"],
            tick_size=Decimal(price.get("tickSize", "0")),
            min_price=Decimal(price.get("minPrice", "0")),
            max_price=Decimal(price.get("maxPrice", "0")),
            step_size=Decimal(lot.get("stepSize", "0")),
            min_qty=Decimal(lot.get("minQty", "0")),
            max_qty=Decimal(lot.get("maxQty", "0")),
            min_notional=Decimal(notional.get("minNotional", notional.get("notional", "0"))),
            notional_applies_to_market=bool(
                notional.get("applyToMarket", notional.get("applyMinToMarket", True))
            ),
            percent_up=Decimal(percent["multiplierUp"]) if "multiplierUp" in percent else None,
            percent_down=Decimal(percent["multiplierDown"])
            if "multiplierDown" in percent
            else None,
            raw=entry,
            contract_size=Decimal(str(entry.get("contractSize", 1))),
            margin_asset=entry.get("marginAsset", ""),
        )

    def check_price(self, price: Decimal) -> None:
        if self.min_price and price < self.min_price:
            raise filter_failure("PRICE_FILTER")
        if self.max_price and price > self.max_price:
            raise filter_failure("PRICE_FILTER")
        if self.tick_size and (price - self.min_price) % self.tick_size != 0:
            raise filter_failure("PRICE_FILTER")

    def check_qty(self, qty: Decimal) -> None:
        if qty < self.min_qty or (self.max_qty and qty > self.max_qty):
            raise filter_failure("LOT_SIZE")
        if self.step_size and (qty - self.min_qty) % self.step_size != 0:
            raise filter_failure("LOT_SIZE")

    def check_notional(self, notional: Decimal, *, is_market: bool) -> None:
        if is_market and not self.notional_applies_to_market:
            return
        if notional < self.min_notional:
            name = (
                "NOTIONAL"
                if "NOTIONAL" in {f["filterType"] for f in self.raw["filters"]}
                else "MIN_NOTIONAL"
            )
            raise filter_failure(name)

    def check_percent_price(self, price: Decimal, average: Decimal | None) -> None:
        if average is None or self.percent_up is None or self.percent_down is None:
            return
        if price > average * self.percent_up or price < average * self.percent_down:
            raise filter_failure("PERCENT_PRICE")


class ExchangeInfo:
    def __init__(
        self,
        symbols: list[str],
        source: str | Path | None = None,
        rate_limits: list[dict[str, Any]] | None = None,
        *,
        kind: MarketKind = MarketKind.SPOT,
    ) -> None:
        self.kind = kind
        wanted = [s.upper() for s in symbols]
        entries: dict[str, dict[str, Any]] = {}
        served_limits = rate_limits
        self.source = "built-in table"
        if source is not None and Path(source).exists():
            data = json.loads(Path(source).read_text())
            by_symbol = {
                e["symbol"]: e
                for e in data.get("symbols", [])
                if ("contractType" in e) == kind.is_futures  # a spot file serves no futures
            }
            entries = {s: by_symbol[s] for s in wanted if s in by_symbol}
            served_limits = served_limits or data.get("rateLimits")
            self.source = str(source)
        for symbol in wanted:
            if symbol not in entries:
                entries[symbol] = (
                    futures_entry(symbol, kind) if kind.is_futures else _builtin_symbol(symbol)
                )
        self.rate_limits: list[dict[str, Any]] = served_limits or (
            futures_rate_limits(kind) if kind.is_futures else DEFAULT_RATE_LIMITS
        )
        """What the venue enforces (passed in), else the file's, else Binance's current."""
        self.rules = {s: SymbolRules.from_exchange_info(e) for s, e in entries.items()}

    def response(self, server_time_ms: int, only: list[str] | None = None) -> dict[str, Any]:
        symbols = [r.raw for s, r in self.rules.items() if not only or s in only]
        extras = futures_response_extras(self.kind, list(self.rules))
        return {
            "timezone": "UTC",
            "serverTime": server_time_ms,
            **extras,
            "rateLimits": self.rate_limits,
            "exchangeFilters": [],
            "symbols": symbols,
        }
