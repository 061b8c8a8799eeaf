"""Signed requests as Binance checks them: the signature over query and body, its Binance error
codes, and input outside ASCII refused, never a crash (replay/exchange/auth.py)."""

import re
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replay.exchange.auth import parse_params, sign, split_signature, verify
from replay.exchange.errors import BinanceError

pytestmark = pytest.mark.unit
SECRETS = {"key": "secret"}
NOW = 1_700_000_000_000


def signed(query: str, body: str = "", secret: str = "secret") -> tuple[str, str]:
    signature = sign(secret, query + body)
    if body:
        return query, f"{body}&signature={signature}"
    return f"{query}&signature={signature}", body


def test_signature_over_query_and_body_verifies() -> None:
    query, body = signed("symbol=BTCUSDT", f"side=BUY&timestamp={NOW}")
    params = verify(query=query, body=body, secrets_by_key=SECRETS, api_key="key", now_ms=NOW)
    assert params == {"symbol": "BTCUSDT", "side": "BUY", "timestamp": str(NOW)}


@pytest.mark.parametrize(
    ("api_key", "secret", "timestamp", "code"),
    [
        (None, "secret", NOW, -2014),
        ("other", "secret", NOW, -2015),
        ("key", "wrong", NOW, -1022),
        ("key", "secret", NOW + 5_000, -1021),
        ("key", "secret", NOW - 6_000, -1021),
    ],
)
def test_auth_failures_use_binance_codes(
    api_key: str | None, secret: str, timestamp: int, code: int
) -> None:
    query, body = signed(f"symbol=BTCUSDT&timestamp={timestamp}", secret=secret)
    with pytest.raises(BinanceError) as error:
        verify(query=query, body=body, secrets_by_key=SECRETS, api_key=api_key, now_ms=NOW)
    assert error.value.code == code


@pytest.mark.parametrize(
    "extra", ["timestamp=\u00b2", f"timestamp={NOW}&recvWindow=\u00b2", "timestamp=\u0661\u0662"]
)
def test_digits_outside_ascii_are_illegal_characters_not_a_crash(extra: str) -> None:
    query, body = signed(f"symbol=BTCUSDT&{extra}")
    with pytest.raises(BinanceError) as error:
        verify(query=query, body=body, secrets_by_key=SECRETS, api_key="key", now_ms=NOW)
    assert error.value.code == -1100


def test_order_references_and_weights_refuse_or_ignore_non_ascii_digits() -> None:
    from replay.exchange.rest import order_ref, request_weight

    with pytest.raises(BinanceError) as error:
        order_ref({"orderId": "\u00b2"})
    assert error.value.code == -1100
    assert request_weight("GET", "/api/v3/depth", lambda: {"limit": "\u00b2"}) == 5


def test_a_signature_outside_ascii_is_invalid_not_a_crash() -> None:
    with pytest.raises(BinanceError) as error:
        verify(
            query=f"symbol=BTCUSDT&timestamp={NOW}&signature=\u00e9",
            body="",
            secrets_by_key=SECRETS,
            api_key="key",
            now_ms=NOW,
        )
    assert error.value.code == -1022


def test_tampered_parameters_break_the_signature() -> None:
    query, _ = signed(f"symbol=BTCUSDT&quantity=1&timestamp={NOW}")
    with pytest.raises(BinanceError, match="Signature"):
        verify(
            query=query.replace("quantity=1", "quantity=9"),
            body="",
            secrets_by_key=SECRETS,
            api_key="key",
            now_ms=NOW,
        )


def test_split_signature_anywhere() -> None:
    assert split_signature("a=1&signature=abc&b=2") == ("a=1&b=2", "abc")
    assert split_signature("signature=abc&b=2") == ("b=2", "abc")
    assert split_signature("a=1&signature=abc") == ("a=1", "abc")
    assert split_signature("signature=abc") == ("", "abc")
    assert split_signature("a=1") == ("a=1", None)
    assert split_signature("xsignature=abc") == ("xsignature=abc", None)


def split_signature_reference(raw: str) -> tuple[str, str | None]:
    """The definition: remove the first parameter named `signature` and the `&` that joined
    it to its neighbours."""
    match = re.search(r"(^|&)signature=([^&]*)", raw)
    if match is None:
        return raw, None
    after = raw[match.end() :] if match.group(1) else raw[match.end() + 1 :]
    return raw[: match.start()] + after, match.group(2)


@given(
    st.lists(
        st.sampled_from(["signature=ab1", "signature=", "a=1", "xsignature=2", "", "b", "s=&"]),
        max_size=6,
    )
)
def test_split_signature_matches_its_definition(pieces: list[str]) -> None:
    raw = "&".join(pieces)
    assert split_signature(raw) == split_signature_reference(raw)


@given(st.text(alphabet="ab=&%+2B0F x", max_size=40))
def test_signed_parameters_parse_as_the_standard_library_parses_a_form(raw: str) -> None:
    pairs = parse_qsl(raw, keep_blank_values=True)
    names = [name for name, _ in pairs]
    if len(set(names)) < len(names):  # Binance refuses a parameter sent twice: -1101
        with pytest.raises(BinanceError) as refused:
            parse_params(raw)
        assert refused.value.code == -1101
    else:
        assert parse_params(raw) == dict(pairs)
