"""Positions computed from venue fills, idempotently on the venue trade id."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from engine.core.messages import Fill, Side


class Position(msgspec.Struct, frozen=True, kw_only=True):
    venue: str
    symbol: str
    qty: Decimal = Decimal(0)
    """Net base-asset quantity, after commissions charged in the base asset."""
    quote_flow: Decimal = Decimal(0)
    """Net quote-asset flow: negative when we paid, after commissions charged in quote."""
    fills: int = 0


def split_symbol(
    symbol: str,
    quote_assets: tuple[str, ...] = ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB"),
) -> tuple[str, str]:
    for quote in quote_assets:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ValueError(f"cannot split symbol {symbol!r} into base and quote assets")


def order_reduces(side: Side, qty: Decimal, position_qty: Decimal) -> bool:
    """True when an order of `qty` on `side` moves the position towards zero without crossing
    it (a non-finite quantity or position never reduces: judged as exposure)."""
    if not (qty.is_finite() and position_qty.is_finite()) or position_qty == 0 or qty <= 0:
        return False
    after = position_qty + (qty if side is Side.BUY else -qty)
    return abs(after) < abs(position_qty) and (after == 0 or (after > 0) == (position_qty > 0))


class PositionBook:
    """Net positions per (venue, symbol); applying the same fill twice changes nothing.

    Spot positions are base-asset balances: a commission charged in the base asset shrinks
    them. Futures positions (`contracts`) are quantities of contracts: commissions are charged
    in the margin asset and never change the position."""

    def __init__(self, *, contracts: bool = False) -> None:
        self.contracts = contracts
        self._positions: dict[tuple[str, str], Position] = {}
        self._seen: set[tuple[str, int]] = set()

    def apply(self, fill: Fill) -> bool:
        """Apply a fill; returns False when it was already applied."""
        key = (fill.venue, fill.trade_id)
        if key in self._seen:
            return False
        self._seen.add(key)
        current = self.get(fill.venue, fill.symbol)
        signed_qty = fill.qty if fill.side is Side.BUY else -fill.qty
        qty = current.qty + signed_qty
        quote_flow = current.quote_flow - signed_qty * fill.price
        if not self.contracts:
            base, quote = split_symbol(fill.symbol)
            if fill.commission_asset == base:
                qty -= fill.commission
            elif fill.commission_asset == quote:
                quote_flow -= fill.commission
        self._positions[(fill.venue, fill.symbol)] = Position(
            venue=fill.venue,
            symbol=fill.symbol,
            qty=qty,
            quote_flow=quote_flow,
            fills=current.fills + 1,
        )
        return True

    def get(self, venue: str, symbol: str) -> Position:
        return self._positions.get((venue, symbol)) or Position(venue=venue, symbol=symbol)

    def all(self) -> list[Position]:
        return sorted(self._positions.values(), key=lambda p: (p.venue, p.symbol))

    def has_seen(self, venue: str, trade_id: int) -> bool:
        return (venue, trade_id) in self._seen


def marked_value(positions: list[Position], mids: dict[str, float]) -> Decimal | None:
    """Quote-asset value of our trading: cash flow plus inventory at mid (None: a held symbol
    has no mid yet)."""
    total = Decimal(0)
    for position in positions:
        total += position.quote_flow
        if position.qty:
            mid = mids.get(position.symbol)
            if not mid:
                return None
            total += position.qty * Decimal(repr(mid))
    return total


class DailyPnl:
    """PnL since 00:00 UTC: marked value now minus marked value at the day's first look."""

    DAY_NS = 86_400 * 1_000_000_000

    def __init__(self) -> None:
        self.day = -1
        self.baseline = Decimal(0)
        self.pnl = Decimal(0)

    def update(self, *, now_ns: int, value: Decimal | None) -> Decimal:
        if value is None:
            return self.pnl
        day = now_ns // self.DAY_NS
        if day != self.day:
            self.day, self.baseline = day, value
        self.pnl = value - self.baseline
        return self.pnl

    def snapshot(self) -> dict[str, str | int]:
        return {"day": self.day, "baseline": str(self.baseline)}

    def restore(self, state: dict[str, str | int]) -> None:
        self.day = int(state.get("day", -1))
        self.baseline = Decimal(str(state.get("baseline", "0")))
