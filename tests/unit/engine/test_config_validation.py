"""Config that cannot arm a bomb: every field refuses NaN, Infinity, negative sizes, bad ports and
URLs with a message naming the field, `check-config` reports every bad field at once, and no
hostile value gets through as anything but a sane config or a ConfigError."""

from __future__ import annotations

import datetime
import json
import math
import re
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.__main__ import main
from engine.config import (
    ConfigProblems,
    DecimalRange,
    EngineConfig,
    Rule,
    Url,
    describe,
    load_settings,
    parse_config,
)
from engine.core.errors import ConfigError
from engine.strategy.registry import KINDS, STRATEGY_PARAMS
from harness.tools import PROJECT_ROOT

pytestmark = pytest.mark.unit

MINIMAL: dict[str, Any] = {
    "venue": {
        "ws_urls": ["ws://127.0.0.1:1"],
        "rest_url": "http://127.0.0.1:2",
        "symbols": ["BTCUSDT"],
    }
}
MINIMAL_TOML = b"""
[venue]
ws_urls = ["ws://127.0.0.1:1"]
rest_url = "http://127.0.0.1:2"
symbols = ["BTCUSDT"]
"""


# --- the reproductions of issue 18 -----------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "field", "fragment"),
    [
        ('[risk]\nmax_position_qty = "NaN"', "risk.max_position_qty", "not 'NaN'"),
        ('[risk]\nmax_position_qty = "Infinity"', "risk.max_position_qty", "not 'Infinity'"),
        ('[risk]\nmax_position_qty = "sNaN"', "risk.max_position_qty", "not 'sNaN'"),
        ("[risk]\nmax_position_qty = -5", "risk.max_position_qty", "not -5"),
        ("[risk]\nmax_position_qty = inf", "risk.max_position_qty", "not inf"),
        ('[risk]\nmax_notional_per_order = "-Infinity"', "risk.max_notional_per_order", "finite"),
        ('[risk]\ndaily_loss_limit = "1e999999"', "risk.daily_loss_limit", "<= 1e12"),
        ("[risk]\nprice_band_percent = nan", "risk.price_band_percent", "finite"),
        ("[ops.ports]\nfeed = 99999", "ops.ports.feed", "from 1 to 65535, not 99999"),
        ("[ops.ports]\nrisk = 0", "ops.ports.risk", "from 1 to 65535, not 0"),
        (
            "[[strategies]]\nkind = 'momentum'\nparams = { threshold_bps = nan }",
            "strategies[0].params.threshold_bps",
            "not nan",
        ),
        (
            "[[strategies]]\nkind = 'momentum'\nparams = { order_qty = '-0.001' }",
            "strategies[0].params.order_qty",
            "> 0",
        ),
        (
            "[[strategies]]\nkind = 'quoter'\nparams = { tick_size = '0' }",
            "strategies[0].params.tick_size",
            "> 0",
        ),
        ("[[strategies]]\nkind = 'martingale'", "strategies[0].kind", '"momentum", "quoter"'),
        ("strategies = []", "strategies", "non-empty list"),
        ('[bus]\nredis_url = "not a url"', "bus.redis_url", "redis:// or rediss://"),
        ('[bus]\nredis_url = "redis://"', "bus.redis_url", "with a host"),
        ('[bus]\nredis_url = "http://127.0.0.1:6379/0"', "bus.redis_url", "redis://"),
        ('[lease]\nredis_url = "redis://h/db"', "lease.redis_url", "redis://"),
        ("[bus]\nread_block_ms = -1", "bus.read_block_ms", "from 1 to 86400000"),
        ("[feed]\nswitch_lag_ms = inf", "feed.switch_lag_ms", "finite"),
        ("[execution]\nmax_weight_usage = 1.5", "execution.max_weight_usage", "<= 1"),
        ("[execution]\nmax_retries = -1", "execution.max_retries", "from 0 to 100"),
        ("[intake]\ndedupe_ttl_s = 5", "intake.dedupe_ttl_s", "from 60"),
        ('[ops]\nhost = ""', "ops.host", "host name"),
        ('[ops]\ntoken_env = "MY TOKEN"', "ops.token_env", "environment variable"),
        ("[feed]\nstream_stale_after_ms = { trade = nan }", "feed.stream_stale_after_ms.trade", ""),
        (
            "[risk]\nflatten_algo_params = { timeout_ms = -inf }",
            "risk.flatten_algo_params.timeout_ms",
            "not -inf",
        ),
        (
            "[risk]\nflatten_algo_params = { timeout_ms = 99999999999 }",
            "risk.flatten_algo_params",
            "'timeout_ms'",
        ),
    ],
)
def test_each_reproduction_is_refused_naming_its_field(
    section: str, field: str, fragment: str
) -> None:
    with pytest.raises(ConfigProblems) as error:
        parse_config(section.encode() + b"\n" + MINIMAL_TOML, strategy_params=STRATEGY_PARAMS)
    assert [problem.path for problem in error.value.problems] == [field]
    message = str(error.value)
    assert f"{field}: " in message
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("venue", "field"),
    [
        ('ws_urls = ["http://127.0.0.1:1"]', "venue.ws_urls[0]"),
        ('ws_urls = ["ws://127.0.0.1:1/?x=1"]', "venue.ws_urls[0]"),
        ('ws_urls = ["ws://127.0.0.1:99999"]', "venue.ws_urls[0]"),
        ("ws_urls = []", "venue.ws_urls"),
        ('rest_url = "ftp://127.0.0.1"', "venue.rest_url"),
        ('rest_url = "http:// 127.0.0.1"', "venue.rest_url"),
        ('user_stream_url = "http://127.0.0.1:1"', "venue.user_stream_url"),
        ('symbols = ["btcusdt"]', "venue.symbols[0]"),
        ('symbols = ["BTCUSDT\\n"]', "venue.symbols[0]"),
        ('symbols = [""]', "venue.symbols[0]"),
        ("symbols = []", "venue.symbols"),
    ],
)
def test_urls_and_symbols_are_parsed(venue: str, field: str) -> None:
    key = venue.split(" = ")[0]
    lines = [line for line in MINIMAL_TOML.decode().splitlines() if not line.startswith(key)]
    with pytest.raises(ConfigProblems) as error:
        parse_config("\n".join([*lines, venue]).encode(), strategy_params=STRATEGY_PARAMS)
    assert [p.path for p in error.value.problems] == [field]


def test_cross_field_rules_name_every_field_they_involve() -> None:
    text = MINIMAL_TOML + (
        b"[bus]\nread_block_ms = 3000\nsocket_timeout_ms = 2000\n"
        b"[lease]\nttl_ms = 1000\nrenew_interval_ms = 600\n"
        b"[ops.ports]\nfeed = 9000\nstrategy = 9000\nrisk = 9001\nexecution = 9002\n"
        b'[[strategies]]\nname = "a"\n[[strategies]]\nname = "a"\n'
    )
    with pytest.raises(ConfigProblems) as error:
        parse_config(text, strategy_params=STRATEGY_PARAMS)
    problems = [str(p) for p in error.value.problems]
    assert any(
        p.startswith("bus.socket_timeout_ms:") and "bus.read_block_ms" in p for p in problems
    )
    assert any(p.startswith("lease.renew_interval_ms:") and "lease.ttl_ms" in p for p in problems)
    assert any(p.startswith("ops.ports.strategy:") and "ops.ports.feed" in p for p in problems)
    assert any(p.startswith("strategies[1].name:") for p in problems)
    assert len(problems) == 4


def test_a_postgres_journal_needs_a_dsn_that_parses(tmp_path: Path) -> None:
    path = tmp_path / "engine.toml"
    path.write_bytes(MINIMAL_TOML + b'[execution]\njournal_backend = "postgres"\n')
    with pytest.raises(ConfigError, match=r"execution\.journal_dsn_env .* not set"):
        load_settings(path, env={}, strategy_params=STRATEGY_PARAMS)
    with pytest.raises(ConfigError, match="not a valid PostgreSQL connection string") as bad:
        load_settings(
            path,
            env={"STORMPROOF_JOURNAL_DSN": "host=h password=hunter2 oops"},
            strategy_params=STRATEGY_PARAMS,
        )
    assert "hunter2" not in str(bad.value)
    good = load_settings(
        path,
        env={"STORMPROOF_JOURNAL_DSN": "postgresql://u:p@h:5432/db"},
        strategy_params=STRATEGY_PARAMS,
    )
    assert good.config.execution.journal_backend == "postgres"


def test_a_service_without_the_journal_starts_without_its_dsn(tmp_path: Path) -> None:
    """On Kubernetes only execution's pods get the journal's Secret; feed, strategy and risk
    read the same engine.toml."""
    path = tmp_path / "engine.toml"
    path.write_bytes(MINIMAL_TOML + b'[execution]\njournal_backend = "postgres"\n')
    settings = load_settings(path, env={}, strategy_params=STRATEGY_PARAMS, needs_journal=False)
    assert settings.secrets.journal_dsn.reveal() == ""


def test_values_in_range_are_kept_as_written() -> None:
    config = parse_config(
        MINIMAL_TOML
        + b'[risk]\nmax_position_qty = "0"\nmax_notional_per_order = 2000.5\n'
        + b"[ops.ports]\nfeed = 1\nstrategy = 65535\nrisk = 3\nexecution = 4\n"
        + b"[[strategies]]\nkind = 'momentum'\nparams = { threshold_bps = 1e9, cooldown_ms = 0 }\n",
        strategy_params=STRATEGY_PARAMS,
    )
    assert config.risk.max_position_qty == 0
    assert config.risk.max_notional_per_order == Decimal("2000.5")
    assert config.ops.ports["strategy"] == 65535
    assert config.strategies[0].params == {"threshold_bps": 1e9, "cooldown_ms": 0}


# --- every field against hostile values --------------------------------------------------------


def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    extras: list[Any] = []
    while get_origin(tp) is Annotated:
        tp, *more = get_args(tp)
        extras += more
    return tp, extras


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


Path_ = tuple[str | int, ...]


def schema_fields(cls: type[msgspec.Struct], prefix: Path_ = ()) -> Iterator[Path_]:
    """The path of every field of a struct type, nested structs and lists of them included."""
    for field in msgspec.structs.fields(cls):
        path = (*prefix, field.encode_name)
        yield path
        base, _ = _unwrap(field.type)
        if _is_struct(base):
            yield from schema_fields(base, path)
        elif get_origin(base) is list and _is_struct(_unwrap(get_args(base)[0])[0]):
            yield from schema_fields(_unwrap(get_args(base)[0])[0], (*path, 0))


def all_fields() -> list[tuple[str, Path_]]:
    """(strategy kind, path) of every config field and every strategy kind's params."""
    out = [("", path) for path in schema_fields(EngineConfig)]
    for kind, cls in sorted(KINDS.items()):
        out += [(kind, path) for path in schema_fields(cls.Params, ("strategies", 0, "params"))]
    return out


FIELDS = all_fields()


def dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def test_the_field_walk_covers_the_schema() -> None:
    names = {dotted(path) for _, path in FIELDS}
    assert {"risk.max_position_qty", "ops.ports", "bus.redis_url", "venue.ws_urls"} <= names
    assert {"strategies[0].params.order_qty", "strategies[0].params.tick_size"} <= names
    assert len(names) > 100


_FLOAT_EDGES = [math.nan, math.inf, -math.inf, -0.0, 1e308, -1e308, 5e-324, 0.5, 1e9]
_INT_EDGES = [-(2**63), -1, 0, 1, 59, 255, 65_535, 65_536, 86_400_001, 2**63 - 1, 10**30]
_STR_EDGES = [
    "",
    " ",
    "NaN",
    "sNaN",
    "-sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "1e999",
    "-1",
    "0",
    "0.0",
    "1e12",
    "1.000000000001e12",
    "not a url",
    "redis://",
    "redis://h:0/0",
    "rediss://h:6380/15",
    "ws://",
    "ws://h:99999",
    "wss://h/x?y",
    "http://[::1",
    "https://h",
    "BTCUSDT",
    "btcusdt",
    "BTCUSDT\n",
    "STORMPROOF_OPS_TOKEN",
    "STORMPROOF_INTAKE_TOKEN",
    "a\x00b",
    "x" * 300,
    "maker_first",
    "split",
    "postgres",
    "redis",
    "kubernetes",
    "feed",
]
SCALARS = st.one_of(
    st.sampled_from(_FLOAT_EDGES),
    st.sampled_from(_INT_EDGES),
    st.sampled_from(_STR_EDGES),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=12),
    st.sampled_from([datetime.datetime(2021, 1, 1, 0, 0), datetime.date(2021, 1, 1)]),
)
HOSTILE = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(
        st.sampled_from(["", "feed", "trade", "timeout_ms", "x y"]), SCALARS, max_size=3
    ),
)


def toml_value(value: Any) -> str:
    """A TOML rendering of a value (inline tables), nan and inf included."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        escaped = "".join(
            f"\\u{ord(c):04x}" if ord(c) < 32 or ord(c) == 127 or c in '"\\' else c for c in value
        )
        return f'"{escaped}"'
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items())
            + "}"
        )
    raise TypeError(type(value))


def config_with(kind: str, path: Path_, value: Any) -> bytes:
    data: dict[str, Any] = json.loads(json.dumps(MINIMAL))
    if path[0] == "strategies":
        data["strategies"] = [{"kind": kind} if kind else {}]
    node: Any = data
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[path[-1]] = value
    return "\n".join(f"{toml_value(k)} = {toml_value(v)}" for k, v in data.items()).encode()


CHECKED_ELSEWHERE = ("config.strategies[*].params", "config.risk.flatten_algo_params")
"""Free-form tables whose values another component's own rules check: each strategy kind's
Params (checked below with the same walk) and the execution algo's params (engine.core.algos)."""


def _bounded(extras: list[Any]) -> bool:
    metas = [e for e in extras if isinstance(e, msgspec.Meta)]
    low = any(m.ge is not None or m.gt is not None for m in metas)
    high = any(m.le is not None or m.lt is not None for m in metas)
    return low and high


def assert_sane(value: Any, tp: Any, where: str) -> None:
    """Every number finite, declared with a range and within it; every declared rule holds."""
    base, extras = _unwrap(tp)
    generic = re.sub(r"\[\d+\]", "[*]", where)
    elsewhere = any(generic.startswith(prefix) for prefix in CHECKED_ELSEWHERE)
    for extra in extras:
        if isinstance(extra, Rule):
            assert extra.accepts(value), f"{where}: {value!r} breaks {extra!r}"
        if isinstance(extra, msgspec.Meta):
            if extra.ge is not None:
                assert value >= extra.ge, where
            if extra.gt is not None:
                assert value > extra.gt, where
            if extra.le is not None:
                assert value <= extra.le, where
            if extra.lt is not None:
                assert value < extra.lt, where
            if extra.pattern is not None:
                assert re.fullmatch(extra.pattern.removeprefix("^").removesuffix("\\Z"), value)
            if extra.min_length is not None:
                assert len(value) >= extra.min_length, where
    if isinstance(value, float) and not (elsewhere and not extras):
        assert math.isfinite(value), f"{where}: {value}"
    if isinstance(value, int | float) and not isinstance(value, bool) and not elsewhere:
        assert _bounded(extras), f"{where}: a number without a declared range"
    if isinstance(value, Decimal):
        assert any(isinstance(e, DecimalRange) for e in extras), f"{where}: an unbounded Decimal"
    if _is_struct(base):
        for field in msgspec.structs.fields(base):
            assert_sane(getattr(value, field.name), field.type, f"{where}.{field.name}")
    elif get_origin(base) is list:
        for i, item in enumerate(value):
            assert_sane(item, get_args(base)[0], f"{where}[{i}]")
    elif get_origin(base) is dict:
        key_type, item_type = get_args(base)
        for key, item in value.items():
            assert_sane(key, key_type, f"{where} key")
            assert_sane(item, item_type, f"{where}.{key}")
    elif get_origin(base) in (Union, UnionType):
        member = next((m for m in get_args(base) if _unwrap(m)[0] is type(value)), None)
        assert member is not None, f"{where}: {value!r} is none of {base}"
        assert_sane(value, member, where)


@pytest.mark.parametrize(("kind", "path"), FIELDS, ids=[f"{k}:{dotted(p)}" for k, p in FIELDS])
@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(value=HOSTILE)
def test_a_hostile_value_is_refused_naming_its_field_or_makes_a_sane_config(
    kind: str, path: Path_, value: Any
) -> None:
    text = config_with(kind, path, value)
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "engine.toml"
        file.write_bytes(text)
        try:
            settings_ = load_settings(file, env={}, strategy_params=STRATEGY_PARAMS)
        except ConfigError as error:
            message = str(error)
            assert dotted(path) in message, message
            assert "\n" not in message
            return
    config = settings_.config
    assert_sane(config, EngineConfig, "config")
    for strategy in config.strategies:
        params = msgspec.convert(strategy.params, KINDS[strategy.kind].Params, strict=False)
        assert_sane(params, KINDS[strategy.kind].Params, f"{strategy.name}.params")


def test_the_rules_the_property_relies_on_refuse_what_they_must() -> None:
    qty = DecimalRange(gt=Decimal(0))
    assert qty.accepts(Decimal("0.001"))
    for bad in ("NaN", "sNaN", "Infinity", "-Infinity", "0", "-1", "1e13"):
        assert not qty.accepts(Decimal(bad)), bad
    redis = Url(schemes=("redis", "rediss"), redis_db=True)
    assert redis.accepts("redis://127.0.0.1:6379/0")
    for bad in ("", "redis://", "redis://h:99999", "http://h", "redis://h/x", "redis://h /0"):
        assert not redis.accepts(bad), bad


# --- check-config and run ----------------------------------------------------------------------


def test_check_config_reports_every_bad_field_on_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "engine.toml"
    path.write_bytes(
        MINIMAL_TOML
        + b'[bus]\nredis_url = "not a url"\n'
        + b'[risk]\nmax_position_qty = "NaN"\nmax_notional_per_order = "Infinity"\n'
        + b"[ops.ports]\nfeed = 99999\n"
        + b"[[strategies]]\nkind = 'momentum'\nparams = { threshold_bps = nan }\n"
    )
    assert main(["check-config", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    fields = [
        "bus.redis_url",
        "risk.max_position_qty",
        "risk.max_notional_per_order",
        "ops.ports.feed",
        "strategies[0].params.threshold_bps",
    ]
    assert len(lines) == len(fields), err
    for line, field in zip(lines, fields, strict=True):
        assert line.startswith(f"stormproof engine: invalid config {path}: {field}: must be ")
    assert "Traceback" not in err
    assert "risk.max_position_qty: must be a finite number >= 0 and <= 1e12, not 'NaN'" in err


def test_check_config_says_ok_for_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "engine.toml"
    path.write_bytes(MINIMAL_TOML + b"[risk]\nmax_position_qty = '0.05'\n")
    assert main(["check-config", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"config ok: {path.resolve()}\n"
    assert err == ""


def test_run_refuses_a_bad_config_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.app

    started: list[str] = []
    monkeypatch.setattr(engine.app, "main_run", lambda s, service: started.append(service))
    path = tmp_path / "engine.toml"
    path.write_bytes(MINIMAL_TOML + b"[risk]\nmax_position_qty = -5\ndaily_loss_limit = 'sNaN'\n")
    assert main(["run", "all", "--config", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert started == []
    assert [line.split(": ")[2] for line in err] == [
        "risk.max_position_qty",
        "risk.daily_loss_limit",
    ]


# --- the reference -----------------------------------------------------------------------------

REFERENCE = PROJECT_ROOT / "docs" / "configuration.md"


def documented() -> dict[str, dict[str, str]]:
    """`docs/configuration.md`'s tables: heading -> key -> the "accepts" column."""
    tables: dict[str, dict[str, str]] = {}
    heading = ""
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("### "):
            heading = line.removeprefix("### ").strip("`")
            tables[heading] = {}
        elif match := re.fullmatch(r"\| `([^`]+)` \| .* \| (.+) \|", line):
            tables[heading][match[1]] = match[2]
    return tables


def test_the_reference_lists_every_key_with_what_it_accepts() -> None:
    expected: dict[str, dict[str, str]] = {}
    for field in msgspec.structs.fields(EngineConfig):
        base, _ = _unwrap(field.type)
        if get_origin(base) is list:
            heading, base = f"[[{field.name}]]", get_args(base)[0]
        else:
            heading = f"[{field.name}]"
        expected[heading] = {f.encode_name: describe(f.type) for f in msgspec.structs.fields(base)}
    for kind, cls in KINDS.items():
        expected[f"params` of kind `{kind}"] = {
            f.encode_name: describe(f.type) for f in msgspec.structs.fields(cls.Params)
        }
    assert documented() == expected
