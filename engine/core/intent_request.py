"""Order intents from external signal sources: request validation, pure.

`decode_intent_request` turns the raw body of `POST /intents` into the same `Intent` a strategy
emits, or an `IntakeRejection` that names the field at fault (400 for a body that is not a JSON
object, 422 for a value that is wrong). `validate_intent_request` does the same for a body that
is already parsed. `payload_fingerprint` hashes what the caller asked for (not when, nor at what
reference price), so that a retry of the same request under the same intent id is recognised as
a duplicate and the same id with another payload as a conflict.

The request, every field but the first five optional:

    intent_id       ^[A-Za-z0-9_-]{1,64}$: the caller's idempotency key, and the intent id
                    (execution derives the clientOrderId from it)
    symbol          one of the configured venue symbols, exactly as configured
    side            "BUY" | "SELL"
    qty             a positive decimal: a string like "0.001" (preferred) or a JSON number
    order_type      "MARKET" | "LIMIT" | "LIMIT_MAKER"
    limit_price     a positive decimal; required for LIMIT and LIMIT_MAKER, refused for MARKET
    time_in_force   "GTC" (default) | "IOC" | "FOK"; LIMIT only
    reduce_only     true | false (default false)
    algo            "" (default: one order) | "maker_first" | "split" | "twap"
    algo_params     {name: number or string}, checked as execution will check them
    source          a label, ^[A-Za-z0-9_.-]{1,32}$ (default "intake"); the intent's source is
                    "intake:<label>", so risk, execution and the logs can tell intake from a
                    strategy
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Collection, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

import msgspec

from engine.core.algos import Instrument, make_algo
from engine.core.errors import AlgoParamsError
from engine.core.messages import Intent, OrderType, Side, TimeInForce

SOURCE_PREFIX: Final = "intake:"
DEFAULT_SOURCE_LABEL: Final = "intake"
INTENT_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
SOURCE_LABEL_PATTERN: Final = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_DECIMAL_TEXT: Final = re.compile(r"[0-9]{1,30}(\.[0-9]{1,30})?|\.[0-9]{1,30}")

REQUIRED_FIELDS: Final = ("intent_id", "symbol", "side", "qty", "order_type")
OPTIONAL_FIELDS: Final = (
    "limit_price",
    "time_in_force",
    "reduce_only",
    "algo",
    "algo_params",
    "source",
)
ALGOS: Final = ("", "maker_first", "split", "twap")
_PRICED = (OrderType.LIMIT, OrderType.LIMIT_MAKER)
_ANY_INSTRUMENT: Final = Instrument(tick_size=Decimal("1e-8"), lot_size=Decimal("1e-8"))
"""The loosest venue rules: algo params are checked here for shape and range only; execution
checks them again against the real instrument."""


class IntakeRejection(msgspec.Struct, frozen=True, kw_only=True):
    """Why a request cannot become an intent; `field` is "" when the body as a whole is wrong."""

    status: int
    """400: not a JSON object; 422: a field is missing, unknown or has a wrong value."""
    field: str
    reason: str

    @property
    def message(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


def _malformed(reason: str) -> IntakeRejection:
    return IntakeRejection(status=400, field="", reason=reason)


def _invalid(field: str, reason: str) -> IntakeRejection:
    return IntakeRejection(status=422, field=field, reason=reason)


class _DuplicateKey(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode_intent_request(
    raw: bytes,
    *,
    venue: str,
    symbols: Collection[str],
    now_ns: int,
    reference_prices: Mapping[str, float] | None = None,
) -> Intent | IntakeRejection:
    """Parse and validate a request body (see the module docstring)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _malformed("malformed JSON: the body is not UTF-8")
    try:
        body = json.loads(
            text, object_pairs_hook=_object_without_duplicates, parse_constant=_no_constants
        )
    except _DuplicateKey as exc:
        return _malformed(f"malformed JSON: duplicate key {exc.args[0]!r}")
    except RecursionError:
        return _malformed("malformed JSON: nested too deeply")
    except ValueError as exc:
        return _malformed(f"malformed JSON: {exc}")
    return validate_intent_request(
        body, venue=venue, symbols=symbols, now_ns=now_ns, reference_prices=reference_prices
    )


def _decimal(field: str, value: object) -> Decimal | IntakeRejection:
    """A positive finite decimal from a plain decimal string or a JSON number."""
    if isinstance(value, str):
        if not _DECIMAL_TEXT.fullmatch(value):
            return _invalid(field, f"must be a positive decimal string like '0.001', got {value!r}")
        number = Decimal(value)
    elif isinstance(value, bool) or not isinstance(value, int | float):
        return _invalid(field, f"must be a decimal string or a number, got {type(value).__name__}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            return _invalid(field, f"must be finite, got {value!r}")
        try:
            number = Decimal(repr(value))
        except InvalidOperation:  # pragma: no cover - repr of a finite float always parses
            return _invalid(field, f"must be a decimal number, got {value!r}")
    else:
        number = Decimal(value)
    if not number.is_finite() or number <= 0:
        return _invalid(field, f"must be positive, got {value!r}")
    return number


def _choice(field: str, value: object, options: tuple[str, ...]) -> str | IntakeRejection:
    if not isinstance(value, str) or value not in options:
        return _invalid(field, f"must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def validate_intent_request(
    body: object,
    *,
    venue: str,
    symbols: Collection[str],
    now_ns: int,
    reference_prices: Mapping[str, float] | None = None,
) -> Intent | IntakeRejection:
    """Turn a parsed JSON body into an Intent, or say which field is wrong and why.

    The intent is created at `now_ns`; its reference price is the caller's last known mid of
    the symbol (`reference_prices`), 0.0 when unknown (risk then values it at its own mid).
    """
    if not isinstance(body, dict):
        return _malformed(f"the body must be a JSON object, got {_json_type(body)}")
    unknown = sorted(set(body) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        return _invalid(
            unknown[0],
            f"unknown field (known: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)})",
        )
    for name in REQUIRED_FIELDS:
        if name not in body:
            return _invalid(name, "is required")

    intent_id = body["intent_id"]
    if not isinstance(intent_id, str) or not INTENT_ID_PATTERN.fullmatch(intent_id):
        return _invalid(
            "intent_id",
            f"must be 1 to 64 letters, digits, '-' or '_', got {_short(intent_id)}",
        )
    symbol = body["symbol"]
    if not isinstance(symbol, str) or symbol not in symbols:
        return _invalid(
            "symbol", f"must be one of the venue's symbols {sorted(symbols)}, got {_short(symbol)}"
        )
    side = _choice("side", body["side"], tuple(s.value for s in Side))
    if isinstance(side, IntakeRejection):
        return side
    qty = _decimal("qty", body["qty"])
    if isinstance(qty, IntakeRejection):
        return qty
    order_type_name = _choice("order_type", body["order_type"], tuple(t.value for t in OrderType))
    if isinstance(order_type_name, IntakeRejection):
        return order_type_name
    order_type = OrderType(order_type_name)

    limit_price: Decimal | None = None
    if order_type in _PRICED:
        if body.get("limit_price") is None:
            return _invalid("limit_price", f"is required for a {order_type} order")
        price = _decimal("limit_price", body["limit_price"])
        if isinstance(price, IntakeRejection):
            return price
        limit_price = price
    elif "limit_price" in body:
        return _invalid("limit_price", f"is not allowed for a {order_type} order")

    time_in_force = TimeInForce.GTC
    if "time_in_force" in body:
        if order_type is not OrderType.LIMIT:
            return _invalid("time_in_force", f"applies to LIMIT orders only, not {order_type}")
        tif = _choice("time_in_force", body["time_in_force"], tuple(t.value for t in TimeInForce))
        if isinstance(tif, IntakeRejection):
            return tif
        time_in_force = TimeInForce(tif)

    reduce_only = body.get("reduce_only", False)
    if not isinstance(reduce_only, bool):
        return _invalid("reduce_only", f"must be true or false, got {_short(reduce_only)}")

    algo = _choice("algo", body.get("algo", ""), ALGOS)
    if isinstance(algo, IntakeRejection):
        return algo
    algo_params = _algo_params(body.get("algo_params", {}), algo)
    if isinstance(algo_params, IntakeRejection):
        return algo_params

    label = body.get("source", DEFAULT_SOURCE_LABEL)
    if not isinstance(label, str) or not SOURCE_LABEL_PATTERN.fullmatch(label):
        return _invalid(
            "source", f"must be 1 to 32 letters, digits, '.', '-' or '_', got {_short(label)}"
        )

    reference = (reference_prices or {}).get(symbol, 0.0)
    intent = Intent(
        correlation_id=f"{SOURCE_PREFIX}{intent_id}",
        intent_id=intent_id,
        source=f"{SOURCE_PREFIX}{label}",
        venue=venue,
        symbol=symbol,
        side=Side(side),
        qty=qty,
        order_type=order_type,
        limit_price=limit_price,
        time_in_force=time_in_force,
        reduce_only=reduce_only,
        created_ts_ns=now_ns,
        reference_price=reference if math.isfinite(reference) and reference > 0 else 0.0,
        algo=algo,  # type: ignore[arg-type]  # one of ALGOS, checked above
        algo_params=algo_params,
    )
    if algo:
        try:
            make_algo(intent, start_ns=now_ns, instrument=_ANY_INSTRUMENT)
        except AlgoParamsError as exc:
            return _invalid("algo_params", str(exc))
    return intent


def _algo_params(value: object, algo: str) -> dict[str, float | int | str] | IntakeRejection:
    if not isinstance(value, dict):
        return _invalid("algo_params", f"must be a JSON object, got {_json_type(value)}")
    if value and not algo:
        return _invalid("algo_params", "are only allowed with an algo")
    out: dict[str, float | int | str] = {}
    for name, param in value.items():
        if isinstance(param, bool) or not isinstance(param, int | float | str):
            return _invalid(
                "algo_params",
                f"param {name!r} must be a number or a string, got {_json_type(param)}",
            )
        if isinstance(param, float) and not math.isfinite(param):
            return _invalid("algo_params", f"param {name!r} must be finite")
        out[name] = param
    return out


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _plain(number: Decimal) -> str:
    """One spelling per value: 0.0010, 0.001 and 1E-3 all become '0.001'."""
    return format(number.normalize(), "f")


def payload_fingerprint(intent: Intent) -> str:
    """SHA-256 (hex) of what was asked: the request's fields in one canonical spelling.

    The creation time and the reference price are not part of it: they describe when the
    request arrived, not what it asked for.
    """
    params: dict[str, str] = {}
    for name, value in intent.algo_params.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            params[name] = _plain(Decimal(repr(value)))
        else:
            params[name] = str(value)
    canonical = {
        "intent_id": intent.intent_id,
        "source": intent.source,
        "venue": intent.venue,
        "symbol": intent.symbol,
        "side": intent.side.value,
        "qty": _plain(intent.qty),
        "order_type": intent.order_type.value,
        "limit_price": None if intent.limit_price is None else _plain(intent.limit_price),
        "time_in_force": intent.time_in_force.value,
        "reduce_only": intent.reduce_only,
        "algo": intent.algo,
        "algo_params": params,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class IntakeRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the intake stores under an intent id (the idempotency record)."""

    intent_id: str
    payload_sha256: str
    accepted_ts_ns: int
    state: Literal["pending", "accepted"]
    """"pending" while the intent is being published, "accepted" once it is on the bus."""

    def encode(self) -> bytes:
        return msgspec.json.encode(self)

    @staticmethod
    def decode(raw: bytes) -> IntakeRecord | None:
        try:
            return msgspec.json.decode(raw, type=IntakeRecord)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
