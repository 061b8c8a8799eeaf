"""Binance's futures refusals: code and message as USD-M and COIN-M send them."""

from __future__ import annotations

from replay.exchange.errors import BinanceError

MARGIN_INSUFFICIENT = BinanceError(-2019, "Margin is insufficient.")
REDUCE_ONLY_REJECTED = BinanceError(-2022, "ReduceOnly Order is rejected.")
POSITION_SIDE_MISMATCH = BinanceError(-4061, "Order's position side does not match user's setting.")
REDUCE_ONLY_NOT_REQUIRED = BinanceError(-1106, "Parameter 'reduceonly' sent when not required.")
POST_ONLY_REJECTED = BinanceError(
    -5022,
    "Due to the order could not be executed as maker, the Post Only order will be rejected."
    " The order will not be recorded in the order history",
)
NO_NEED_MARGIN_TYPE = BinanceError(-4046, "No need to change margin type.")
MARGIN_TYPE_WITH_POSITION = BinanceError(
    -4048, "Margin type cannot be changed if there exists position."
)
NO_NEED_POSITION_SIDE = BinanceError(-4059, "No need to change position side.")
POSITION_SIDE_WITH_POSITION = BinanceError(
    -4068, "Position side cannot be changed if there exists position."
)
DUPLICATE_CLIENT_ID = BinanceError(-4116, "ClientOrderId is duplicated.")


def invalid_leverage(raw: object) -> BinanceError:
    return BinanceError(-4028, f"Leverage {raw} is not valid")
