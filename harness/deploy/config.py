"""The engine config of the Kubernetes deployment, rendered from the engine's own structs.

    deploy/kubernetes/base/engine.toml                 staging: every link through Toxiproxy,
                                                       the staging venue (replay + simulator)
    deploy/kubernetes/base/toxiproxy.json              the Toxiproxy proxies those URLs name
    deploy/kubernetes/overlays/production/engine.toml  production: Binance, Redis direct

Each file is a kustomize configMapGenerator's input and is committed; `stormproof deploy
render-config` rewrites them, and a test requires the committed files to equal a fresh render,
so they cannot drift from the structs. Every engine.toml is checked with the engine's own
`parse_config` before it is written: a config the engine would refuse never reaches a pod.

In-cluster names are the Services of deploy/kubernetes/base (short names: the pods' DNS search
path is their namespace's). The links are the local stack's (harness/stack.py), one Toxiproxy
proxy each:

    engine ──► toxiproxy:19443 [engine_to_feed]        ──► venue:9443 (replay feed, WebSocket)
    engine ──► toxiproxy:19444 [engine_to_feed_b]      ──► venue:9443 (a redundant connection)
    engine ──► toxiproxy:19080 [engine_to_rest]        ──► venue:9080 (simulator REST)
    engine ──► toxiproxy:19445 [engine_to_user_stream] ──► venue:9443 (user data stream)
    services ► toxiproxy:16379 [services_to_redis]     ──► redis:6379
    execution► toxiproxy:15432 [execution_to_journal]  ──► postgres:5432 (the DSN, a Secret)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from engine.config import (
    BusConfig,
    EngineConfig,
    ExecutionConfig,
    LeaseConfig,
    OpsConfig,
    RiskConfig,
    VenueConfig,
    dump_config,
    parse_config,
)
from engine.core.errors import ConfigError
from engine.strategy.registry import STRATEGY_PARAMS
from harness.strategies import STAGING_STRATEGIES
from harness.tools import PROJECT_ROOT

DEPLOY_ROOT = PROJECT_ROOT / "deploy" / "kubernetes"
NAMESPACE = "stormproof"
LEASE_NAME = "stormproof-execution"
SYMBOLS = ("BTCUSDT",)
"""The staging venue generates a synthetic recording of these symbols (its init container's
`replay synth --symbol`); a test holds the manifest to this list."""

OPS_PORTS = {"feed": 9101, "strategy": 9102, "risk": 9103, "execution": 9104}
"""Each service's ops server (probes, /metrics, /status, /ops; the strategy's intake). A pod
has its own address, but `parse_config` requires distinct ports (`run all` serves them all)."""
OPS_HOST = "0.0.0.0"
"""In a pod the network namespace is the boundary: the kubelet's probes and Prometheus reach the
pod's address, not its loopback. Probes and /metrics are open by design; POST /ops/* still needs
the bearer token, and the NetworkPolicies admit only Prometheus and the game day."""

VENUE_WS_PORT, VENUE_REST_PORT, VENUE_CONTROL_PORT = 9443, 9080, 9081
REDIS_PORT, POSTGRES_PORT, TOXIPROXY_API_PORT = 6379, 5432, 8474


@dataclass(frozen=True)
class Link:
    """One network link of the engine, through its own Toxiproxy proxy."""

    name: str
    port: int
    """Toxiproxy listens here (the `toxiproxy` Service exposes it under the link's name)."""
    upstream: str

    @property
    def address(self) -> str:
        return f"toxiproxy:{self.port}"


LINKS = (
    Link("engine_to_feed", 19443, f"venue:{VENUE_WS_PORT}"),
    Link("engine_to_feed_b", 19444, f"venue:{VENUE_WS_PORT}"),
    Link("engine_to_rest", 19080, f"venue:{VENUE_REST_PORT}"),
    Link("engine_to_user_stream", 19445, f"venue:{VENUE_WS_PORT}"),
    Link("services_to_redis", 16379, f"redis:{REDIS_PORT}"),
    Link("execution_to_journal", 15432, f"postgres:{POSTGRES_PORT}"),
)


def link(name: str) -> Link:
    """The link of that name (KeyError for another)."""
    return {candidate.name: candidate for candidate in LINKS}[name]


RISK = RiskConfig(max_position_qty=Decimal("0.05"), max_notional_per_order=Decimal("2000"))

LEASE = LeaseConfig(
    backend="kubernetes",
    name=LEASE_NAME,
    namespace=NAMESPACE,
    ttl_ms=5_000,
    renew_interval_ms=1_000,
)
"""A coordination.k8s.io Lease (whole seconds: leaseDurationSeconds). A leader rides out an API
server that answers nothing for up to four seconds; the standby takes over within about six."""

EXECUTION = ExecutionConfig(journal_backend="postgres")
"""The pair shares the PostgreSQL journal; its DSN is the Secret's STORMPROOF_JOURNAL_DSN."""


def _ws(name: str) -> str:
    return f"ws://{link(name).address}"


def staging_config() -> EngineConfig:
    """The engine on the staging venue, every link through its Toxiproxy proxy."""
    return EngineConfig(
        venue=VenueConfig(
            name="binance",
            ws_urls=[_ws("engine_to_feed"), _ws("engine_to_feed_b")],
            rest_url=f"http://{link('engine_to_rest').address}",
            user_stream_url=_ws("engine_to_user_stream"),
            symbols=list(SYMBOLS),
        ),
        bus=BusConfig(redis_url=f"redis://{link('services_to_redis').address}/0"),
        strategies=list(STAGING_STRATEGIES),
        risk=RISK,
        execution=EXECUTION,
        lease=LEASE,
        ops=OpsConfig(host=OPS_HOST, ports=dict(OPS_PORTS)),
    )


def production_config() -> EngineConfig:
    """The documented production example: Binance spot (two market-data hosts for the
    redundant feeds), Redis and PostgreSQL directly (no Toxiproxy in a production path: TLS to
    the venue cannot pass a plain TCP proxy under another host name)."""
    staging = staging_config()
    return EngineConfig(
        venue=VenueConfig(
            name="binance",
            ws_urls=["wss://stream.binance.com:9443", "wss://data-stream.binance.vision"],
            rest_url="https://api.binance.com",
            user_stream_url="wss://ws-api.binance.com:443",
            symbols=list(SYMBOLS),
        ),
        bus=BusConfig(redis_url=f"redis://redis:{REDIS_PORT}/0"),
        strategies=staging.strategies,
        risk=staging.risk,
        execution=staging.execution,
        lease=staging.lease,
        ops=staging.ops,
    )


def engine_toml(config: EngineConfig, *, source: str) -> bytes:
    """The config as the engine reads it, checked by the engine's own loader."""
    data = dump_config(config)
    try:
        parse_config(data, strategy_params=STRATEGY_PARAMS, source=source)
    except ConfigError as exc:
        raise ConfigError(f"the deployment's engine config is refused: {exc}") from None
    return b"# generated by `stormproof deploy render-config` (harness/deploy/config.py)\n" + data


def toxiproxy_json() -> bytes:
    """Toxiproxy's -config file: one proxy per link, listening on every pod address."""
    proxies = [
        {"name": link.name, "listen": f"0.0.0.0:{link.port}", "upstream": link.upstream}
        for link in LINKS
    ]
    return (json.dumps(proxies, indent=2) + "\n").encode()


STAGING_CONFIG = Path("base/engine.toml")
PRODUCTION_CONFIG = Path("overlays/production/engine.toml")
TOXIPROXY_CONFIG = Path("base/toxiproxy.json")


def rendered() -> dict[Path, bytes]:
    """Every generated file, by its path under deploy/kubernetes."""
    return {
        STAGING_CONFIG: engine_toml(staging_config(), source=str(STAGING_CONFIG)),
        PRODUCTION_CONFIG: engine_toml(production_config(), source=str(PRODUCTION_CONFIG)),
        TOXIPROXY_CONFIG: toxiproxy_json(),
    }


def write_rendered(root: Path = DEPLOY_ROOT) -> list[Path]:
    """Write every generated file under `root`; returns the ones whose content changed."""
    changed = []
    for relative, data in rendered().items():
        path = root / relative
        if not path.exists() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            changed.append(path)
    return changed


def stale(root: Path = DEPLOY_ROOT) -> list[Path]:
    """The generated files under `root` that differ from a fresh render (or are missing)."""
    return [
        root / relative
        for relative, data in rendered().items()
        if not (root / relative).exists() or (root / relative).read_bytes() != data
    ]
