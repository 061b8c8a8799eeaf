"""Typed, frozen engine configuration: the only place files and environment are read.

A TOML file is decoded into `EngineConfig`; secrets are never in the file: it names environment
variables, and `load_settings` resolves them into `Secrets`, whose repr never shows a value.

Every field declares the values it accepts: msgspec constraints (`Annotated[int, Meta(...)]`)
and, for what msgspec cannot constrain, the `DecimalRange` and `Url` markers. `parse_config`
checks each field of the file on its own, then the rules that relate fields, and refuses the
file with every problem it found, each naming its field (`ConfigProblems`): a value that would
arm a bomb later (a NaN or infinite limit, a negative size, a port of 99999, a URL the client
cannot use) never becomes a config. Structs built in code are not checked: files are the way in.

Each strategy's params are checked with the `Params` struct of its kind, which the caller hands in
(`strategy_params`, from engine.strategy.registry): the strategies stand above this module in the
engine's layers (they declare their params with its constrained types), so it never imports them.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import msgspec

from engine.core.algos import Instrument, make_algo
from engine.core.errors import AlgoParamsError, ConfigError
from engine.core.messages import Intent, OrderType, Side
from plumbing.event_loop import EventLoopName

ServiceName = Literal["feed", "strategy", "risk", "execution"]
JournalDurability = Literal["fsync", "process"]
SERVICES: tuple[ServiceName, ...] = ("feed", "strategy", "risk", "execution")

# --- what a field accepts ---------------------------------------------------------------------

_FLOAT_MAX: Final = sys.float_info.max
"""An upper bound that only inf and nan exceed (nan fails every comparison): msgspec has no
"finite" constraint, so `le=_FLOAT_MAX` is how a float field says it."""
_DAY_MS: Final = 86_400_000
_DECIMAL_MAX: Final = Decimal("1e12")
"""The largest quantity or amount a Decimal field takes: far above any real limit, and far from
Decimal's overflow (a 1E+999999 limit would make a check's arithmetic raise instead of judge)."""


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    """A constraint msgspec cannot express, put in a field's `Annotated[...]` metadata and
    checked by `parse_config` after msgspec has converted the value."""

    def accepts(self, value: object) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class DecimalRange(Rule, frozen=True, kw_only=True):
    """Bounds of a Decimal field. NaN, sNaN and Infinity are never in range: a NaN limit makes
    every comparison against it raise, and an infinite one approves any order."""

    ge: Decimal | None = None
    gt: Decimal | None = None
    le: Decimal = _DECIMAL_MAX

    def accepts(self, value: object) -> bool:
        if not isinstance(value, Decimal) or not value.is_finite():
            return False
        if self.ge is not None and value < self.ge:
            return False
        if self.gt is not None and value <= self.gt:
            return False
        return value <= self.le

    def describe(self) -> str:
        low = f">= {self.ge}" if self.ge is not None else f"> {self.gt}"
        return f"a finite number {low} and <= {_num(self.le)}"


class Url(Rule, frozen=True, kw_only=True):
    """A URL a client connects to: one of `schemes`, a host, a port in 1-65535 if any, and no
    whitespace or control characters."""

    schemes: tuple[str, ...]
    optional: bool = False
    """"" is accepted too (it means: the documented default)."""
    base: bool = False
    """A base URL the client appends a path and query to: no query or fragment of its own."""
    redis_db: bool = False
    """The path, if any, is a Redis database number (/0)."""

    def accepts(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        if not value:
            return self.optional
        if any(ord(c) <= 32 or ord(c) == 127 for c in value):
            return False
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:  # a port out of range or not a number, a malformed IPv6 host
            return False
        if parts.scheme not in self.schemes or not parts.hostname or port == 0:
            return False
        if self.base and (parts.query or parts.fragment):
            return False
        return not self.redis_db or re.fullmatch(r"(/[0-9]{0,5})?", parts.path) is not None

    def describe(self) -> str:
        schemes = " or ".join(f"{s}://" for s in self.schemes)
        what = f"a URL ({schemes}) with a host"
        if self.base:
            what += " (a base URL: no query)"
        return f'{what}, or "" for the default' if self.optional else what


Port = Annotated[int, msgspec.Meta(ge=1, le=65_535)]
Millis = Annotated[int, msgspec.Meta(ge=1, le=_DAY_MS)]
"""A duration in milliseconds: 1 ms to one day."""
MillisOrZero = Annotated[int, msgspec.Meta(ge=0, le=_DAY_MS)]
"""A duration where 0 has a documented meaning (none, at once)."""
FloatMillis = Annotated[float, msgspec.Meta(gt=0, le=_DAY_MS)]
FloatMillisOrZero = Annotated[float, msgspec.Meta(ge=0, le=_DAY_MS)]
Share = Annotated[float, msgspec.Meta(gt=0, le=1)]
"""A share of a whole, such as of a venue's rate limit: (0, 1]."""
FiniteFloat = Annotated[float, msgspec.Meta(ge=-_FLOAT_MAX, le=_FLOAT_MAX)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0, le=_FLOAT_MAX)]
Qty = Annotated[Decimal, DecimalRange(gt=Decimal(0))]
"""A quantity or amount that must be positive (an order size, a tick size)."""
QtyOrZero = Annotated[Decimal, DecimalRange(ge=Decimal(0))]
"""A limit where 0 means "nothing" (no position, no loss allowed): never negative."""
Count = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
EnvName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*\Z",
        description="an environment variable name (letters, digits and '_')",
    ),
]
Symbol = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Z0-9]+(_[A-Z0-9]+)?\Z",
        description="upper-case letters and digits, such as BTCUSDT (COIN-M: ETHUSD_PERP)",
    ),
]
Name = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]+\Z", description="letters, digits, '-' and '_'")
]
StreamKind = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z][A-Za-z0-9_]*\Z",
        description="a stream kind such as depth, trade or bookTicker",
    ),
]
ServiceKey = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(feed|strategy|risk|execution)\Z",
        description="a service: feed, strategy, risk or execution",
    ),
]
RedisUrl = Annotated[str, Url(schemes=("redis", "rediss"), redis_db=True)]
WsUrl = Annotated[str, Url(schemes=("ws", "wss"), base=True)]
HttpUrl = Annotated[str, Url(schemes=("http", "https"), base=True)]


# --- the config -------------------------------------------------------------------------------


class _Frozen(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class BusConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    redis_url: RedisUrl = "redis://127.0.0.1:6379/0"
    stream_maxlen: Count = 200_000
    read_block_ms: Millis = 200
    read_count: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 256
    claim_min_idle_ms: Millis = 5_000
    publish_queue_max: Count = 10_000
    reconnect_base_ms: Millis = 100
    reconnect_cap_ms: Millis = 5_000
    socket_timeout_ms: Millis = 2_000
    """Socket read timeout for Redis; must exceed read_block_ms."""
    startup_timeout_ms: Millis = 15_000
    """How long a starting service waits for Redis before giving up with a one-line error."""
    username_env: EnvName = "STORMPROOF_REDIS_USER"
    password_env: EnvName = "STORMPROOF_REDIS_PASSWORD"
    """Environment variables holding this process's Redis ACL user and password (unset: the
    default user, no password). A stack gives each service a user of its own, allowed only
    the streams it must read and write (docs/architecture.md, "An authenticated bus")."""


class VenueConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[a-z0-9][a-z0-9_-]*\Z",
            description="lower-case letters, digits, '-' and '_' (it names bus streams)",
        ),
    ] = "binance"
    ws_urls: Annotated[
        list[WsUrl],
        msgspec.Meta(min_length=1, description="a non-empty list of ws:// or wss:// URLs"),
    ]
    """One or more market-data endpoints (base URL; the feed appends /stream?streams=...)."""
    rest_url: HttpUrl
    user_stream_url: Annotated[str, Url(schemes=("ws", "wss"), base=True, optional=True)] = ""
    """WebSocket base of the user data stream and WebSocket API (default: the first ws_url)."""
    symbols: Annotated[
        list[Symbol],
        msgspec.Meta(min_length=1, description="a non-empty list of symbols such as BTCUSDT"),
    ]
    api_key_env: EnvName = "STORMPROOF_API_KEY"
    api_secret_env: EnvName = "STORMPROOF_API_SECRET"
    request_timeout_ms: Millis = 5_000
    recv_window_ms: Annotated[int, msgspec.Meta(ge=1, le=60_000)] = 5_000
    """Binance refuses a recvWindow over 60000 ms."""
    request_weight_per_minute: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 6_000
    """The venue's request-weight limit per IP (Binance spot: 6000 per rolling minute)."""
    max_weight_usage: Share = 0.7
    """Stay under this share of the venue's limit (our token buckets; ccxt's limiter for a
    client made without them). The stricter of this and execution.max_weight_usage wins."""
    market: Literal["spot", "usdm", "coinm"] = "spot"
    """Spot, USD-M (linear) or COIN-M (inverse) perpetual futures (docs/futures.md)."""
    depth_stream: Literal[
        "@depth", "@depth@100ms", "@depth@0ms", "@depth@250ms", "@depth@500ms"
    ] = "@depth@100ms"
    """The diff-depth stream's update speed (spot: @depth = 1000 ms or @depth@100ms; futures:
    @depth = 250 ms, @depth@0ms, @depth@100ms, @depth@500ms)."""
    leverage: Annotated[int, msgspec.Meta(ge=0, le=125)] = 0
    """Futures: the leverage set on every symbol at connect (0: leave the account's)."""


class FeedConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    stale_after_ms: Millis = 5_000
    """Default staleness threshold per stream, measured from local receive time."""
    stream_stale_after_ms: Annotated[
        dict[StreamKind, Millis],
        msgspec.Meta(description="a table of stream kind = milliseconds"),
    ] = msgspec.field(default_factory=lambda: {"trade": 60_000})
    """Per stream kind: a trade stream may be quiet for a minute while the book is busy."""
    reconnect_base_ms: Millis = 100
    reconnect_cap_ms: Millis = 10_000
    healthy_after_ms: Millis = 10_000
    learn_stale_thresholds: bool = True
    """Learn each stream's threshold from its own rhythm (configured kinds keep theirs)."""
    learned_stale_min_ms: Millis = 500
    """Below half a second, a latency spike (the lag switch's job) would look like a dead feed."""
    learned_stale_max_ms: Millis = 30_000
    learned_stale_multiplier: Annotated[float, msgspec.Meta(ge=1, le=1_000)] = 4.0
    """Below 1, a stream would be stale before its own usual gap had passed."""
    reconnect_on_stale: Annotated[
        list[StreamKind], msgspec.Meta(description="a list of stream kinds (may be empty)")
    ] = msgspec.field(default_factory=lambda: ["depth", "bookTicker"])
    """Kinds whose silence means a broken connection (a quiet trade stream is a quiet market)."""
    stale_check_interval_ms: Millis = 50
    switch_lag_ms: FloatMillis = 50.0
    """Switch away from the active feed when it lags another by more than this."""
    switch_hysteresis_ms: FloatMillisOrZero = 250.0
    failback_ms: FloatMillisOrZero = 2_000.0
    book_levels_published: Annotated[int, msgspec.Meta(ge=1, le=5_000)] = 10
    snapshot_limit: Annotated[int, msgspec.Meta(ge=1, le=5_000)] = 1000
    """Depth of the REST snapshot (Binance: at most 5000)."""
    open_timeout_ms: Millis = 5_000
    ping_interval_ms: Millis = 20_000


DEFAULT_STRATEGY_KIND: Final = "momentum"


class StrategyConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: Annotated[
        str, msgspec.Meta(description="a strategy kind, such as momentum or quoter")
    ] = DEFAULT_STRATEGY_KIND
    """A strategy kind of engine.strategy.registry; `parse_config` checks it and checks params
    with that kind's own `Params` struct."""
    name: Name = "momentum"
    """Prefix of every intent id of this strategy: letters, digits, '-' and '_' only."""
    params: Annotated[
        dict[str, float | int | str | bool],
        msgspec.Meta(description="a table of numbers, strings and booleans"),
    ] = {}
    timer_interval_ms: Millis = 1_000
    max_tick_age_ms: Millis = 2_000
    """Market data older than this (consumer lag) updates state but triggers no decision."""


class RiskConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_position_qty: QtyOrZero = Decimal("0.05")
    """0: no position may be opened (reductions stay possible)."""
    max_notional_per_order: QtyOrZero = Decimal("2000")
    max_intent_age_ms: Millis = 5_000
    max_data_age_ms: Millis = 2_000
    max_orders_per_window: Count = 50
    """New-order intents approved per rolling order_rate_window_ms (cancels are not counted)."""
    order_rate_window_ms: Millis = 10_000
    price_band_percent: Annotated[float, msgspec.Meta(gt=0, le=100)] = 5.0
    """A limit price further than this from the last mid is a fat finger."""
    daily_loss_limit: QtyOrZero = Decimal("500")
    """Realised plus marked-to-mid loss since 00:00 UTC, in quote asset; over it: REDUCING."""
    flatten_algo: Literal["maker_first", "twap", "split", ""] = "maker_first"
    """How a flatten closes positions ("" = one market order)."""
    flatten_algo_params: Annotated[
        dict[str, FiniteFloat | int | str],
        msgspec.Meta(description="a table of finite numbers and strings"),
    ] = msgspec.field(default_factory=lambda: {"timeout_ms": 2_000})
    """Checked by `parse_config` with the algo's own rules (engine.core.algos): a flatten that
    execution would refuse is refused here, before anything depends on it."""
    flatten_retry_ms: Millis = 3_000
    """A flatten intent that risk has not decided on after this long is given up on (its publish
    was lost), and what is left is issued again."""
    flat_tolerance_qty: QtyOrZero = Decimal("0.0001")
    """A position this small counts as flat (commission dust below the venue's lot size)."""
    min_liquidation_distance_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] = 0.0
    """Futures: no new entry while the mark is closer than this (percent) to the venue's
    liquidation price. 0: off."""
    liquidation_breaker_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] = 0.0
    """Futures: closer than this, trading goes REDUCING and the positions are flattened
    (reduce-only) before the venue liquidates them. 0: off."""
    max_adverse_funding_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] = 0.0
    """Futures: a funding rate (percent per funding interval) at or over which a position that
    pays it is closed (trading goes REDUCING) and no entry may add to it. 0: off."""


class ExecutionConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    journal_backend: Literal["sqlite", "postgres"] = "sqlite"
    journal_path: Annotated[
        str, msgspec.Meta(pattern=r"^[^\x00]+\Z", description="a file path")
    ] = "journal.sqlite"
    """SQLite file (journal_backend = "sqlite")."""
    journal_dsn_env: EnvName = "STORMPROOF_JOURNAL_DSN"
    """Environment variable holding the PostgreSQL DSN (journal_backend = "postgres")."""
    journal_durability: JournalDurability = "process"
    """What a journal commit survives before the order it records is sent
    (docs/architecture.md, "Journal durability"). "fsync": power loss (SQLite
    synchronous=FULL, PostgreSQL synchronous_commit on): every commit waits for the disk.
    "process": any crash of the engine's process (SQLite WAL with synchronous=NORMAL,
    PostgreSQL synchronous_commit off): a commit is a write to the OS, no fsync on the order
    path; a machine (or database server) crash may lose the journal's most recent writes, never
    an earlier one, and recovery adopts the venue orders they recorded."""
    adoption_lookback_ms: Millis = 600_000
    """At recovery, order requests on `orders.{venue}` approved up to this long before the
    journal's last write are the intents whose venue orders the journal may have lost (a
    request can wait in the stream before it is worked: this covers such a backlog). Each
    recovery reads that much of the stream."""
    poll_interval_ms: Millis = 500
    position_poll_ms: Millis = 1_000
    funding_poll_ms: Millis = 30_000
    """Futures: how often the venue's funding history is read (Binance settles every 8 h; a
    query weighs 30)."""
    """Futures: how often the venue's positions (liquidation price, mark, PnL) are read and
    published for risk's liquidation-distance breaker."""
    max_orders_in_flight: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 8
    retry_base_ms: Millis = 50
    retry_cap_ms: Millis = 2_000
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=100)] = 3
    """0: a retryable venue error is not retried."""
    user_stream: bool = True
    """Fills by push from the venue's user data stream; REST polling covers a stale stream."""
    user_stream_stale_ms: Millis = 3_000
    """No user-stream event for this long while orders are open: poll REST meanwhile."""
    republish_window_ms: MillisOrZero = 600_000
    """At recovery, the state of orders updated this recently is published again (fills,
    reports, IntentDone): a crash between journal and bus loses no notification. 0: none."""
    drift_halt_percent: Annotated[float, msgspec.Meta(ge=0, le=100)] = 1.0
    """Position drift (journal vs venue balances) over this halts trading at start."""
    max_weight_usage: Share = 0.7
    """Keep request weight under this share of the venue limit (token buckets)."""
    max_order_wait_ms: MillisOrZero = 3_000
    """A new order that cannot get a rate-limit permit within this (a ban, a 429 pause) is not
    sent at all: it is rejected as not placed rather than sent on a market that has moved.
    0: only a permit free at once."""
    max_orders_per_10s: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 50
    """Order-count budget per 10 s (Binance spot: 100); we spend at most half by default."""


class LeaseConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    backend: Literal["none", "redis", "kubernetes"] = "none"
    """"none": a single execution instance; "redis"/"kubernetes": an active/standby pair."""
    name: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\Z",
            description="a Kubernetes object name (lower-case letters, digits, '-' and '.')",
        ),
    ] = "stormproof-execution"
    ttl_ms: Millis = 3_000
    renew_interval_ms: Millis = 1_000
    redis_url: Annotated[str, Url(schemes=("redis", "rediss"), redis_db=True, optional=True)] = ""
    """Defaults to bus.redis_url."""
    namespace: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z",
            description="a Kubernetes namespace (lower-case letters, digits and '-')",
        ),
    ] = "default"
    """Kubernetes namespace of the Lease object."""


class OpsConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: Annotated[
        str,
        msgspec.Meta(pattern=r"^[A-Za-z0-9._:-]+\Z", description="a host name or IP address"),
    ] = "127.0.0.1"
    ports: Annotated[
        dict[ServiceKey, Port], msgspec.Meta(description="a table of service = port")
    ] = msgspec.field(
        default_factory=lambda: {"feed": 9101, "strategy": 9102, "risk": 9103, "execution": 9104}
    )
    token_env: EnvName = "STORMPROOF_OPS_TOKEN"
    loop_lag_fail_ms: Millis = 2_000
    event_loop: EventLoopName = "asyncio"
    """The asyncio event loop the process runs on: "asyncio" (the standard library's) or
    "uvloop" (libuv). The standard library's is the default: uvloop is a choice to measure for
    a deployment, not a speed-up to assume (docs/benchmarks.md, "Event loop")."""
    stop_grace_ms: Millis = 3_000
    """On SIGTERM, how long services may take to finish their work before being cancelled."""


class IntakeConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /intents` on the strategy service's ops server: order intents from external signal
    sources, through the same risk and execution path as strategies (docs/intake.md)."""

    enabled: bool = True
    """Serve the endpoint. Even when enabled, it refuses every request (403) until the token
    environment variable is set: an open order entry is worse than none."""
    token_env: EnvName = "STORMPROOF_INTAKE_TOKEN"
    """Environment variable holding the intake's own bearer token (never the ops token)."""
    max_body_bytes: Annotated[int, msgspec.Meta(ge=256, le=1_048_576)] = 16_384
    """A larger request body is refused (413) before it is parsed."""
    dedupe_ttl_s: Annotated[int, msgspec.Meta(ge=60, le=31_536_000)] = 86_400
    """How long an accepted intent id is remembered: a repeat within it is a duplicate."""
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 32
    """Requests being accepted (claim + publish) at once; more are refused (503, Retry-After)
    rather than queued."""
    pending_ttl_s: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 30
    """How long an intent id stays claimed while its publish is unfinished (a crash mid-way):
    after it, the caller may submit that id again. Below dedupe_ttl_s."""


class LoggingConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    level: Literal["debug", "info", "warning", "error"] = "info"


class EngineConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    venue: VenueConfig
    bus: BusConfig = BusConfig()
    feed: FeedConfig = FeedConfig()
    strategies: Annotated[
        list[StrategyConfig],
        msgspec.Meta(min_length=1, description="a non-empty list of [[strategies]] tables"),
    ] = msgspec.field(default_factory=lambda: [StrategyConfig()])
    """At least one: the strategy service's timers run at the pace of its fastest strategy."""
    risk: RiskConfig = RiskConfig()
    execution: ExecutionConfig = ExecutionConfig()
    lease: LeaseConfig = LeaseConfig()
    ops: OpsConfig = OpsConfig()
    intake: IntakeConfig = IntakeConfig()
    logging: LoggingConfig = LoggingConfig()


# --- problems ---------------------------------------------------------------------------------


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """One thing wrong with a config: the field's path (`risk.max_position_qty`,
    `strategies[0].params.order_qty`) and what it must be."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigProblems(ConfigError):
    """A config file with one or more bad fields. The message is one line (problems joined by
    "; "); `lines()` gives one line per problem for a command line."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"invalid config {source}: {'; '.join(map(str, self.problems))}")

    def lines(self) -> list[str]:
        return [f"invalid config {self.source}: {problem}" for problem in self.problems]


_TOML_TYPES: Final = (datetime.datetime, datetime.date, datetime.time)


def _convert(raw: object, tp: Any, *, strict: bool) -> Any:
    """msgspec's conversion of decoded TOML, as `msgspec.toml.decode(type=...)` does it."""
    return msgspec.convert(raw, tp, builtin_types=_TOML_TYPES, str_keys=True, strict=strict)


def _unwrap(tp: Any) -> tuple[Any, list[Rule], list[msgspec.Meta]]:
    """A type without its `Annotated` layers, with the rules and msgspec metas they carried."""
    rules: list[Rule] = []
    metas: list[msgspec.Meta] = []
    while get_origin(tp) is Annotated:
        tp, *extras = get_args(tp)
        rules += [x for x in extras if isinstance(x, Rule)]
        metas += [x for x in extras if isinstance(x, msgspec.Meta)]
    return tp, rules, metas


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _num(value: float | int | Decimal) -> str:
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if number != number.to_integral_value():
        return str(value)
    digits = str(int(number))
    mantissa = digits.rstrip("0")
    zeros = len(digits) - len(mantissa)
    return f"{mantissa}e{zeros}" if zeros >= 9 else digits  # 1e12, not 1000000000000


def _bounds(meta: msgspec.Meta) -> str:
    if meta.ge is not None and meta.le is not None and meta.le != _FLOAT_MAX:
        return f" from {_num(meta.ge)} to {_num(meta.le)}"
    parts = []
    if meta.ge is not None and meta.ge != -_FLOAT_MAX:
        parts.append(f">= {_num(meta.ge)}")
    if meta.gt is not None:
        parts.append(f"> {_num(meta.gt)}")
    if meta.le is not None and meta.le != _FLOAT_MAX:
        parts.append(f"<= {_num(meta.le)}")
    if meta.lt is not None:
        parts.append(f"< {_num(meta.lt)}")
    return " " + " and ".join(parts) if parts else ""


def describe(tp: Any) -> str:
    """What a field of type `tp` accepts, in words ("an integer from 1 to 65535")."""
    base, rules, metas = _unwrap(tp)
    if rules:
        return " and ".join(rule.describe() for rule in rules)
    for meta in metas:
        if meta.description:
            return meta.description
    bounds = "".join(_bounds(meta) for meta in metas)
    origin = get_origin(base)
    if _is_struct(base):
        return "a table"
    if origin is list:
        (item,) = get_args(base)
        return "a list of tables" if _is_struct(item) else f"a list, each {describe(item)}"
    if origin is dict:
        return f"a table, each value {describe(get_args(base)[1])}"
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(choice) for choice in get_args(base))
    if origin is Union or origin is UnionType:
        return " or ".join(describe(arg) for arg in get_args(base))
    if base is bool:
        return "true or false"
    if base is int:
        return f"an integer{bounds}"
    if base is float:
        return f"a finite number{bounds}" if metas else "a number"
    if base is Decimal:
        return "a decimal number"
    if base is str:
        return "a string"
    return getattr(base, "__name__", str(base))


def _show(raw: object) -> str:
    """A value as the file had it, short enough for one line."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(path: str, key: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", key):
        key = json.dumps(key)
    return f"{path}.{key}" if path else key


class _Walk:
    """Checks decoded TOML against a struct type field by field, so that every bad field is
    found, not only the first msgspec would stop at."""

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.problems: list[Problem] = []

    def struct(self, cls: type[msgspec.Struct], raw: object, path: str) -> None:
        if not isinstance(raw, dict):
            self.bad(path, cls, raw)
            return
        fields = {field.encode_name: field for field in msgspec.structs.fields(cls)}
        for key in raw:
            if key not in fields:
                known = ", ".join(sorted(fields))
                self.problems.append(
                    Problem(path=_join(path, key), message=f"unknown field; known: {known}")
                )
        for name, field in fields.items():
            if name in raw:
                self.value(field.type, raw[name], _join(path, name))
            elif field.required:
                self.problems.append(Problem(path=_join(path, name), message="is required"))

    def value(self, tp: Any, raw: object, path: str) -> None:
        base, _, metas = _unwrap(tp)
        metas.append(msgspec.Meta())
        if _is_struct(base):
            self.struct(base, raw, path)
            return
        origin = get_origin(base)
        if origin is list:
            if not isinstance(raw, list) or len(raw) < max(m.min_length or 0 for m in metas):
                self.bad(path, tp, raw)
                return
            (item,) = get_args(base)
            for i, element in enumerate(raw):
                self.value(item, element, f"{path}[{i}]")
            return
        if origin is dict:
            if not isinstance(raw, dict):
                self.bad(path, tp, raw)
                return
            key_type, item = get_args(base)
            for key, element in raw.items():
                if self.accepts(key_type, key):
                    self.value(item, element, _join(path, key))
                else:
                    self.problems.append(
                        Problem(
                            path=_join(path, key),
                            message=f"unknown key: keys must be {describe(key_type)}",
                        )
                    )
            return
        if not self.accepts(tp, raw):
            self.bad(path, tp, raw)

    def accepts(self, tp: Any, raw: object) -> bool:
        try:
            value = _convert(raw, tp, strict=self.strict)
        except msgspec.ValidationError:
            return False
        return all(rule.accepts(value) for rule in _unwrap(tp)[1])

    def bad(self, path: str, tp: Any, raw: object) -> None:
        self.problems.append(
            Problem(path=path, message=f"must be {describe(tp)}, not {_show(raw)}")
        )


StrategyParams = Mapping[str, type[msgspec.Struct]]
"""Each strategy kind's `Params` struct, by kind (`engine.strategy.registry.STRATEGY_PARAMS`).
The strategies stand above this module (they build from `StrategyConfig` and declare their
params with its constrained types), so whoever reads a file hands their kinds in."""


def _strategy_problems(raw: Mapping[str, Any], kinds: StrategyParams) -> list[Problem]:
    """Each strategy's kind, and its params checked by that kind's own `Params` struct (the
    rules of engine/strategy/examples), as `build_strategy` will convert them (not strict)."""
    strategies = raw.get("strategies")
    if not isinstance(strategies, list):
        return []
    walk = _Walk(strict=False)
    for i, entry in enumerate(strategies):
        if not isinstance(entry, dict):
            continue
        kind = entry.get("kind", DEFAULT_STRATEGY_KIND)
        if not isinstance(kind, str):
            continue  # the field walk has named it
        params_type = kinds.get(kind)
        if params_type is None:
            known = ", ".join(json.dumps(k) for k in sorted(kinds))
            walk.problems.append(
                Problem(
                    path=f"strategies[{i}].kind",
                    message=f"must be one of {known}, not {_show(kind)}",
                )
            )
            continue
        params = entry.get("params", {})
        if isinstance(params, dict):
            walk.struct(params_type, params, f"strategies[{i}].params")
    return walk.problems


def _flatten_algo_problem(config: EngineConfig) -> Problem | None:
    """The flatten's algo params checked by the algo itself, on the loosest instrument (as the
    intake checks a request's): execution would refuse a flatten built from bad ones."""
    risk = config.risk
    if not risk.flatten_algo:
        return None
    intent = Intent(
        intent_id="config-check",
        source="config",
        venue=config.venue.name,
        symbol=config.venue.symbols[0],
        side=Side.SELL,
        qty=Decimal(1),
        order_type=OrderType.MARKET,
        reduce_only=True,
        algo=risk.flatten_algo,
        algo_params=dict(risk.flatten_algo_params),
    )
    loosest = Instrument(tick_size=Decimal("1e-8"), lot_size=Decimal("1e-8"))
    try:
        make_algo(intent, start_ns=0, instrument=loosest)
    except AlgoParamsError as exc:
        return Problem(
            path="risk.flatten_algo_params",
            message=f"do not suit risk.flatten_algo {risk.flatten_algo!r}: {exc}",
        )
    return None


def _relations(config: EngineConfig) -> list[Problem]:
    """The rules between fields; each message names every field it involves."""
    out: list[Problem] = []

    def require(ok: bool, path: str, message: str) -> None:
        if not ok:
            out.append(Problem(path=path, message=message))

    bus, feed, execution = config.bus, config.feed, config.execution
    require(
        bus.socket_timeout_ms > bus.read_block_ms,
        "bus.socket_timeout_ms",
        f"must be greater than bus.read_block_ms ({bus.read_block_ms}), or every quiet blocking"
        f" read times out; not {bus.socket_timeout_ms}",
    )
    for section, base, cap in (
        ("bus", bus.reconnect_base_ms, bus.reconnect_cap_ms),
        ("feed", feed.reconnect_base_ms, feed.reconnect_cap_ms),
    ):
        require(
            base <= cap,
            f"{section}.reconnect_cap_ms",
            f"must be at least {section}.reconnect_base_ms ({base}), not {cap}",
        )
    require(
        execution.retry_base_ms <= execution.retry_cap_ms,
        "execution.retry_cap_ms",
        f"must be at least execution.retry_base_ms ({execution.retry_base_ms}),"
        f" not {execution.retry_cap_ms}",
    )
    require(
        feed.learned_stale_min_ms <= feed.learned_stale_max_ms,
        "feed.learned_stale_max_ms",
        f"must be at least feed.learned_stale_min_ms ({feed.learned_stale_min_ms}),"
        f" not {feed.learned_stale_max_ms}",
    )
    lease = config.lease
    require(
        lease.renew_interval_ms * 2 <= lease.ttl_ms,
        "lease.renew_interval_ms",
        f"must be at most half of lease.ttl_ms ({lease.ttl_ms}): a lease renewed late once"
        f" would expire; not {lease.renew_interval_ms}",
    )
    intake = config.intake
    require(
        intake.pending_ttl_s < intake.dedupe_ttl_s,
        "intake.pending_ttl_s",
        f"must be below intake.dedupe_ttl_s ({intake.dedupe_ttl_s}), not {intake.pending_ttl_s}",
    )
    require(
        intake.token_env != config.ops.token_env,
        "intake.token_env",
        "must differ from ops.token_env: a signal source must not hold the kill switch",
    )
    ports = config.ops.ports
    for service in SERVICES:
        require(service in ports, f"ops.ports.{service}", "is required: each service has a port")
    seen: dict[int, str] = {}
    for key, port in ports.items():
        if port in seen:
            out.append(
                Problem(
                    path=f"ops.ports.{key}",
                    message=f"{port} is also ops.ports.{seen[port]}: `run all` serves both",
                )
            )
        seen.setdefault(port, key)
    names: dict[str, int] = {}
    for i, strategy in enumerate(config.strategies):
        if strategy.name in names:
            out.append(
                Problem(
                    path=f"strategies[{i}].name",
                    message=f"{strategy.name!r} is also the name of"
                    f" strategies[{names[strategy.name]}]: names prefix intent ids and must be"
                    " unique",
                )
            )
        names.setdefault(strategy.name, i)
    flatten = _flatten_algo_problem(config)
    if flatten is not None:
        out.append(flatten)
    return out


def _from_msgspec(error: msgspec.ValidationError) -> Problem:
    """A msgspec error ("Expected ... - at `$.a.b`") as a Problem at a.b."""
    message, _, where = str(error).partition(" - at `")
    return Problem(path=where.rstrip("`").removeprefix("$").removeprefix("."), message=message)


# --- reading ----------------------------------------------------------------------------------


class Secret:
    """A secret value; its repr and str never reveal it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


class Secrets(msgspec.Struct, frozen=True, kw_only=True):
    api_key: Secret
    api_secret: Secret
    ops_token: Secret
    journal_dsn: Secret = Secret("")
    intake_token: Secret = Secret("")
    redis_username: str = ""
    """Not a secret (a role name), kept beside its password."""
    redis_password: Secret = Secret("")

    def values(self) -> list[str]:
        """Every secret value, for log and /status redaction (the whole DSN and its password)."""
        out = [
            s.reveal()
            for s in (
                self.api_key,
                self.api_secret,
                self.ops_token,
                self.journal_dsn,
                self.intake_token,
                self.redis_password,
            )
            if s
        ]
        password = _dsn_password(self.journal_dsn.reveal())
        if password:
            out.append(password)
        return out


def _dsn_password(dsn: str) -> str:
    """The password inside a PostgreSQL DSN (URL or key=value form), or ''."""
    if "://" in dsn:
        try:
            return urlsplit(dsn).password or ""
        except ValueError:
            return ""
    for part in dsn.split():
        key, _, value = part.partition("=")
        if key == "password":
            return value.strip("'")
    return ""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    config: EngineConfig
    secrets: Secrets
    path: str


def parse_config(
    data: bytes, *, strategy_params: StrategyParams, source: str = "<config>"
) -> EngineConfig:
    """The config in `data`, or a ConfigError: `ConfigProblems` naming every bad field (each
    strategy's params checked by its kind's struct in `strategy_params`)."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {source} is not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:  # TOMLDecodeError, or an integer literal of over 4300 digits
        raise ConfigError(f"config {source} is not valid TOML: {exc}") from None
    walk = _Walk(strict=True)
    walk.struct(EngineConfig, raw, "")
    problems = walk.problems + _strategy_problems(raw, strategy_params)
    if problems:
        raise ConfigProblems(source, problems)
    try:
        config: EngineConfig = _convert(raw, EngineConfig, strict=True)
    except msgspec.ValidationError as exc:  # a rule the field walk does not know of
        raise ConfigProblems(source, [_from_msgspec(exc)]) from None
    problems = _relations(config)
    if problems:
        raise ConfigProblems(source, problems)
    return config


def _journal_dsn_problem(config: EngineConfig, dsn: str) -> Problem | None:
    """The PostgreSQL DSN, parsed as the journal will parse it (never quoted: it holds the
    password)."""
    execution = config.execution
    if execution.journal_backend != "postgres":
        return None
    where = f"execution.journal_dsn_env (${execution.journal_dsn_env})"
    if not dsn:
        return Problem(
            path=where,
            message="the PostgreSQL DSN is not set, and execution.journal_backend is postgres",
        )
    # only a PostgreSQL journal needs libpq: a SQLite engine never imports it
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return Problem(path=where, message="is not a valid PostgreSQL connection string")
    return None


def load_settings(
    path: str | Path,
    env: Mapping[str, str] | None = None,
    *,
    strategy_params: StrategyParams,
    needs_journal: bool = True,
) -> Settings:
    """The config file and the secrets of the environment. `needs_journal` False (a service
    other than execution) leaves an unset journal DSN alone: on Kubernetes only execution's
    pods are given it."""
    environ = os.environ if env is None else env
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {file}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
    config = parse_config(data, strategy_params=strategy_params, source=str(file))
    secrets = Secrets(
        api_key=Secret(environ.get(config.venue.api_key_env, "")),
        api_secret=Secret(environ.get(config.venue.api_secret_env, "")),
        ops_token=Secret(environ.get(config.ops.token_env, "")),
        journal_dsn=Secret(environ.get(config.execution.journal_dsn_env, "")),
        intake_token=Secret(environ.get(config.intake.token_env, "")),
        redis_username=environ.get(config.bus.username_env, ""),
        redis_password=Secret(environ.get(config.bus.password_env, "")),
    )
    problem = _journal_dsn_problem(config, secrets.journal_dsn.reveal()) if needs_journal else None
    if problem is not None:
        raise ConfigProblems(str(file), [problem])
    return Settings(config=config, secrets=secrets, path=str(file.resolve()))


_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that TOML wants a character beyond
    U+FFFF as itself, not as JSON's surrogate pair; DEL is escaped, as TOML requires."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value: object) -> str:
    """A TOML value; a table inside a section is written inline (`ports = {feed = 9101}`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # finite: a config's floats are bounded
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml_section(header: str, fields: dict[str, Any]) -> str:
    return (
        header + "\n" + "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in fields.items())
    )


def dump_config(config: EngineConfig) -> bytes:
    """The config as the TOML file `parse_config` reads back into an equal config: every
    section a table (`strategies` an array of tables), every field written, Decimals as strings
    (TOML has no exact decimal). Secrets are never in a config: only the names of their
    environment variables."""
    sections: list[str] = []
    for name, value in msgspec.to_builtins(config).items():
        if isinstance(value, list):
            sections += [_toml_section(f"[[{name}]]", item) for item in value]
        else:
            sections.append(_toml_section(f"[{name}]", value))
    return "\n".join(sections).encode()
