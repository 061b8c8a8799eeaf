"""The arithmetic of one perpetual contract, linear (USD-M) or inverse (COIN-M). Pure, Decimal.

Quantities are signed where a position is meant (long > 0, short < 0). Everything in money is in
the contract's margin asset: USDT for a linear contract, the coin for an inverse one.

    linear   notional = |q| * price                 pnl = q * (exit - entry)
    inverse  notional = |q| * size / price          pnl = q * size * (1/entry - 1/exit)

A position with collateral C (isolated margin; in cross margin, what the account can lose before
this position is liquidated) is liquidated where C + pnl(P) = maintenance rate * notional(P):

    linear   P = (C - q * entry) / (mmr * |q| - q)
    inverse  P = (mmr * |q| + q) * size / (C + q * size / entry)

and goes bankrupt where C + pnl(P) = 0 (the same with mmr = 0). None where no price gets there
(a long whose collateral covers its notional; an inverse short whose collateral covers its
largest possible loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["Contract"]

_ZERO = Decimal(0)


@dataclass(frozen=True, kw_only=True)
class Contract:
    inverse: bool
    size: Decimal = Decimal(1)
    """Inverse: USD per contract (COIN-M ETHUSD_PERP: 10); linear: 1."""
    maint_rate: Decimal = Decimal("0.005")
    """Maintenance margin rate (Binance's first bracket)."""

    def notional(self, qty: Decimal, price: Decimal) -> Decimal:
        """|qty| at `price`, in the margin asset."""
        if price <= 0:
            return _ZERO
        return abs(qty) * self.size / price if self.inverse else abs(qty) * price

    def pnl(self, qty: Decimal, entry: Decimal, exit_price: Decimal) -> Decimal:
        """What a position of signed `qty` opened at `entry` makes when valued at `exit_price`."""
        if qty == 0 or entry <= 0 or exit_price <= 0:
            return _ZERO
        if self.inverse:
            return qty * self.size * (1 / entry - 1 / exit_price)
        return qty * (exit_price - entry)

    def average_entry(
        self, qty: Decimal, entry: Decimal, added: Decimal, price: Decimal
    ) -> Decimal:
        """The entry price after adding `added` at `price` to a position of `qty` at `entry`
        (both the same sign): by quantity for a linear contract, harmonic for an inverse one
        (each contract is worth size / price coins)."""
        total = abs(qty) + abs(added)
        if total == 0:
            return _ZERO
        if qty == 0:
            return price
        if self.inverse:
            return total / (abs(qty) / entry + abs(added) / price)
        return (abs(qty) * entry + abs(added) * price) / total

    def liquidation_price(
        self, qty: Decimal, entry: Decimal, collateral: Decimal
    ) -> Decimal | None:
        return self._price_where(qty, entry, collateral, self.maint_rate)

    def bankruptcy_price(self, qty: Decimal, entry: Decimal, collateral: Decimal) -> Decimal | None:
        return self._price_where(qty, entry, collateral, _ZERO)

    def _price_where(
        self, qty: Decimal, entry: Decimal, collateral: Decimal, rate: Decimal
    ) -> Decimal | None:
        if qty == 0 or entry <= 0:
            return None
        if self.inverse:
            denominator = collateral + qty * self.size / entry
            if denominator == 0:
                return None
            price = (rate * abs(qty) + qty) * self.size / denominator
        else:
            denominator = rate * abs(qty) - qty
            if denominator == 0:
                return None
            price = (collateral - qty * entry) / denominator
        return price if price > 0 else None

    def maint_margin(self, qty: Decimal, price: Decimal) -> Decimal:
        return self.notional(qty, price) * self.maint_rate

    def funding_fee(self, qty: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
        """What the holder of signed `qty` pays at a funding time (negative: receives). Longs pay
        shorts when the rate is positive."""
        if mark <= 0:
            return _ZERO
        value = qty * self.size / mark if self.inverse else qty * mark
        return value * rate
