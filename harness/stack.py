"""The local stack: redis, toxiproxy (one proxy per network link), the replay feed with the
exchange simulator, and the engine services, each a separate process under the supervisor.

    engine ──► toxiproxy[engine_to_feed]        ──► replay feed (WebSocket)
    engine ──► toxiproxy[engine_to_feed_b]      ──► replay feed (a redundant connection)
    engine ──► toxiproxy[engine_to_rest]        ──► exchange simulator (REST)
    engine ──► toxiproxy[engine_to_user_stream] ──► simulator user data stream (WebSocket)
    services ─► toxiproxy[services_to_redis] ─► redis
    execution ► toxiproxy[execution_to_journal] ► postgres   (journal = "postgres" only)

With `standby`, a second execution instance (engine-execution-b, ops port ops_execution-b)
runs as a hot standby: the pair shares the PostgreSQL journal and a Redis lease (TTL 2 s).

Everything binds to 127.0.0.1. A run directory holds the stack (`harness.runfile` is its
contract): stack.json (processes), engine.toml (from `engine.config` structs), secrets.env,
ports.json, state.json and events.jsonl (written by the supervisor), logs/, the journal and redis
data.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeGuard

import msgspec
import redis

from engine.config import (
    BusConfig,
    EngineConfig,
    ExecutionConfig,
    LeaseConfig,
    OpsConfig,
    RiskConfig,
    StrategyConfig,
    VenueConfig,
    dump_config,
    parse_config,
)
from engine.core.errors import ConfigError
from engine.core.messages import Fill
from engine.core.orders import OrderRecord
from engine.execution.journal import PostgresJournal, SqliteJournalSync
from engine.strategy.registry import STRATEGY_PARAMS
from harness import postgres_server, redis_acl
from harness.client import StackClient
from harness.errors import StackError, StackNotRunningError
from harness.ports import free_ports
from harness.runfile import EVENTS, HOST, STACK_SPEC, STATE, SUPERVISOR_PID, RunDir, RunDirError
from harness.strategies import STAGING_STRATEGIES
from harness.supervisor import ProcessSpec, StackSpec
from harness.tools import redis_server, shared_data_dir, toxiproxy_server

ENGINE_SERVICES = ("feed", "strategy", "risk", "execution")

DEFAULT_STRATEGIES = STAGING_STRATEGIES


@dataclass(frozen=True, kw_only=True)
class StackOptions:
    recordings: list[Path]
    speed: str = "10"
    engine_mode: Literal["split", "all"] = "split"
    balances: dict[str, Decimal] = field(
        default_factory=lambda: {"USDT": Decimal(100_000), "BTC": Decimal(1)}
    )
    exchange_info: Path | None = None
    strategies: tuple[StrategyConfig, ...] = DEFAULT_STRATEGIES
    extra_engine_toml: str = ""
    """Engine config (TOML) laid over the stack's: its tables are merged into the stack's
    sections, its [[strategies]] added to the stack's strategies."""
    ready_timeout_s: float = 90.0
    keep_state: bool = False
    """Keep the journal and redis data of a previous run in the same directory."""
    feeds: int = 2
    """Market-data connections (1 or 2), each through its own proxy: 2 is redundant feeds."""
    journal: Literal["sqlite", "postgres"] = "sqlite"
    """The execution journal: the embedded SQLite file, or a PostgreSQL server of the stack's
    own behind the execution_to_journal proxy."""
    standby: bool = False
    """A hot standby execution instance (needs the PostgreSQL journal)."""
    lease_ttl_ms: int = 2_000
    orders_per_10s: int | None = None
    """The venue's order-count limit per account and 10 s (None: Binance's 100). The engine's
    own budgets (risk's order rate, execution's order pacing) take half of it. Load runs raise
    it: order flow from Locust plus the strategies would otherwise be throttled by design."""
    market: Literal["spot", "usdm", "coinm"] = "spot"
    """The market the engine trades: spot, USD-M or COIN-M futures (the recording must be
    one)."""
    engine_root: Path | None = None
    """Run the engine services from this folder (a copy holding `engine/` and `plumbing/`, such
    as a mutant of the engine) instead of the installed package; everything else is ours."""

    def __post_init__(self) -> None:
        if self.standby and self.journal != "postgres":
            raise StackError("a standby execution instance needs journal = postgres")
        if self.journal == "postgres" and self.keep_state:
            raise StackError("keep_state is for the SQLite journal (the PostgreSQL one is fresh)")
        if self.orders_per_10s is not None and not 10 <= self.orders_per_10s <= 100_000:
            raise StackError("orders_per_10s must be between 10 and 100000")
        if self.feeds not in (1, 2):
            raise StackError(f"feeds must be 1 or 2, not {self.feeds}")


def _overlay(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` laid over `base`: tables merged key by key (extra wins), arrays of tables (the
    strategies) added to."""
    merged = dict(base)
    for key, value in extra.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            merged[key] = _overlay(old, value)
        elif _is_tables(old) and _is_tables(value):
            merged[key] = [*old, *value]
        else:
            merged[key] = value
    return merged


def _is_tables(value: object) -> TypeGuard[list[Any]]:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _process_alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line for line in status.splitlines() if line.startswith("State:")), "")
    return "Z" not in state.split(":", 1)[-1][:3]


class Stack:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir.resolve()
        self.files = RunDir(self.run_dir)
        self._supervisor: subprocess.Popen[bytes] | None = None

    # --- files --------------------------------------------------------------------------------

    @property
    def ports(self) -> dict[str, int]:
        if not self.files.exists():
            raise StackNotRunningError(f"no stack in {self.run_dir}")
        return self.files.ports()

    @property
    def secrets(self) -> dict[str, str]:
        return self.files.secrets()

    def client(self) -> StackClient:
        """HTTP to the running stack's services and simulator."""
        try:
            return StackClient.of(self.files)
        except RunDirError as exc:
            raise StackNotRunningError(str(exc)) from None

    def state(self) -> dict[str, Any]:
        path = self.run_dir / STATE
        if not path.exists():
            raise StackNotRunningError(f"no stack in {self.run_dir}")
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def events(self) -> list[dict[str, Any]]:
        path = self.run_dir / EVENTS
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def supervisor_pid(self) -> int | None:
        path = self.run_dir / SUPERVISOR_PID
        if not path.exists():
            return None
        pid = int(path.read_text().strip() or 0)
        return pid if pid and _process_alive(pid) else None

    @property
    def journal_path(self) -> Path:
        return self.run_dir / "journal.sqlite"

    @property
    def journal_dsn(self) -> str | None:
        """The PostgreSQL journal, directly (not through the proxy); None for SQLite."""
        port = self.ports.get("postgres")
        return None if port is None else postgres_server.dsn(port)

    def read_journal(self) -> tuple[list[OrderRecord], list[Fill]]:
        """Every order and fill of the journal, whichever backend the stack runs."""
        dsn = self.journal_dsn
        if dsn is None:
            journal = SqliteJournalSync(self.journal_path, read_only=True)
            try:
                return journal.all_orders(), journal.fills()
            finally:
                journal.close()

        async def read() -> tuple[list[OrderRecord], list[Fill]]:
            db = PostgresJournal(dsn)
            await db.open()
            try:
                return await db.all_orders(), await db.fills()
            finally:
                await db.close()

        return asyncio.run(read())

    def _cluster_file(self) -> Path:
        return self.run_dir / "postgres.cluster"

    def _remove_cluster(self) -> None:
        path = self._cluster_file()
        if path.exists():
            shutil.rmtree(path.read_text().strip(), ignore_errors=True)
            path.unlink()

    def endpoints(self) -> dict[str, str]:
        p = self.ports
        out = {
            "redis": f"redis://{HOST}:{p['redis']}/0",
            "toxiproxy api": f"http://{HOST}:{p['toxiproxy']}",
            "replay feed (WebSocket)": f"ws://{HOST}:{p['replay_ws']}",
            "exchange simulator (REST)": f"http://{HOST}:{p['replay_rest']}",
            "replay control": f"http://{HOST}:{p['replay_control']}",
            "proxy engine_to_feed": f"ws://{HOST}:{p['proxy_feed']}",
            "proxy engine_to_feed_b": f"ws://{HOST}:{p['proxy_feed_b']}",
            "proxy engine_to_rest": f"http://{HOST}:{p['proxy_rest']}",
            "proxy engine_to_user_stream": f"ws://{HOST}:{p['proxy_user_stream']}",
            "proxy services_to_redis": f"redis://{HOST}:{p['proxy_redis']}/0",
        }
        if "postgres" in p:
            out["postgres (journal)"] = f"postgresql://{HOST}:{p['postgres']}"
            out["proxy execution_to_journal"] = f"postgresql://{HOST}:{p['proxy_journal']}"
        for key in sorted(k for k in p if k.startswith("ops_")):
            out[f"engine {key[4:]} ops"] = f"http://{HOST}:{p[key]}"
        return out

    # --- layout -------------------------------------------------------------------------------

    def write_layout(self, options: StackOptions) -> StackSpec:
        """Write the run directory (`harness.runfile`) for a stack of these options: ports,
        secrets, engine config, Redis users, and the processes for the supervisor."""
        redis_bin, toxiproxy_bin = redis_server(), toxiproxy_server()
        for recording in options.recordings:
            if not recording.exists():
                raise StackError(f"recording not found: {recording}")
        self._clear(options)
        names = self._port_names(options)
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        self.files.write_ports(ports)
        secret_values = self._new_secrets(options, ports)
        self.files.write_secrets(secret_values)
        config_path = self.files.write_engine_config(self._engine_toml(ports, options))
        standby_config = None
        if options.standby:
            standby_ports = {**ports, "ops_execution": ports["ops_execution-b"]}
            standby_config = self.files.write_engine_config(
                self._engine_toml(standby_ports, options), standby=True
            )
        redis_dir = self.run_dir / "redis"
        redis_dir.mkdir(exist_ok=True)
        acl_path = redis_dir / "users.acl"  # hashed passwords only, still private
        self.files.write_private(
            acl_path,
            redis_acl.acl_file(
                {u: secret_values[redis_acl.password_key(u)] for u in redis_acl.USERS}
            ),
        )
        processes = [
            self._redis_process(redis_bin, ports, redis_dir, acl_path),
            ProcessSpec(
                name="toxiproxy",
                group=0,
                secrets=[],
                ready_http=f"http://{HOST}:{ports['toxiproxy']}/version",
                argv=[toxiproxy_bin, "-host", HOST, "-port", str(ports["toxiproxy"])],
            ),
            ProcessSpec(
                name="replay",
                group=1,
                argv=self._replay_argv(options, ports),
                secrets=[
                    "STORMPROOF_SIM_API_KEY",
                    "STORMPROOF_SIM_API_SECRET",
                    "STORMPROOF_SIM_CONTROL_TOKEN",
                ],
                ready_http=f"http://{HOST}:{ports['replay_control']}/healthz",
            ),
        ]
        proxies = self._proxies(ports)
        if options.journal == "postgres":
            cluster = postgres_server.init_cluster(self.run_dir / "postgres-initdb.log")
            self._cluster_file().write_text(str(cluster.root))
            processes.append(
                ProcessSpec(
                    name="postgres",
                    group=0,
                    ready_tcp=ports["postgres"],
                    argv=cluster.server_argv(port=ports["postgres"], host=HOST),
                    user=postgres_server.server_user(),
                    stop_signal="SIGINT",
                    secrets=[],
                )
            )
            proxies.append(
                {
                    "name": "execution_to_journal",
                    "listen": f"{HOST}:{ports['proxy_journal']}",
                    "upstream": f"{HOST}:{ports['postgres']}",
                }
            )
        processes += self._engine_processes(options, ports, config_path, standby_config)
        spec = StackSpec(
            processes=processes,
            toxiproxy_api=(HOST, ports["toxiproxy"]),
            proxies=proxies,
        )
        spec.dump(self.run_dir / STACK_SPEC)
        return spec

    def _clear(self, options: StackOptions) -> None:
        """A fresh run directory: no state of a previous supervisor; without `keep_state`, no
        journal, Redis data, logs or PostgreSQL cluster either."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for stale in (STATE, EVENTS, SUPERVISOR_PID):
            (self.run_dir / stale).unlink(missing_ok=True)
        if not options.keep_state:
            self._remove_cluster()
            shutil.rmtree(self.run_dir / "redis", ignore_errors=True)
            shutil.rmtree(self.run_dir / "logs", ignore_errors=True)
            for name in ("journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"):
                (self.run_dir / name).unlink(missing_ok=True)

    @staticmethod
    def _port_names(options: StackOptions) -> list[str]:
        """The keys of ports.json: every server, proxy and engine ops port of this stack."""
        names = [
            "redis",
            "toxiproxy",
            "replay_ws",
            "replay_rest",
            "replay_control",
            "proxy_feed",
            "proxy_feed_b",
            "proxy_rest",
            "proxy_user_stream",
            "proxy_redis",
            *(f"ops_{s}" for s in ENGINE_SERVICES),
        ]
        if options.journal == "postgres":
            names += ["postgres", "proxy_journal"]
        if options.standby:
            names.append("ops_execution-b")
        return names

    @staticmethod
    def _new_secrets(options: StackOptions, ports: dict[str, int]) -> dict[str, str]:
        """secrets.env: fresh keys and tokens, the simulator sharing the engine's API key."""
        values = {
            "STORMPROOF_API_KEY": secrets.token_hex(16),
            "STORMPROOF_API_SECRET": secrets.token_hex(32),
            "STORMPROOF_OPS_TOKEN": secrets.token_urlsafe(24),
            "STORMPROOF_SIM_CONTROL_TOKEN": secrets.token_urlsafe(24),
            "STORMPROOF_INTAKE_TOKEN": secrets.token_urlsafe(24),
        }
        for user in redis_acl.USERS:
            values[redis_acl.password_key(user)] = secrets.token_urlsafe(24)
        values["STORMPROOF_SIM_API_KEY"] = values["STORMPROOF_API_KEY"]
        values["STORMPROOF_SIM_API_SECRET"] = values["STORMPROOF_API_SECRET"]
        if options.journal == "postgres":
            values["STORMPROOF_JOURNAL_DSN"] = postgres_server.dsn(ports["proxy_journal"])
        return values

    @staticmethod
    def _redis_process(
        redis_bin: str, ports: dict[str, int], redis_dir: Path, acl_path: Path
    ) -> ProcessSpec:
        return ProcessSpec(
            name="redis",
            group=0,
            ready_tcp=ports["redis"],
            argv=[
                redis_bin,
                "--port",
                str(ports["redis"]),
                "--bind",
                HOST,
                "--dir",
                str(redis_dir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                "--aclfile",
                str(acl_path),
            ],
            secrets=[],
        )

    @staticmethod
    def _replay_argv(options: StackOptions, ports: dict[str, int]) -> list[str]:
        exchange_info = options.exchange_info
        if exchange_info is None and (data := shared_data_dir()) is not None:
            candidate = data / "exchange-info" / "binance-spot-exchangeinfo-20211012.json"
            exchange_info = candidate if candidate.exists() else None
        argv = [
            sys.executable,
            "-m",
            "replay",
            "serve",
            "--speed",
            options.speed,
            "--host",
            HOST,
            "--ws-port",
            str(ports["replay_ws"]),
            "--rest-port",
            str(ports["replay_rest"]),
            "--control-port",
            str(ports["replay_control"]),
        ]
        for recording in options.recordings:
            argv += ["--recording", str(recording.resolve())]
        for asset, amount in options.balances.items():
            argv += ["--balance", f"{asset}={amount}"]
        if exchange_info is not None:
            argv += ["--exchange-info", str(exchange_info)]
        if options.orders_per_10s is not None:
            # request weight grows with the order flow (an order costs 1, a query 4)
            weight = max(6000, options.orders_per_10s * 6 * 5)
            argv += ["--orders-per-10s", str(options.orders_per_10s)]
            argv += ["--weight-per-minute", str(weight)]
        return argv

    def _engine_processes(
        self,
        options: StackOptions,
        ports: dict[str, int],
        config: Path,
        standby_config: Path | None,
    ) -> list[ProcessSpec]:
        """A process per engine service (or one for `all`), and the standby execution."""
        engine_python, engine_env = self._engine_interpreter(options)
        runs = [
            (
                f"engine-{service}",
                service,
                config,
                "ops_feed" if service == "all" else f"ops_{service}",
            )
            for service in (["all"] if options.engine_mode == "all" else list(ENGINE_SERVICES))
        ]
        if standby_config is not None:
            runs.append(("engine-execution-b", "execution", standby_config, "ops_execution-b"))
        return [
            ProcessSpec(
                name=name,
                group=2,
                argv=[*engine_python, "engine", "run", service, "--config", str(path)],
                **self._engine_process(service, engine_env),
                ready_http=f"http://{HOST}:{ports[port]}/readyz",
                live_http=f"http://{HOST}:{ports[port]}/livez",
                ready_timeout_s=options.ready_timeout_s,
            )
            for name, service, path, port in runs
        ]

    @staticmethod
    def _engine_process(service: str, env: dict[str, str]) -> dict[str, Any]:
        """An engine process's environment: its own Redis user (`all`: the engine user) and,
        by reference into secrets.env, that user's password and the engine's other secrets."""
        user = redis_acl.ENGINE_ALL if service == "all" else service
        return {
            "env": {**env, "STORMPROOF_REDIS_USER": user},
            "secrets": list(redis_acl.ENGINE_SECRETS),
            "secret_env": {"STORMPROOF_REDIS_PASSWORD": redis_acl.password_key(user)},
        }

    def redis_client(self, user: str = redis_acl.HARNESS, **options: Any) -> redis.Redis:
        """A client of the stack's Redis (directly, not through the proxy) as one of its users:
        the harness's read-only user by default."""
        return redis.Redis(
            host=HOST,
            port=self.ports["redis"],
            username=user,
            password=self.secrets.get(redis_acl.password_key(user)),
            **options,
        )

    @staticmethod
    def _engine_interpreter(options: StackOptions) -> tuple[list[str], dict[str, str]]:
        """How to start an engine service: `python -m` on the installed engine, or on the copy
        in `engine_root` (-P: the working directory must not put the real one first)."""
        if options.engine_root is None:
            return [sys.executable, "-m"], {}
        root = options.engine_root.resolve()
        if not (root / "engine" / "__main__.py").is_file():
            raise StackError(f"no engine package in {root}")
        return [sys.executable, "-P", "-m"], {"PYTHONPATH": str(root)}

    @staticmethod
    def _proxies(ports: dict[str, int]) -> list[dict[str, str]]:
        return [
            {
                "name": "engine_to_feed",
                "listen": f"{HOST}:{ports['proxy_feed']}",
                "upstream": f"{HOST}:{ports['replay_ws']}",
            },
            {
                "name": "engine_to_feed_b",
                "listen": f"{HOST}:{ports['proxy_feed_b']}",
                "upstream": f"{HOST}:{ports['replay_ws']}",
            },
            {
                "name": "engine_to_rest",
                "listen": f"{HOST}:{ports['proxy_rest']}",
                "upstream": f"{HOST}:{ports['replay_rest']}",
            },
            {
                "name": "engine_to_user_stream",
                "listen": f"{HOST}:{ports['proxy_user_stream']}",
                "upstream": f"{HOST}:{ports['replay_ws']}",
            },
            {
                "name": "services_to_redis",
                "listen": f"{HOST}:{ports['proxy_redis']}",
                "upstream": f"{HOST}:{ports['redis']}",
            },
        ]

    def _engine_toml(self, ports: dict[str, int], options: StackOptions) -> bytes:
        """engine.toml from the engine's own config structs, checked by the engine's own loader
        (a config the engine would refuse fails the layout, not the engine's start)."""
        data = dump_config(self._engine_config(ports, options))
        try:
            parse_config(data, strategy_params=STRATEGY_PARAMS, source="engine.toml")
        except ConfigError as exc:
            raise StackError(f"the stack's engine config is refused: {exc}") from None
        return b"# generated by `stormproof stack up`\n" + data

    def _engine_config(self, ports: dict[str, int], options: StackOptions) -> EngineConfig:
        feed_urls = [f"ws://{HOST}:{ports[p]}" for p in ("proxy_feed", "proxy_feed_b")]
        half = None if options.orders_per_10s is None else options.orders_per_10s // 2
        config = EngineConfig(
            venue=VenueConfig(
                name="binance",
                ws_urls=feed_urls[: max(1, min(2, options.feeds))],
                rest_url=f"http://{HOST}:{ports['proxy_rest']}",
                user_stream_url=f"ws://{HOST}:{ports['proxy_user_stream']}",
                symbols=self._symbols(options),
                market=options.market,
            ),
            bus=BusConfig(redis_url=f"redis://{HOST}:{ports['proxy_redis']}/0"),
            execution=ExecutionConfig(
                journal_path=str(self.run_dir / "journal.sqlite"),
                journal_backend=options.journal,
            ),
            lease=(
                LeaseConfig(
                    backend="redis",
                    ttl_ms=options.lease_ttl_ms,
                    renew_interval_ms=options.lease_ttl_ms // 4,
                )
                if options.standby
                else LeaseConfig()
            ),
            ops=OpsConfig(
                host=HOST,
                ports={s: ports[f"ops_{s}"] for s in ENGINE_SERVICES},
            ),
            risk=RiskConfig(
                max_position_qty=Decimal("0.05"), max_notional_per_order=Decimal("2000")
            ),
            strategies=list(options.strategies),
        )
        if half is not None:  # the engine's own budgets take half of the venue's order limit
            config = msgspec.structs.replace(
                config,
                execution=msgspec.structs.replace(config.execution, max_orders_per_10s=half),
                risk=msgspec.structs.replace(
                    config.risk, max_orders_per_window=half, order_rate_window_ms=10_000
                ),
            )
        if not options.extra_engine_toml.strip():
            return config
        try:
            extra = tomllib.loads(options.extra_engine_toml)
            merged = _overlay(msgspec.to_builtins(config), extra)
            overlaid: EngineConfig = msgspec.convert(merged, EngineConfig, strict=False)
        except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
            raise StackError(f"the extra engine config is refused: {exc}") from None
        return overlaid

    @staticmethod
    def _symbols(options: StackOptions) -> list[str]:
        from replay.server import scan_symbols

        found = scan_symbols(options.recordings)
        if not found:
            raise StackError("no Binance streams found in the recording")
        return found

    # --- up / down ----------------------------------------------------------------------------

    def up(self, options: StackOptions) -> dict[str, Any]:
        if self.supervisor_pid() is not None:
            raise StackError(f"a stack is already running in {self.run_dir} (stack down first)")
        self.write_layout(options)
        log = (self.run_dir / "supervisor.log").open("ab")
        self._supervisor = subprocess.Popen(
            [sys.executable, "-m", "harness.supervisor", str(self.run_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + options.ready_timeout_s + 60
        while time.monotonic() < deadline:
            if self._supervisor.poll() is not None:
                state = self._read_state_or_none()
                error = (state or {}).get("error") or "supervisor exited"
                raise StackError(f"stack failed to start: {error}")
            state = self._read_state_or_none()
            if state and state.get("phase") == "ready":
                return state
            if state and state.get("phase") == "failed":
                self._supervisor.wait(timeout=60)
                raise StackError(f"stack failed to start: {state.get('error')}")
            time.sleep(0.1)
        self.down()
        raise StackError(f"stack not ready within {options.ready_timeout_s + 60:.0f}s")

    def _read_state_or_none(self) -> dict[str, Any] | None:
        try:
            return self.state()
        except (StackNotRunningError, json.JSONDecodeError):
            return None

    def down(self, timeout_s: float = 60.0) -> dict[str, list[int]]:
        """Stop every process; returns each process's exit codes (0 is a clean exit)."""
        pid = self.supervisor_pid()
        if pid is None:
            raise StackNotRunningError(f"no running stack in {self.run_dir}")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _process_alive(pid):
            if self._supervisor is not None and self._supervisor.poll() is not None:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                raise StackError(f"supervisor {pid} did not stop within {timeout_s:.0f}s")
            time.sleep(0.05)
        if self._supervisor is not None:
            self._supervisor.wait(timeout=5)
        state = self.state()
        self._remove_cluster()
        return {name: p["exit_codes"] for name, p in state["processes"].items()}
