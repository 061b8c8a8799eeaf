"""The compiled accepting path of signed requests (replay/exchange/_signed.c) is held to the
Python definitions: whatever it accepts, the definition accepts with the same result, and it
takes on every plainly formed request, so that the venue's common case runs compiled."""

from __future__ import annotations

import hashlib
import hmac
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.exchange import _signed
from replay.exchange.auth import (
    MAX_PARAMS,
    _compiled_key,
    sign,
    signed_params_py,
    split_signature,
    verify,
    verify_py,
)
from replay.exchange.errors import BinanceError
from replay.exchange.matching import MatchingEngine
from replay.exchange.rest import new_order_args, new_order_args_py
from replay.exchange.symbols import ExchangeInfo

pytestmark = pytest.mark.unit
SECRET = "s3cret"
SECRETS = {"key": SECRET}
NOW = 1_700_000_000_000


def _python_verify(query: str, body: str, now_ms: int) -> dict[str, str] | BinanceError:
    try:
        return verify_py(
            query=query, body=body, secrets_by_key=SECRETS, api_key="key", now_ms=now_ms
        )
    except BinanceError as exc:
        return exc


# --- signed_params ----------------------------------------------------------------------------

_FORM = st.text(alphabet="ab=&%+é", max_size=12) | st.sampled_from(["signature=", "&signature="])


@given(st.lists(_FORM, max_size=6), st.lists(_FORM, max_size=6))
def test_compiled_signed_params_are_the_python_definition(
    query: list[str], body: list[str]
) -> None:
    """The C reader of a signed request (payload, signature, parameters) gives what the Python
    definition gives, or leaves the request to it (None: something to percent-decode, or a name
    sent twice, which the definition refuses or, across query and body, gives the query)."""
    raw_query, raw_body = "".join(query), "".join(body)
    got = _signed.signed_params(raw_query, raw_body)
    try:
        reference: Any = signed_params_py(raw_query, raw_body)
    except BinanceError as exc:
        reference = exc
    if got is not None:
        assert got == reference
    else:
        assert (
            "%" in raw_query + raw_body
            or "+" in raw_query + raw_body
            or (_repeated_names(raw_query, raw_body))
        )


def _repeated_names(query: str, body: str) -> bool:
    """Whether a parameter name comes twice (in a part, across the two, or as a second
    signature): what the compiled path leaves to the definition."""
    names = [
        piece.partition("=")[0]
        for part in (split_signature(query)[0], split_signature(body)[0])
        for piece in part.split("&")
        if piece
    ]
    return len(set(names)) != len(names) or "signature" in names or len(names) > MAX_PARAMS


def test_compiled_signed_params_leave_lone_surrogates_to_python() -> None:
    assert _signed.signed_params("a=\udcff&signature=x", "") is None


# --- Key: HMAC-SHA256 with prepared key states ----------------------------------------------


@settings(max_examples=500)
@given(st.binary(max_size=200), st.binary(max_size=300))
def test_the_compiled_mac_is_hmac_sha256(secret: bytes, message: bytes) -> None:
    """Keys of every length (longer than a block ones are hashed first) and any message."""
    assert _signed.Key(secret).mac(message) == hmac.new(secret, message, hashlib.sha256).digest()


@settings(max_examples=200)
@given(
    st.text(min_size=1, max_size=100),
    st.dictionaries(
        st.text(alphabet="abc0129", min_size=1, max_size=6),
        st.text(alphabet="abc=0129", max_size=8),
        max_size=10,
    ),
)
def test_a_request_signed_with_any_secret_is_accepted_with_it_only(
    secret: str, fields: dict[str, str]
) -> None:
    text = "&".join(f"{name}={value}" for name, value in fields.items())
    query = f"{text}&timestamp={NOW}&signature={sign(secret, text + f'&timestamp={NOW}')}"
    assert _signed.accept(query, "", _compiled_key(secret), NOW) is not None
    assert _signed.accept(query, "", _compiled_key(secret + "x"), NOW) is None


# --- accept: auth.verify's accepting path -----------------------------------------------------

_TIMESTAMPS = st.one_of(
    st.integers(NOW - 70_000, NOW + 2_000).map(str),
    st.sampled_from([str(NOW), str(NOW + 1000), str(NOW + 1001), str(NOW - 5000), str(NOW - 5001)]),
    st.sampled_from(["", "abc", "17e11", "²", f"{NOW}\n", "0" * 19 + str(NOW), "-1", " 1"]),
)
_WINDOWS = st.one_of(
    st.none(),
    st.integers(0, 70_000).map(str),
    st.sampled_from(["", "60000", "60001", "5000.0", "²", "0" * 20 + "1", "x"]),
)
_OTHER = st.lists(
    st.tuples(
        st.sampled_from(["symbol", "side", "quantity", "a", "signature", "timestamp", ""]),
        st.text(alphabet="AZaz09.-_~é%+ ", max_size=8),
    ),
    max_size=4,
)


@st.composite
def _signed_requests(draw: Any) -> tuple[str, str, int]:
    pairs = draw(_OTHER)
    timestamp = draw(_TIMESTAMPS)
    window = draw(_WINDOWS)
    if draw(st.booleans()):
        pairs.append(("timestamp", timestamp))
    if window is not None:
        pairs.append(("recvWindow", window))
    text = "&".join(f"{name}={value}" for name, value in pairs)
    cut = draw(st.integers(0, len(text)))
    query, body = text[:cut], text[cut:]
    signature = sign(SECRET, query + body)
    signature = draw(
        st.sampled_from(
            [
                signature,
                signature.upper(),
                signature[:-1],
                signature[:-1] + ("0" if signature[-1] != "0" else "1"),
                "",
                "zz" + signature[2:],
                sign("other", query + body),
                "é" * 64,
            ]
        )
    )
    where = draw(st.sampled_from(["query", "body", "none", "both"]))
    if where in ("query", "both"):
        query = f"{query}&signature={signature}" if query else f"signature={signature}"
    if where in ("body", "both"):
        body = f"{body}&signature={signature}" if body else f"signature={signature}"
    return query, body, NOW


@settings(max_examples=3000)
@given(_signed_requests())
def test_what_the_compiled_path_accepts_the_definition_accepts_alike(
    request: tuple[str, str, int],
) -> None:
    query, body, now_ms = request
    compiled = _signed.accept(query, body, _compiled_key(SECRET), now_ms)
    reference = _python_verify(query, body, now_ms)
    if compiled is not None:
        assert compiled == reference
    elif isinstance(reference, dict):
        # left to the definition: only what the compiled forms do not cover
        assert not _plainly_signed(query, body, reference)


_TIMESTAMP_EDGES = [
    str(NOW),
    str(NOW + 1000),
    str(NOW + 1001),
    str(NOW - 5000),
    str(NOW - 5001),
    str(NOW - 60_000),
    str(NOW - 60_001),
    "",
    "abc",
    "\u00b2",
    f"{NOW}\n",
    "0" * 5 + str(NOW),
    "9" * 18,
    "9" * 19,
    "1" + "0" * 19,  # 20 digits: Binance's longest integer
    "1" + "0" * 20,  # 21: illegal
    "9" * 5000,  # int() refuses it with a ValueError: once a 500
    "-1",
    None,
]
_WINDOW_EDGES = [
    None,
    "",
    "0",
    "5000",
    "60000",
    "60001",
    "1" * 18,
    "1" * 19,
    "1" * 20,
    "1" * 21,
    "5" * 5000,
    "5e3",
    "\u00b2",
]


def _signature_variants(good: str) -> list[str]:
    last = "0" if good[-1] != "0" else "1"
    return [good, good.upper(), good[:-1], good[:-1] + last, "", "g" + good[1:], "\u00e9" * 64]


def test_every_edge_of_the_timing_and_signature_checks_is_judged_alike() -> None:
    """Each edge of the window, the signature and where it is sent, against the definition."""
    for timestamp in _TIMESTAMP_EDGES:
        for window in _WINDOW_EDGES:
            pairs = [("symbol", "BTCUSDT"), ("quantity", "1")]
            pairs += [("timestamp", timestamp)] if timestamp is not None else []
            pairs += [("recvWindow", window)] if window is not None else []
            text = "&".join(f"{name}={value}" for name, value in pairs)
            for cut in (0, len(text) // 2, len(text)):
                query, body = text[:cut], text[cut:]
                for signature in _signature_variants(sign(SECRET, query + body)):
                    sent = f"signature={signature}"
                    _judged_alike(f"{query}&{sent}" if query else sent, body)
                    _judged_alike(query, f"{body}&{sent}" if body else sent)


def _judged_alike(query: str, body: str) -> None:
    compiled = _signed.accept(query, body, _compiled_key(SECRET), NOW)
    reference = _python_verify(query, body, NOW)
    if compiled is not None:
        assert compiled == reference, (query, body)
    elif isinstance(reference, dict):
        assert not _plainly_signed(query, body, reference), (query, body)


def _plainly_signed(query: str, body: str, params: dict[str, str]) -> bool:
    """What the compiled path must take on: nothing to decode, no name twice, a 64-digit hex
    signature and a timestamp and window of at most 18 ASCII digits."""
    if any(c in query + body for c in "%+") or not (query + body).isascii():
        return False
    if _repeated_names(query, body):
        return False
    digits = re.compile(r"[0-9]{1,18}\Z")
    window = params.get("recvWindow")
    return bool(digits.match(params["timestamp"])) and (
        window is None or bool(digits.match(window))
    )


def test_a_request_signed_as_ccxt_signs_it_is_accepted_compiled() -> None:
    body = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.001&price=50000"
    body += f"&timestamp={NOW}&recvWindow=5000"
    body += f"&signature={sign(SECRET, body)}"
    assert _signed.accept("", body, _compiled_key(SECRET), NOW) == _python_verify("", body, NOW)
    assert _signed.accept("", body, _compiled_key(SECRET), NOW) is not None


def test_a_refused_request_is_worded_by_the_definition() -> None:
    query = f"symbol=BTCUSDT&timestamp={NOW - 6000}"
    query += f"&signature={sign(SECRET, query)}"
    assert _signed.accept(query, "", _compiled_key(SECRET), NOW) is None
    with pytest.raises(BinanceError, match="outside of the recvWindow"):
        verify(query=query, body="", secrets_by_key=SECRETS, api_key="key", now_ms=NOW)


# --- order_args: rest.new_order_args's accepting path ----------------------------------------

_MATCHING = MatchingEngine(ExchangeInfo(["BTCUSDT", "ETHUSDT"]).rules, clock_ms=lambda: NOW)
_DECIMALS = st.one_of(
    st.none(),
    st.decimals(min_value=0, max_value=10**6, places=8, allow_nan=False).map(str),
    st.sampled_from(["", "1", "0.5", "1.", ".5", "1e3", "1.5\n", "٣", "1" * 21, "0." + "1" * 21]),
)


def _choice(*values: str) -> Any:
    # long s and dotless i among the letters: str.upper() makes them S and I
    letters = "BUYSELbuy_\u017f\u0131"
    return st.one_of(st.none(), st.sampled_from(values), st.text(alphabet=letters, max_size=6))


_ORDER_FIELDS = {
    "symbol": _choice("BTCUSDT", "btcusdt", "ethUSDT", "XRPUSDT", "", "btcusdt\n"),
    "side": _choice("BUY", "sell", "Sell", "", "\u017fell"),
    "type": _choice("LIMIT", "market", "LIMIT_MAKER", "STOP", ""),
    "newClientOrderId": st.one_of(
        st.none(),
        st.text(alphabet="aZ09-_ .é\n", max_size=40),
        st.sampled_from(["x" * 36, "x" * 37, "abc\n", "my-order_1"]),
    ),
    "newOrderRespType": _choice("ACK", "result", "FULL", "NONE"),
    "timeInForce": _choice("GTC", "IOC", "FOK", ""),
    "quantity": _DECIMALS,
    "quoteOrderQty": _DECIMALS,
    "price": _DECIMALS,
}


def _python_args(params: dict[str, str]) -> dict[str, Any] | BinanceError:
    try:
        return new_order_args_py(params, _MATCHING)
    except BinanceError as exc:
        return exc


@settings(max_examples=3000)
@given(st.fixed_dictionaries(_ORDER_FIELDS))
def test_what_the_compiled_order_check_accepts_the_definition_accepts_alike(
    fields: dict[str, str | None],
) -> None:
    params = {name: value for name, value in fields.items() if value is not None}
    compiled = _signed.order_args(params, _MATCHING.rules, Decimal)
    reference = _python_args(params)
    if compiled is not None:
        assert compiled == reference
        assert [type(value) for value in compiled.values()] == [
            type(value)
            for value in reference.values()  # type: ignore[union-attr]
        ]
    elif isinstance(reference, dict):
        assert not _plain_order(params)


_VALID_ORDER = {
    "symbol": "btcusdt",
    "side": "buy",
    "type": "LIMIT",
    "newClientOrderId": "my-order_1",
    "newOrderRespType": "ack",
    "timeInForce": "GTC",
    "quantity": "0.5",
    "price": "100.25",
}
_ORDER_EDGES: dict[str, list[str | None]] = {
    "symbol": [None, "", "BTCUSDT", "ETHUSDT", "XRPUSDT", "btcusdt\n", "\u0131"],
    "side": [None, "", "SELL", "Sell", "\u017fell", "HOLD"],
    "type": [None, "", "MARKET", "market", "LIMIT_MAKER", "STOP"],
    "newClientOrderId": [None, "", "x" * 36, "x" * 37, "abc\n", "a b", "\u00e9"],
    "newOrderRespType": [None, "", "RESULT", "full", "NONE"],
    "timeInForce": [None, "", "IOC", "fok"],
    "quantity": [None, "", "1", "1.", ".5", "1e3", "1.5\n", "1" * 20, "1" * 21],
    "quoteOrderQty": [None, "", "10", "0." + "1" * 20, "0." + "1" * 21, "-1"],
    "price": [None, "", "100", "1" * 20 + ".5", "\u0663", "1,5"],
}


def test_every_edge_of_an_order_alone_and_in_pairs_is_judged_alike() -> None:
    """Each field's edges on an otherwise right order, alone and with every other field's."""
    names = list(_ORDER_EDGES)
    for i, first in enumerate(names):
        for first_value in _ORDER_EDGES[first]:
            _order_judged_alike({first: first_value})
            for second in names[i + 1 :]:
                for second_value in _ORDER_EDGES[second]:
                    _order_judged_alike({first: first_value, second: second_value})


def _order_judged_alike(changes: dict[str, str | None]) -> None:
    merged = {**_VALID_ORDER, **changes}
    params = {name: value for name, value in merged.items() if value is not None}
    compiled = _signed.order_args(params, _MATCHING.rules, Decimal)
    reference = _python_args(params)
    if compiled is not None:
        assert compiled == reference, params
    elif isinstance(reference, dict):
        assert not _plain_order(params), params


def _plain_order(params: dict[str, str]) -> bool:
    """What the compiled check must take on: ASCII fields, an own client id, and prices and
    quantities without the trailing newline that the definition's `$` lets through."""
    return all(value.isascii() and "\n" not in value for value in params.values()) and bool(
        params.get("newClientOrderId")
    )


def test_an_order_as_ccxt_sends_it_is_checked_compiled() -> None:
    params = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.001",
        "price": "50000.00",
        "newClientOrderId": "x-R4BD3S82abc",
        "newOrderRespType": "ACK",
    }
    compiled = _signed.order_args(params, _MATCHING.rules, Decimal)
    assert compiled is not None
    assert compiled == new_order_args_py(params, _MATCHING)
    assert new_order_args(params, _MATCHING) == compiled


def test_an_order_without_its_own_client_id_is_numbered_by_the_definition() -> None:
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"}
    assert _signed.order_args(params, _MATCHING.rules, Decimal) is None
    assert new_order_args(params, _MATCHING)["client_order_id"] == "sim-1"


# --- malformed parameters: Binance's codes, from both paths ------------------------------------


def _signed_query(text: str) -> str:
    return f"{text}&signature={sign(SECRET, text)}"


@pytest.mark.parametrize(
    ("query", "body", "code", "message"),
    [
        (f"side=BUY&side=SELL&timestamp={NOW}", "", -1101, "Duplicate values"),
        ("", f"side=BUY&side=SELL&timestamp={NOW}", -1101, "Duplicate values"),
        (f"s%69de=BUY&side=SELL&timestamp={NOW}", "", -1101, "Duplicate values"),
        (f"timestamp={NOW}&timestamp={NOW}", "", -1101, "Duplicate values"),
        (
            "&".join(f"p{i}=1" for i in range(MAX_PARAMS)) + f"&timestamp={NOW}",
            "",
            -1101,
            "Too many parameters",
        ),
        (f"timestamp={NOW}&recvWindow={'5' * 5000}", "", -1100, "recvWindow"),
        (f"timestamp={'1' * 5000}", "", -1100, "timestamp"),
        (f"timestamp={'1' * 21}", "", -1100, "timestamp"),
    ],
)
def test_malformed_parameters_get_binances_codes_and_the_compiled_path_leaves_them(
    query: str, body: str, code: int, message: str
) -> None:
    if body:
        body = _signed_query(body)
    else:
        query = _signed_query(query)
    assert _signed.accept(query, body, _compiled_key(SECRET), NOW) is None
    if code == -1101:  # the compiled reader leaves a repeated name or too many to the definition
        assert _signed.signed_params(query, body) is None
    refused = _python_verify(query, body, NOW)
    assert isinstance(refused, BinanceError)
    assert (refused.code, refused.status) == (code, 400)
    assert message in refused.msg


def test_a_second_signature_in_a_part_is_a_duplicate() -> None:
    text = f"symbol=BTCUSDT&timestamp={NOW}"
    good = sign(SECRET, text)
    query = f"{text}&signature={good}&signature={good}"
    assert _signed.accept(query, "", _compiled_key(SECRET), NOW) is None
    refused = _python_verify(query, "", NOW)
    assert isinstance(refused, BinanceError) and refused.code == -1101


def test_a_name_in_both_query_and_body_takes_the_querys_value() -> None:
    """Binance: "If a parameter sent in both the query string and request body, the query
    string parameter will be used"; the compiled path leaves such a request to the definition."""
    query, body = f"side=BUY&timestamp={NOW}", "side=SELL&quantity=1"
    body = f"{body}&signature={sign(SECRET, query + body)}"
    assert _signed.accept(query, body, _compiled_key(SECRET), NOW) is None
    params = _python_verify(query, body, NOW)
    assert isinstance(params, dict) and params["side"] == "BUY" and params["quantity"] == "1"
