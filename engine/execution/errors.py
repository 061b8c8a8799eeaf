"""Every venue exception is classified here, and only here.

    RETRYABLE  the request certainly had no effect (refused before execution: rate limit,
               maintenance, bad timestamp, connection refused); retry with backoff
    FATAL      the venue refused it and will refuse it again (bad order, no funds, auth)
    AMBIGUOUS  it may have taken effect (timeout, dropped connection after sending, 5xx,
               "unknown error", duplicate clientOrderId): never resend; query the venue by
               clientOrderId and go by what it says

For requests without side effects (queries), AMBIGUOUS means RETRYABLE.

A generic ExchangeError is AMBIGUOUS for an order, except the Binance futures codes that say
the order was judged and refused, no order made (`DEFINITE_REFUSALS`: -2022 reduce-only
rejected, -2019 margin insufficient, -4061 position side, -5022 post-only would take): FATAL.
A reduce-only order refused is refused, never resent without the flag.
"""

from __future__ import annotations

import re
from enum import StrEnum

import ccxt.async_support as ccxt


class ErrorClass(StrEnum):
    RETRYABLE = "retryable"
    FATAL = "fatal"
    AMBIGUOUS = "ambiguous"


_DUPLICATE_MARKERS = ("Duplicate order sent", '-2010,"msg":"Duplicate')
DEFINITE_REFUSALS = (-2019, -2022, -4061, -5022)
"""Binance futures codes ccxt raises as a plain ExchangeError that refuse an order outright."""
_CODE = re.compile(r'"code"\s*:\s*(-?\d+)')


def classify(exc: BaseException, *, side_effect: bool) -> ErrorClass:
    """Classify an exception raised by a ccxt call (or the transport under it)."""
    text = str(exc)
    if isinstance(exc, ccxt.InvalidOrder) and any(m in text for m in _DUPLICATE_MARKERS):
        # the clientOrderId is already known to the venue: the earlier send did land
        return ErrorClass.AMBIGUOUS if side_effect else ErrorClass.FATAL
    if isinstance(exc, ccxt.OrderNotFound):
        return ErrorClass.FATAL
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded | ccxt.OnMaintenance):
        return ErrorClass.RETRYABLE
    if isinstance(exc, ccxt.InvalidNonce):
        return ErrorClass.RETRYABLE
    if isinstance(exc, ccxt.RequestTimeout):
        return ErrorClass.AMBIGUOUS if side_effect else ErrorClass.RETRYABLE
    if isinstance(exc, ccxt.ExchangeNotAvailable):
        # 5xx or a broken connection: the request may have reached the matching engine
        return ErrorClass.AMBIGUOUS if side_effect else ErrorClass.RETRYABLE
    if isinstance(exc, ccxt.NetworkError):
        return ErrorClass.AMBIGUOUS if side_effect else ErrorClass.RETRYABLE
    if isinstance(exc, ccxt.OperationFailed):
        return ErrorClass.AMBIGUOUS if side_effect else ErrorClass.RETRYABLE
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return ErrorClass.FATAL
    if isinstance(
        exc,
        ccxt.InsufficientFunds
        | ccxt.InvalidOrder
        | ccxt.BadRequest
        | ccxt.BadSymbol
        | ccxt.NotSupported
        | ccxt.ArgumentsRequired,
    ):
        return ErrorClass.FATAL
    if isinstance(exc, TimeoutError | ConnectionError | OSError):
        return ErrorClass.AMBIGUOUS if side_effect else ErrorClass.RETRYABLE
    if isinstance(exc, ccxt.ExchangeError):
        code = _CODE.search(text)
        if code is not None and int(code.group(1)) in DEFINITE_REFUSALS:
            return ErrorClass.FATAL
        return ErrorClass.AMBIGUOUS if side_effect else ErrorClass.FATAL
    return ErrorClass.AMBIGUOUS if side_effect else ErrorClass.FATAL
