"""The engine's futures arithmetic: drift in contracts and USD, liquidation distance, funding."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from engine.core.futures import (
    ContractTerms,
    funding_payment,
    liquidation_distance_pct,
    position_drift,
)

LINEAR = ContractTerms()
INVERSE = ContractTerms(inverse=True, contract_size=D(10))


def test_drift_is_counted_in_contracts_and_in_usd() -> None:
    drift = position_drift(
        journal=D("0.5"), venue=D("0.4"), price=D(2000), terms=LINEAR, tolerance=D("0.001")
    )
    assert (drift.contracts, drift.notional_usd, drift.percent) == (D("-0.1"), D(200), 20.0)
    inverse = position_drift(
        journal=D(30), venue=D(33), price=D(2000), terms=INVERSE, tolerance=D(1)
    )
    assert inverse.notional_usd == D(30)  # 3 contracts of 10 USD, whatever the price
    assert inverse.percent == pytest.approx(100 * 3 / 33)


def test_drift_within_a_lot_is_none() -> None:
    drift = position_drift(journal=D(30), venue=D(30), price=D(2000), terms=INVERSE, tolerance=D(1))
    assert drift.percent == 0.0
    with pytest.raises(ValueError, match="tolerance"):
        position_drift(journal=D(1), venue=D(1), price=D(1), terms=LINEAR, tolerance=D(-1))


def test_liquidation_distance_is_in_percent_of_the_mark() -> None:
    assert liquidation_distance_pct(mark=2000.0, liquidation=1800.0) == pytest.approx(10.0)
    assert liquidation_distance_pct(mark=2000.0, liquidation=2100.0) == pytest.approx(5.0)
    assert liquidation_distance_pct(mark=2000.0, liquidation=None) is None
    assert liquidation_distance_pct(mark=2000.0, liquidation=0.0) is None


def test_funding_is_paid_by_longs_at_a_positive_rate() -> None:
    assert funding_payment(contracts=D(2), mark=D(2000), rate=D("0.0001"), terms=LINEAR) == D("0.4")
    assert funding_payment(contracts=D(-100), mark=D(2000), rate=D("0.0001"), terms=INVERSE) == D(
        "-0.00005"
    )
