"""The one classifier of venue errors, on the errors Binance futures raises through ccxt."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from engine.execution.errors import ErrorClass, classify

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "body",
    [
        '{"code":-2022,"msg":"ReduceOnly Order is rejected."}',
        '{"code": -2019, "msg": "Margin is insufficient."}',
        '{"code":-4061,"msg":"Order\'s position side does not match user\'s setting."}',
        '{"code":-5022,"msg":"Due to the order could not be executed as maker, the Post Only'
        ' order will be rejected."}',
    ],
)
def test_a_futures_refusal_is_final_never_an_unknown_outcome(body: str) -> None:
    assert classify(ccxt.ExchangeError(f"binanceusdm {body}"), side_effect=True) is ErrorClass.FATAL


def test_any_other_exchange_error_on_an_order_stays_ambiguous() -> None:
    unknown = ccxt.ExchangeError('binanceusdm {"code":-1000,"msg":"An unknown error occured"}')
    assert classify(unknown, side_effect=True) is ErrorClass.AMBIGUOUS
    assert classify(unknown, side_effect=False) is ErrorClass.FATAL
    assert classify(ccxt.ExchangeError("no code here"), side_effect=True) is ErrorClass.AMBIGUOUS
