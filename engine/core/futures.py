"""Perpetual futures, as the engine judges them: how far a position is from liquidation, what a
difference in contracts is worth, what funding costs. Pure; the engine's own arithmetic (it
shares none with the simulator that judges it).

    linear (USD-M)   notional in USD = |contracts| * price
    inverse (COIN-M) notional in USD = |contracts| * contract size
    funding paid     = signed notional at the mark (linear: contracts * mark; inverse: in coin,
                       contracts * size / mark) * rate; longs pay when the rate is positive
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

__all__ = [
    "ContractTerms",
    "FundingTally",
    "PositionDrift",
    "funding_payment",
    "liquidation_distance_pct",
    "notional_usd",
    "position_drift",
]


class ContractTerms(msgspec.Struct, frozen=True, kw_only=True):
    inverse: bool = False
    contract_size: Decimal = Decimal(1)
    """COIN-M: USD per contract; linear: 1."""


class PositionDrift(msgspec.Struct, frozen=True, kw_only=True):
    contracts: Decimal
    """venue - journal, in contracts."""
    notional_usd: Decimal
    """What the difference is worth, in USD, at the price given."""
    percent: float
    """Of the larger of the two positions; 0.0 within tolerance."""


def notional_usd(contracts: Decimal, price: Decimal, terms: ContractTerms) -> Decimal:
    if terms.inverse:
        return abs(contracts) * terms.contract_size
    return abs(contracts) * price


def position_drift(
    *,
    journal: Decimal,
    venue: Decimal,
    price: Decimal,
    terms: ContractTerms,
    tolerance: Decimal,
) -> PositionDrift:
    """How far the journal's position is from the venue's, in contracts, in USD and in percent
    of the larger (0.0 when within `tolerance` contracts: a lot)."""
    if tolerance < 0:
        raise ValueError(f"tolerance must not be negative, got {tolerance}")
    difference = venue - journal
    percent = 0.0
    if abs(difference) > tolerance:
        percent = float(100 * abs(difference) / max(abs(journal), abs(venue)))
    return PositionDrift(
        contracts=difference,
        notional_usd=notional_usd(difference, price, terms),
        percent=percent,
    )


def liquidation_distance_pct(*, mark: float, liquidation: float | None) -> float | None:
    """How far the mark may move before the position is liquidated, in percent of the mark;
    None when the venue names no liquidation price (no position, or collateral covers it)."""
    if liquidation is None or liquidation <= 0 or mark <= 0:
        return None
    return abs(mark - liquidation) / mark * 100


def funding_payment(
    *, contracts: Decimal, mark: Decimal, rate: Decimal, terms: ContractTerms
) -> Decimal:
    """What a position of signed `contracts` pays at a funding time (negative: receives), in
    the margin asset."""
    if mark <= 0:
        return Decimal(0)
    value = contracts * terms.contract_size / mark if terms.inverse else contracts * mark
    return value * rate


class FundingTally:
    """Funding settled per symbol, counted once per venue record (tran id)."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._income: dict[str, Decimal] = {}

    def apply(self, *, venue: str, symbol: str, tran_id: str, income: Decimal) -> bool:
        """Count a settlement; False when it was already counted."""
        key = (venue, tran_id)
        if key in self._seen:
            return False
        self._seen.add(key)
        self._income[symbol] = self._income.get(symbol, Decimal(0)) + income
        return True

    def income(self, symbol: str) -> Decimal:
        """What funding brought (negative: cost) on `symbol` so far."""
        return self._income.get(symbol, Decimal(0))

    def total(self) -> Decimal:
        return sum(self._income.values(), Decimal(0))

    def by_symbol(self) -> dict[str, Decimal]:
        return dict(self._income)
