"""Binance request signing (HMAC-SHA256) and timing checks, as the venue applies them.

The signed payload is `totalParams`: the query string concatenated with the request body, exactly
as sent, minus the `signature` parameter. The signature is the lowercase hex HMAC-SHA256 of that
payload with the API secret. `timestamp` must not be more than 1 s ahead of the server clock nor
older than `recvWindow` (default 5000 ms, at most 60000).

Parameters are judged before the signature, as Binance does: a name sent twice in the query, or
twice in the body, is -1101 "Duplicate values for a parameter detected."; more than MAX_PARAMS
is -1101 "Too many parameters sent for this endpoint."; a name sent in both the query and the
body takes the query's value (Binance: "If a parameter sent in both the query string and
request body, the query string parameter will be used"). A number is at most 20 ASCII digits
(-1100 otherwise), Binance's legal range for its integer parameters.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import Union
from urllib.parse import unquote_plus

from replay.exchange import errors
from replay.exchange.errors import BinanceError

try:
    from replay.exchange import _signed
except ImportError:  # pragma: no cover - the build step installs it (scripts/bootstrap.sh)
    _signed = None  # type: ignore[assignment]

try:
    from _hashlib import HMAC as _OpenSslHmac
    from _hashlib import hmac_new as _openssl_hmac
except ImportError:  # pragma: no cover - a CPython built without OpenSSL
    _openssl_hmac = None  # type: ignore[assignment]

_Keyed = Union["hmac.HMAC", "_OpenSslHmac"]


MAX_PARAMS = 64
"""More parameters than any Binance endpoint takes: a request with more is refused (-1101)."""
MAX_DIGITS = 20
"""Binance's integers: '^[0-9]{1,20}$'."""


def sign(secret: str, payload: str) -> str:
    keyed = _keyed(secret).copy()  # the key schedule is computed once per secret
    keyed.update(payload.encode())
    return keyed.hexdigest()


@functools.lru_cache(maxsize=64)
def _keyed(secret: str) -> _Keyed:
    if _openssl_hmac is not None:
        # OpenSSL's own HMAC object: hmac.HMAC wraps each copy, update and digest of it in a
        # Python call, a microsecond per signed request
        return _openssl_hmac(secret.encode(), digestmod="sha256")
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)  # pragma: no cover


@functools.lru_cache(maxsize=64)
def _compiled_key(secret: str) -> _signed.Key:
    return _signed.Key(secret.encode())


def split_signature(raw: str) -> tuple[str, str | None]:
    """Return (raw without its first `signature` parameter, that signature). String searches,
    not a regex: an unanchored pattern is tried at every offset of every signed request."""
    if not raw:
        return raw, None
    if raw.startswith("signature="):
        at = 0
    else:
        at = raw.find("&signature=") + 1
        if not at:
            return raw, None
    end = raw.find("&", at)
    if end < 0:
        return raw[: max(at - 1, 0)], raw[at + 10 :]
    return raw[:at] + raw[end + 1 :], raw[at + 10 : end]


def verify(
    *, query: str, body: str, secrets_by_key: dict[str, str], api_key: str | None, now_ms: int
) -> dict[str, str]:
    """Check key, signature and timing; returns the merged parameters (body wins). A request
    the compiled accepting path passes is answered by it; any other goes to verify_py, the
    definition, which also words every refusal."""
    if _signed is not None and api_key:
        secret = secrets_by_key.get(api_key)
        if secret is not None:
            params = _signed.accept(query, body, _compiled_key(secret), now_ms)
            if params is not None:
                return params
    return verify_py(
        query=query, body=body, secrets_by_key=secrets_by_key, api_key=api_key, now_ms=now_ms
    )


def verify_py(
    *, query: str, body: str, secrets_by_key: dict[str, str], api_key: str | None, now_ms: int
) -> dict[str, str]:
    if not api_key:
        raise errors.BAD_API_KEY_FORMAT
    secret = secrets_by_key.get(api_key)
    if secret is None:
        raise errors.INVALID_API_KEY
    payload, signature, params = signed_params(query, body)
    if not signature:
        raise errors.mandatory("signature")
    if not signature_matches(sign(secret, payload), signature):
        raise errors.BAD_SIGNATURE
    check_timing(params, now_ms)
    return params


def signed_params_py(query: str, body: str) -> tuple[str, str | None, dict[str, str]]:
    """The signed payload (both parts without their signature), the signature (the query's
    first, unless empty) and the parameters (the query's win over the body's). BinanceError
    -1101 for a name repeated within a part (a second signature included) or too many."""
    query_unsigned, query_sig = split_signature(query)
    body_unsigned, body_sig = split_signature(body)
    params = parse_params(query_unsigned)
    if body_unsigned:
        params = {**parse_params(body_unsigned), **params}
        if len(params) > MAX_PARAMS:
            raise errors.TOO_MANY_PARAMS
    if "signature" in params:  # a second signature in the query or in the body
        raise errors.DUPLICATE_PARAMS
    return query_unsigned + body_unsigned, query_sig or body_sig, params


def signed_params(query: str, body: str) -> tuple[str, str | None, dict[str, str]]:
    """signed_params_py, in C when built and nothing needs percent-decoding (every order a
    client like ccxt sends): one call instead of a dozen per signed request."""
    if _signed is not None:
        found = _signed.signed_params(query, body)
        if found is not None:
            return found
    return signed_params_py(query, body)


def parse_params(raw: str) -> dict[str, str]:
    """Form-encoded parameters, blank values kept: what `parse_qsl(raw, keep_blank_values=True)`
    gives, without decoding the pieces that need none (almost all of them, on every signed
    request). BinanceError -1101 for a name sent twice (after decoding) or too many names."""
    params: dict[str, str] = {}
    if not raw:
        return params
    escaped = "%" in raw or "+" in raw  # checked once: most requests have nothing to decode
    for piece in raw.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if escaped and ("%" in piece or "+" in piece):
            name, value = unquote_plus(name), unquote_plus(value)
        if name in params:
            raise errors.DUPLICATE_PARAMS
        params[name] = value
        if len(params) > MAX_PARAMS:
            raise errors.TOO_MANY_PARAMS
    return params


def signature_matches(expected_hex: str, supplied: str) -> bool:
    """A signature, in either case, against the lowercase hex one we computed. compare_digest
    raises TypeError on non-ASCII text: such a signature simply does not match."""
    supplied = supplied.lower()
    return supplied.isascii() and hmac.compare_digest(expected_hex, supplied)


def ascii_digits(text: str) -> bool:
    """Whether `text` is a number of Binance's legal range, which int() reads at once:
    str.isdigit() alone also accepts "²", and int() refuses (slowly) 4,300 digits and more."""
    return len(text) <= MAX_DIGITS and text.isascii() and text.isdigit()


def check_timing(params: dict[str, str], now_ms: int) -> None:
    raw_ts = params.get("timestamp")
    if not raw_ts:
        raise errors.mandatory("timestamp")
    if not ascii_digits(raw_ts):
        raise errors.illegal("timestamp")
    recv_window = 5000
    if "recvWindow" in params:
        if not ascii_digits(params["recvWindow"]):
            raise errors.illegal("recvWindow")
        recv_window = int(params["recvWindow"])
        if recv_window > 60_000:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
    timestamp = int(raw_ts)
    if timestamp > now_ms + 1000:
        raise BinanceError(
            -1021, "Timestamp for this request was 1000ms ahead of the server's time."
        )
    if now_ms - timestamp > recv_window:
        raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
