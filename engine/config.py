"""Typed, frozen engine configuration: the only place files and environment are read.

A TOML file is decoded into `EngineConfig`; secrets are never in the file: it names environment
variables, and `load_settings` resolves them into `Secrets`, whose repr never shows a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from engine.core.errors import ConfigError

ServiceName = Literal["feed", "strategy", "risk", "execution"]
SERVICES: tuple[ServiceName, ...] = ("feed", "strategy", "risk", "execution")


class _Frozen(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class BusConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    redis_url: str = "redis://127.0.0.1:6379/0"
    stream_maxlen: int = 200_000
    read_block_ms: int = 200
    read_count: int = 256
    claim_min_idle_ms: int = 5_000
    publish_queue_max: int = 10_000
    reconnect_base_ms: int = 100
    reconnect_cap_ms: int = 5_000
    socket_timeout_ms: int = 2_000
    """Socket read timeout for Redis; must exceed read_block_ms."""
    startup_timeout_ms: int = 15_000
    """How long a starting service waits for Redis before giving up with a one-line error."""


class VenueConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str = "binance"
    ws_urls: list[str]
    """One or more market-data endpoints (base URL; the feed appends /stream?streams=...)."""
    rest_url: str
    user_stream_url: str = ""
    """WebSocket base of the user data stream and WebSocket API (default: the first ws_url)."""
    symbols: list[str]
    api_key_env: str = "STORMPROOF_API_KEY"
    api_secret_env: str = "STORMPROOF_API_SECRET"
    request_timeout_ms: int = 5_000
    recv_window_ms: int = 5_000
    request_weight_per_minute: int = 6_000
    """The venue's request-weight limit per IP (Binance spot: 6000 per rolling minute)."""
    max_weight_usage: float = 0.7
    """Stay under this share of the venue's limit (our token buckets; ccxt's limiter for a
    client made without them). The stricter of this and execution.max_weight_usage wins."""


class FeedConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    stale_after_ms: int = 5_000
    """Default staleness threshold per stream, measured from local receive time."""
    stream_stale_after_ms: dict[str, int] = msgspec.field(default_factory=lambda: {"trade": 60_000})
    """Per stream kind: a trade stream may be quiet for a minute while the book is busy."""
    reconnect_base_ms: int = 100
    reconnect_cap_ms: int = 10_000
    healthy_after_ms: int = 10_000
    learn_stale_thresholds: bool = True
    """Learn each stream's threshold from its own rhythm (configured kinds keep theirs)."""
    learned_stale_min_ms: int = 500
    """Below half a second, a latency spike (the lag switch's job) would look like a dead feed."""
    learned_stale_max_ms: int = 30_000
    learned_stale_multiplier: float = 4.0
    reconnect_on_stale: list[str] = msgspec.field(default_factory=lambda: ["depth", "bookTicker"])
    """Kinds whose silence means a broken connection (a quiet trade stream is a quiet market)."""
    stale_check_interval_ms: int = 50
    switch_lag_ms: float = 50.0
    """Switch away from the active feed when it lags another by more than this."""
    switch_hysteresis_ms: float = 250.0
    failback_ms: float = 2_000.0
    book_levels_published: int = 10
    snapshot_limit: int = 1000
    open_timeout_ms: int = 5_000
    ping_interval_ms: int = 20_000


class StrategyConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: str = "momentum"
    name: str = "momentum"
    """Prefix of every intent id of this strategy: letters, digits, '-' and '_' only."""
    params: dict[str, float | int | str | bool] = {}
    timer_interval_ms: int = 1_000
    max_tick_age_ms: int = 2_000
    """Market data older than this (consumer lag) updates state but triggers no decision."""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"strategy name {self.name!r}: use letters, digits, '-' and '_'")


class RiskConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_position_qty: Decimal = Decimal("0.05")
    max_notional_per_order: Decimal = Decimal("2000")
    max_intent_age_ms: int = 5_000
    max_data_age_ms: int = 2_000
    max_orders_per_window: int = 50
    """New-order intents approved per rolling order_rate_window_ms (cancels are not counted)."""
    order_rate_window_ms: int = 10_000
    price_band_percent: float = 5.0
    """A limit price further than this from the last mid is a fat finger."""
    daily_loss_limit: Decimal = Decimal("500")
    """Realised plus marked-to-mid loss since 00:00 UTC, in quote asset; over it: REDUCING."""
    flatten_algo: Literal["maker_first", "twap", "split", ""] = "maker_first"
    """How a flatten closes positions ("" = one market order)."""
    flatten_algo_params: dict[str, float | int | str] = msgspec.field(
        default_factory=lambda: {"timeout_ms": 2_000}
    )
    flatten_retry_ms: int = 3_000
    """A flatten intent that risk has not decided on after this long is given up on (its publish
    was lost), and what is left is issued again."""
    flat_tolerance_qty: Decimal = Decimal("0.0001")
    """A position this small counts as flat (commission dust below the venue's lot size)."""


class ExecutionConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    journal_backend: Literal["sqlite", "postgres"] = "sqlite"
    journal_path: str = "journal.sqlite"
    """SQLite file (journal_backend = "sqlite")."""
    journal_dsn_env: str = "STORMPROOF_JOURNAL_DSN"
    """Environment variable holding the PostgreSQL DSN (journal_backend = "postgres")."""
    poll_interval_ms: int = 500
    max_orders_in_flight: int = 8
    retry_base_ms: int = 50
    retry_cap_ms: int = 2_000
    max_retries: int = 3
    user_stream: bool = True
    """Fills by push from the venue's user data stream; REST polling covers a stale stream."""
    user_stream_stale_ms: int = 3_000
    """No user-stream event for this long while orders are open: poll REST meanwhile."""
    republish_window_ms: int = 600_000
    """At recovery, the state of orders updated this recently is published again (fills,
    reports, IntentDone): a crash between journal and bus loses no notification."""
    drift_halt_percent: float = 1.0
    """Position drift (journal vs venue balances) over this halts trading at start."""
    max_weight_usage: float = 0.7
    """Keep request weight under this share of the venue limit (token buckets)."""
    max_order_wait_ms: int = 3_000
    """A new order that cannot get a rate-limit permit within this (a ban, a 429 pause) is not
    sent at all: it is rejected as not placed rather than sent on a market that has moved."""
    max_orders_per_10s: int = 50
    """Order-count budget per 10 s (Binance spot: 100); we spend at most half by default."""


class LeaseConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    backend: Literal["none", "redis", "kubernetes"] = "none"
    """"none": a single execution instance; "redis"/"kubernetes": an active/standby pair."""
    name: str = "stormproof-execution"
    ttl_ms: int = 3_000
    renew_interval_ms: int = 1_000
    redis_url: str = ""
    """Defaults to bus.redis_url."""
    namespace: str = "default"
    """Kubernetes namespace of the Lease object."""

    def __post_init__(self) -> None:
        if not 0 < self.renew_interval_ms * 2 <= self.ttl_ms:
            raise ValueError("lease.renew_interval_ms must be at most half of lease.ttl_ms")


class OpsConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    ports: dict[str, int] = msgspec.field(
        default_factory=lambda: {"feed": 9101, "strategy": 9102, "risk": 9103, "execution": 9104}
    )
    token_env: str = "STORMPROOF_OPS_TOKEN"
    loop_lag_fail_ms: int = 2_000
    stop_grace_ms: int = 3_000
    """On SIGTERM, how long services may take to finish their work before being cancelled."""


class IntakeConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /intents` on the strategy service's ops server: order intents from external signal
    sources, through the same risk and execution path as strategies (docs/intake.md)."""

    enabled: bool = True
    """Serve the endpoint. Even when enabled, it refuses every request (403) until the token
    environment variable is set: an open order entry is worse than none."""
    token_env: str = "STORMPROOF_INTAKE_TOKEN"
    """Environment variable holding the intake's own bearer token (never the ops token)."""
    max_body_bytes: int = 16_384
    """A larger request body is refused (413) before it is parsed."""
    dedupe_ttl_s: int = 86_400
    """How long an accepted intent id is remembered: a repeat within it is a duplicate."""
    max_in_flight: int = 32
    """Requests being accepted (claim + publish) at once; more are refused (503, Retry-After)
    rather than queued."""
    pending_ttl_s: int = 30
    """How long an intent id stays claimed while its publish is unfinished (a crash mid-way):
    after it, the caller may submit that id again."""

    def __post_init__(self) -> None:
        if not self.token_env:
            raise ValueError("intake.token_env must name an environment variable")
        if not 256 <= self.max_body_bytes <= 1_048_576:
            raise ValueError("intake.max_body_bytes must be between 256 and 1048576")
        if self.dedupe_ttl_s < 60:
            raise ValueError("intake.dedupe_ttl_s must be at least 60")
        if not 1 <= self.max_in_flight <= 10_000:
            raise ValueError("intake.max_in_flight must be between 1 and 10000")
        if not 1 <= self.pending_ttl_s < self.dedupe_ttl_s:
            raise ValueError("intake.pending_ttl_s must be at least 1 and below dedupe_ttl_s")


class LoggingConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    level: Literal["debug", "info", "warning", "error"] = "info"


class EngineConfig(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    venue: VenueConfig
    bus: BusConfig = BusConfig()
    feed: FeedConfig = FeedConfig()
    strategies: list[StrategyConfig] = msgspec.field(default_factory=lambda: [StrategyConfig()])
    risk: RiskConfig = RiskConfig()
    execution: ExecutionConfig = ExecutionConfig()
    lease: LeaseConfig = LeaseConfig()
    ops: OpsConfig = OpsConfig()
    intake: IntakeConfig = IntakeConfig()
    logging: LoggingConfig = LoggingConfig()

    def __post_init__(self) -> None:
        if not self.venue.ws_urls:
            raise ValueError("venue.ws_urls must name at least one feed endpoint")
        if self.bus.socket_timeout_ms <= self.bus.read_block_ms:
            raise ValueError("bus.socket_timeout_ms must be greater than bus.read_block_ms")
        names = [s.name for s in self.strategies]
        if len(set(names)) != len(names):
            raise ValueError(f"strategy names must be unique, got {names}")
        if not self.venue.symbols:
            raise ValueError("venue.symbols must name at least one symbol")
        for service in SERVICES:
            if service not in self.ops.ports:
                raise ValueError(f"ops.ports has no port for service {service!r}")
        if self.intake.token_env == self.ops.token_env:
            raise ValueError(
                "intake.token_env must differ from ops.token_env: a signal source must not"
                " hold the kill switch"
            )


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


def parse_config(data: bytes, *, source: str = "<config>") -> EngineConfig:
    try:
        return msgspec.toml.decode(data, type=EngineConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid config {source}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"config {source} is not valid TOML: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"invalid config {source}: {exc}") from None


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if env is None else env
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {file}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
    config = parse_config(data, source=str(file))
    secrets = Secrets(
        api_key=Secret(environ.get(config.venue.api_key_env, "")),
        api_secret=Secret(environ.get(config.venue.api_secret_env, "")),
        ops_token=Secret(environ.get(config.ops.token_env, "")),
        journal_dsn=Secret(environ.get(config.execution.journal_dsn_env, "")),
        intake_token=Secret(environ.get(config.intake.token_env, "")),
    )
    if config.execution.journal_backend == "postgres" and not secrets.journal_dsn:
        raise ConfigError(
            f"execution.journal_backend is postgres but ${config.execution.journal_dsn_env}"
            " (the PostgreSQL DSN) is not set"
        )
    return Settings(config=config, secrets=secrets, path=str(file.resolve()))


def dump_config(config: EngineConfig) -> bytes:
    return msgspec.toml.encode(config)
