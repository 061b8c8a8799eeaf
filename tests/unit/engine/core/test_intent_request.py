"""The intake's pure request validation, its idempotency fingerprint, and its configuration."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from engine.config import load_settings, parse_config
from engine.core.errors import ConfigError
from engine.core.intent_request import (
    IntakeRecord,
    IntakeRejection,
    decode_intent_request,
    payload_fingerprint,
    validate_intent_request,
)
from engine.core.messages import Intent, OrderType, Side, TimeInForce
from engine.strategy.registry import STRATEGY_PARAMS

pytestmark = pytest.mark.unit

NOW = 1_700_000_000_123_456_789
SYMBOLS = frozenset({"BTCUSDT", "ETHUSDT"})
MARKET: dict[str, Any] = {
    "intent_id": "sig-123",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "qty": "0.001",
    "order_type": "MARKET",
}
LIMIT: dict[str, Any] = {
    "intent_id": "sig_124",
    "symbol": "ETHUSDT",
    "side": "SELL",
    "qty": "0.5",
    "order_type": "LIMIT",
    "limit_price": "2500.25",
    "time_in_force": "IOC",
    "reduce_only": True,
    "algo": "split",
    "algo_params": {"max_child_qty": "0.1", "max_concurrent": 2},
    "source": "desk.alpha-1",
}


def validate(body: object, mids: dict[str, float] | None = None) -> Intent | IntakeRejection:
    return validate_intent_request(
        body, venue="binance", symbols=SYMBOLS, now_ns=NOW, reference_prices=mids
    )


def decode(raw: bytes) -> Intent | IntakeRejection:
    return decode_intent_request(raw, venue="binance", symbols=SYMBOLS, now_ns=NOW)


def test_a_market_request_becomes_the_intent_a_strategy_would_emit() -> None:
    intent = validate(MARKET, mids={"BTCUSDT": 60_000.5})
    assert isinstance(intent, Intent)
    assert intent.intent_id == "sig-123" and intent.action == "new"
    assert intent.source == "intake:intake", "the source says it came through the intake"
    assert intent.correlation_id == "intake:sig-123"
    assert intent.venue == "binance" and intent.symbol == "BTCUSDT"
    assert intent.side is Side.BUY and intent.qty == Decimal("0.001")
    assert intent.order_type is OrderType.MARKET and intent.limit_price is None
    assert intent.time_in_force is TimeInForce.GTC and intent.reduce_only is False
    assert intent.created_ts_ns == NOW
    assert intent.reference_price == 60_000.5, "stamped with the last known mid"
    assert intent.algo == "" and intent.algo_params == {}


def test_a_limit_request_with_every_option() -> None:
    intent = validate(LIMIT)
    assert isinstance(intent, Intent)
    assert intent.side is Side.SELL and intent.qty == Decimal("0.5")
    assert intent.order_type is OrderType.LIMIT and intent.limit_price == Decimal("2500.25")
    assert intent.time_in_force is TimeInForce.IOC and intent.reduce_only is True
    assert intent.algo == "split" and intent.algo_params == {
        "max_child_qty": "0.1",
        "max_concurrent": 2,
    }
    assert intent.source == "intake:desk.alpha-1"
    assert intent.reference_price == 0.0, "no mid known: 0, and risk values it at its own mid"


def test_json_numbers_are_read_as_the_decimal_they_spell() -> None:
    intent = decode(json.dumps({**MARKET, "qty": 0.001}).encode())
    assert isinstance(intent, Intent) and intent.qty == Decimal("0.001")
    intent = decode(json.dumps({**MARKET, "qty": 2}).encode())
    assert isinstance(intent, Intent) and intent.qty == Decimal(2)


def test_a_limit_maker_needs_a_price_and_takes_no_time_in_force() -> None:
    body = {**MARKET, "order_type": "LIMIT_MAKER", "limit_price": "100"}
    intent = validate(body)
    assert isinstance(intent, Intent) and intent.order_type is OrderType.LIMIT_MAKER


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"colour": "red"}, "colour", "unknown field"),
        ({"intent_id": None}, "intent_id", "letters, digits"),
        ({"intent_id": ""}, "intent_id", "1 to 64"),
        ({"intent_id": "a" * 65}, "intent_id", "1 to 64"),
        ({"intent_id": "has.dot"}, "intent_id", "letters, digits"),
        ({"intent_id": "space here"}, "intent_id", "letters, digits"),
        ({"intent_id": "trailing-newline\n"}, "intent_id", "letters, digits"),
        ({"intent_id": 123}, "intent_id", "letters, digits"),
        ({"symbol": "DOGEUSDT"}, "symbol", "venue's symbols"),
        ({"symbol": "btcusdt"}, "symbol", "venue's symbols"),
        ({"symbol": ["BTCUSDT"]}, "symbol", "venue's symbols"),
        ({"side": "buy"}, "side", "'BUY', 'SELL'"),
        ({"side": "HOLD"}, "side", "'BUY', 'SELL'"),
        ({"qty": "0"}, "qty", "positive"),
        ({"qty": "-1"}, "qty", "positive decimal string"),
        ({"qty": 0}, "qty", "positive"),
        ({"qty": -0.5}, "qty", "positive"),
        ({"qty": "abc"}, "qty", "decimal string"),
        ({"qty": "NaN"}, "qty", "decimal string"),
        ({"qty": "Infinity"}, "qty", "decimal string"),
        ({"qty": "1e-3"}, "qty", "decimal string"),
        ({"qty": " 1"}, "qty", "decimal string"),
        ({"qty": True}, "qty", "decimal string or a number"),
        ({"qty": None}, "qty", "decimal string or a number"),
        ({"qty": float("inf")}, "qty", "finite"),
        ({"order_type": "STOP"}, "order_type", "'MARKET', 'LIMIT'"),
        ({"order_type": "market"}, "order_type", "'MARKET', 'LIMIT'"),
        ({"limit_price": "100"}, "limit_price", "not allowed for a MARKET"),
        ({"limit_price": None}, "limit_price", "not allowed for a MARKET"),
        ({"order_type": "LIMIT"}, "limit_price", "required for a LIMIT"),
        ({"order_type": "LIMIT", "limit_price": "0"}, "limit_price", "positive"),
        ({"order_type": "LIMIT", "limit_price": "-5"}, "limit_price", "decimal string"),
        ({"order_type": "LIMIT", "limit_price": "x"}, "limit_price", "decimal string"),
        (
            {"order_type": "LIMIT", "limit_price": "1", "time_in_force": "GTX"},
            "time_in_force",
            "'GTC', 'IOC', 'FOK'",
        ),
        ({"time_in_force": "IOC"}, "time_in_force", "LIMIT orders only"),
        (
            {"order_type": "LIMIT_MAKER", "limit_price": "1", "time_in_force": "GTC"},
            "time_in_force",
            "LIMIT orders only",
        ),
        ({"reduce_only": "true"}, "reduce_only", "true or false"),
        ({"reduce_only": 1}, "reduce_only", "true or false"),
        ({"algo": "vwap"}, "algo", "'maker_first'"),
        ({"algo": None}, "algo", "'maker_first'"),
        ({"algo_params": {"timeout_ms": 5}}, "algo_params", "only allowed with an algo"),
        ({"algo": "twap", "algo_params": []}, "algo_params", "JSON object"),
        ({"algo": "twap", "algo_params": {}}, "algo_params", "'duration_ms' is required"),
        (
            {"algo": "twap", "algo_params": {"duration_ms": 1000, "speed": 2}},
            "algo_params",
            "unknown param 'speed'",
        ),
        (
            {"algo": "maker_first", "algo_params": {"timeout_ms": True}},
            "algo_params",
            "number or a string",
        ),
        (
            {"algo": "maker_first", "algo_params": {"timeout_ms": {"ms": 1}}},
            "algo_params",
            "number or a string",
        ),
        (
            {"algo": "maker_first", "algo_params": {"urgency": "now"}},
            "algo_params",
            "'urgency' must be one of",
        ),
        ({"source": ""}, "source", "1 to 32"),
        ({"source": "has space"}, "source", "1 to 32"),
        ({"source": "x" * 33}, "source", "1 to 32"),
        ({"source": 7}, "source", "1 to 32"),
    ],
)
def test_every_wrong_field_is_refused_with_a_message_naming_it(
    changes: dict[str, Any], field: str, fragment: str
) -> None:
    rejection = validate({**MARKET, **changes})
    assert isinstance(rejection, IntakeRejection), rejection
    assert rejection.status == 422
    assert rejection.field == field
    assert fragment in rejection.reason, rejection.reason
    assert rejection.message.startswith(f"{field}: ")


@pytest.mark.parametrize("missing", ["intent_id", "symbol", "side", "qty", "order_type"])
def test_a_missing_required_field_is_named(missing: str) -> None:
    body = {k: v for k, v in MARKET.items() if k != missing}
    rejection = validate(body)
    assert isinstance(rejection, IntakeRejection)
    assert (rejection.status, rejection.field, rejection.reason) == (422, missing, "is required")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "malformed JSON"),
        (b"{", "malformed JSON"),
        (b"not json", "malformed JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"qty": NaN}', "NaN is not a JSON number"),
        (b'{"qty": Infinity}', "Infinity is not a JSON number"),
        (b'{"intent_id": "a", "intent_id": "b"}', "duplicate key 'intent_id'"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b"[]", "must be a JSON object, got an array"),
        (b'"text"', "must be a JSON object, got a string"),
        (b"null", "must be a JSON object, got null"),
        (b"42", "must be a JSON object, got a number"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_400(raw: bytes, fragment: str) -> None:
    rejection = decode(raw)
    assert isinstance(rejection, IntakeRejection)
    assert rejection.status == 400 and rejection.field == ""
    assert fragment in rejection.message, rejection.message


def test_the_fingerprint_is_what_was_asked_in_one_spelling() -> None:
    base = validate(MARKET)
    assert isinstance(base, Intent)
    same = [
        validate({**MARKET, "qty": "0.0010"}),
        validate({**MARKET, "qty": 0.001}),
        validate({**MARKET, "reduce_only": False, "source": "intake"}),
        validate_intent_request(
            MARKET, venue="binance", symbols=SYMBOLS, now_ns=NOW + 10**9, reference_prices={}
        ),
        validate(MARKET, mids={"BTCUSDT": 1.0}),
    ]
    for other in same:
        assert isinstance(other, Intent)
        assert payload_fingerprint(other) == payload_fingerprint(base)
    different = [
        {**MARKET, "side": "SELL"},
        {**MARKET, "qty": "0.002"},
        {**MARKET, "symbol": "ETHUSDT"},
        {**MARKET, "reduce_only": True},
        {**MARKET, "source": "other"},
        {**MARKET, "intent_id": "sig-999"},
        {**MARKET, "order_type": "LIMIT", "limit_price": "1"},
        {**MARKET, "algo": "maker_first"},
    ]
    for body in different:
        other = validate(body)
        assert isinstance(other, Intent)
        assert payload_fingerprint(other) != payload_fingerprint(base), body
    assert len(payload_fingerprint(base)) == 64


def test_algo_params_spellings_of_one_number_share_a_fingerprint() -> None:
    a = validate({**MARKET, "algo": "twap", "algo_params": {"duration_ms": 1000}})
    b = validate({**MARKET, "algo": "twap", "algo_params": {"duration_ms": 1000.0}})
    c = validate({**MARKET, "algo": "twap", "algo_params": {"duration_ms": 2000}})
    assert isinstance(a, Intent) and isinstance(b, Intent) and isinstance(c, Intent)
    assert payload_fingerprint(a) == payload_fingerprint(b) != payload_fingerprint(c)


def test_the_record_round_trips_and_garbage_is_not_a_record() -> None:
    record = IntakeRecord(intent_id="a", payload_sha256="f" * 64, accepted_ts_ns=5, state="pending")
    assert IntakeRecord.decode(record.encode()) == record
    assert IntakeRecord.decode(b"not json") is None
    assert IntakeRecord.decode(b'{"intent_id": "a"}') is None


# --- configuration --------------------------------------------------------------------------

MINIMAL = b"""
[venue]
ws_urls = ["ws://127.0.0.1:1"]
rest_url = "http://127.0.0.1:2"
symbols = ["BTCUSDT"]
"""


def test_intake_defaults_are_on_but_closed_without_a_token(tmp_path: Any) -> None:
    config = parse_config(MINIMAL, strategy_params=STRATEGY_PARAMS)
    assert config.intake.enabled is True
    assert config.intake.token_env == "STORMPROOF_INTAKE_TOKEN"
    assert config.intake.token_env != config.ops.token_env
    assert config.intake.max_body_bytes == 16_384 and config.intake.dedupe_ttl_s == 86_400
    path = tmp_path / "engine.toml"
    path.write_bytes(MINIMAL)
    settings = load_settings(path, env={}, strategy_params=STRATEGY_PARAMS)
    assert not settings.secrets.intake_token


def test_the_intake_token_is_read_once_as_a_secret(tmp_path: Any) -> None:
    path = tmp_path / "engine.toml"
    path.write_bytes(MINIMAL + b'[intake]\ntoken_env = "MY_INTAKE"\nmax_in_flight = 4\n')
    settings = load_settings(
        path, env={"MY_INTAKE": "intake-secret-value-42"}, strategy_params=STRATEGY_PARAMS
    )
    assert settings.config.intake.max_in_flight == 4
    assert settings.secrets.intake_token.reveal() == "intake-secret-value-42"
    assert "intake-secret-value-42" in settings.secrets.values(), "registered for redaction"
    assert "intake-secret-value-42" not in repr(settings.secrets)


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ('token_env = ""', "intake.token_env"),
        ('token_env = "STORMPROOF_OPS_TOKEN"', "must differ from ops.token_env"),
        ("max_body_bytes = 10", "intake.max_body_bytes"),
        ("dedupe_ttl_s = 5", "intake.dedupe_ttl_s"),
        ("max_in_flight = 0", "intake.max_in_flight"),
        ("pending_ttl_s = 0", "intake.pending_ttl_s"),
        ("dedupe_ttl_s = 60\npending_ttl_s = 60", "intake.pending_ttl_s"),
        ("max_body_bytes = 1024.5", "max_body_bytes"),
        ("colour = 1", "colour"),
    ],
)
def test_bad_intake_config_is_a_one_line_error(section: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match="invalid config") as info:
        parse_config(MINIMAL + f"[intake]\n{section}\n".encode(), strategy_params=STRATEGY_PARAMS)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)
