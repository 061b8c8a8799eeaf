"""Binance error replies: HTTP status, code and message exactly as the venue sends them."""

from __future__ import annotations


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal(name: str) -> BinanceError:
    legal = "^[0-9]{1,20}(\\.[0-9]{1,20})?$"
    return BinanceError(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def filter_failure(name: str) -> BinanceError:
    return BinanceError(-1013, f"Filter failure: {name}")


INVALID_SYMBOL = BinanceError(-1121, "Invalid symbol.")
LOOKUP_INTERVAL_TOO_BIG = BinanceError(-1127, "More than 24 hours between startTime and endTime.")
BAD_PARAMETER_COMBINATION = BinanceError(-1128, "Combination of optional parameters invalid.")
DUPLICATE_PARAMS = BinanceError(-1101, "Duplicate values for a parameter detected.")
TOO_MANY_PARAMS = BinanceError(-1101, "Too many parameters sent for this endpoint.")
UNKNOWN_ORDER_QUERY = BinanceError(-2013, "Order does not exist.")
UNKNOWN_ORDER_CANCEL = BinanceError(-2011, "Unknown order sent.")
INSUFFICIENT_BALANCE = BinanceError(-2010, "Account has insufficient balance for requested action.")
DUPLICATE_ORDER = BinanceError(-2010, "Duplicate order sent.")
WOULD_TAKE = BinanceError(-2010, "Order would immediately match and take.")
MARKET_CLOSED = BinanceError(-2010, "Market is closed.")
BAD_SIGNATURE = BinanceError(-1022, "Signature for this request is not valid.")
BAD_API_KEY_FORMAT = BinanceError(-2014, "API-key format invalid.", 401)
INVALID_API_KEY = BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
