"""An authenticated bus with least privilege: the stack's Redis ACL (harness/redis_acl.py) on a
real Redis. Each service's user may write only the streams it must write; nobody without a
password may do anything (the XADD-to-control attack of issue 18); nobody may run FLUSHALL or
CONFIG; and the engine's own bus client reports a refusal as a permission error, not an outage.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.bus.redis_streams import RedisStreamsBus
from engine.core.errors import BusPermissionError, BusUnavailableError
from engine.core.messages import Control
from harness import redis_acl
from harness.ports import free_ports, port_open
from harness.tools import redis_server
from tests.helpers import process, replay_process
from tests.helpers import redis as redis_process
from tests.integration.trading import (
    OPS_TOKEN,
    engine_argv,
    engine_config,
    post,
    running,
    wait_started,
)

pytestmark = pytest.mark.integration
PASSWORDS = {user: f"pw-{user}-0123456789" for user in redis_acl.USERS}


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("acl")
    aclfile = tmp / "users.acl"
    aclfile.write_text(redis_acl.acl_file(PASSWORDS))
    with redis_process(tmp, aclfile=aclfile) as redis_port:
        yield redis_port


def client(port: int, user: str) -> redis.Redis:
    return redis.Redis(port=port, username=user, password=PASSWORDS[user], socket_timeout=2)


STREAMS = (
    "md.binance.BTCUSDT",
    "intents",
    "orders.binance",
    "exec.binance",
    "risk.events",
    "control",
)
MAY_WRITE = {
    "feed": {"md.binance.BTCUSDT"},
    "strategy": {"intents"},
    "risk": {"orders.binance", "risk.events", "intents", "control"},
    "execution": {"exec.binance", "control"},
    "engine": set(STREAMS),
    "harness": set(),
    "bench": set(),
}


@pytest.mark.parametrize("user", sorted(MAY_WRITE))
def test_each_user_writes_exactly_the_streams_its_service_must(port: int, user: str) -> None:
    with client(port, user) as conn:
        for stream in STREAMS:
            if stream in MAY_WRITE[user]:
                assert conn.xadd(stream, {"m": b"{}"})
            else:
                with pytest.raises(redis.exceptions.NoPermissionError):
                    conn.xadd(stream, {"m": b"{}"})


def test_without_a_password_nothing_can_be_written_not_even_a_pause(port: int) -> None:
    once = Retry(NoBackoff(), 0)  # a refusal is an answer: no retries
    with (
        redis.Redis(port=port, socket_timeout=2, retry=once) as anonymous,
        pytest.raises(redis.exceptions.AuthenticationError),
    ):
        anonymous.xadd("control", {"m": b'{"type":"control","command":"pause"}'})
    with (
        redis.Redis(
            port=port, username="risk", password="guessed", socket_timeout=2, retry=once
        ) as guess,
        pytest.raises(redis.exceptions.AuthenticationError),
    ):
        guess.ping()


@pytest.mark.parametrize("user", redis_acl.USERS)
def test_nobody_may_wipe_or_reconfigure_redis(port: int, user: str) -> None:
    with client(port, user) as conn:
        for command in (("FLUSHALL",), ("CONFIG", "SET", "appendonly", "no"), ("KEYS", "*")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                conn.execute_command(*command)


def test_a_consumer_reads_and_acknowledges_only_what_it_consumes(port: int) -> None:
    with client(port, "strategy") as strategy, client(port, "engine") as engine:
        engine.xadd("orders.binance", {"m": b"{}"})
        strategy.xgroup_create("md.binance.BTCUSDT", "strategy", id="0", mkstream=True)
        assert strategy.xreadgroup("strategy", "s1", {"md.binance.BTCUSDT": ">"}, count=1)
        with pytest.raises(redis.exceptions.NoPermissionError):
            strategy.xgroup_create("orders.binance", "strategy", id="0")
        assert strategy.set("stormproof:kv:strategy.momentum", b"{}")
        with pytest.raises(redis.exceptions.NoPermissionError):
            strategy.set("stormproof:kv:risk.state", b"{}")
        with pytest.raises(redis.exceptions.NoPermissionError):
            strategy.set("intents", b"overwritten")  # a stream key is no place for SET


def test_the_harness_reads_everything_and_writes_nothing(port: int) -> None:
    with client(port, "harness") as harness, client(port, "feed") as feed:
        feed.xadd("md.binance.BTCUSDT", {"m": b"{}"})
        assert harness.xrevrange("md.binance.BTCUSDT", count=1)
        assert harness.xread({"md.binance.BTCUSDT": "0-0"}, count=1)
        with pytest.raises(redis.exceptions.NoPermissionError):
            harness.delete("md.binance.BTCUSDT")


async def test_the_engines_bus_reports_a_refused_write_as_a_permission_error(port: int) -> None:
    bus = RedisStreamsBus(
        f"redis://127.0.0.1:{port}/0", username="strategy", password=PASSWORDS["strategy"]
    )
    try:
        await bus.ping()
        with pytest.raises(BusPermissionError, match="no permissions"):
            await bus.publish("control", Control(command="halt", reason="not mine to send"))
    finally:
        await bus.close()
    wrong = RedisStreamsBus(f"redis://127.0.0.1:{port}/0", username="strategy", password="nope")
    try:
        with pytest.raises(BusPermissionError):
            await wrong.ping()
    finally:
        await wrong.close()


def test_ops_commands_go_to_risk_a_feed_refuses_them_with_a_reason(
    tmp_path: Path, port: int, synth_recording: Path
) -> None:
    """The feed's bus user may not write control: its ops server answers 403 and says where
    to send the command, risk's accepts it (202), and the command is on the control stream."""
    env = {
        "STORMPROOF_REDIS_USER": "feed",
        "STORMPROOF_REDIS_PASSWORD": PASSWORDS["feed"],
    }
    with replay_process(tmp_path, synth_recording, speed="1") as sim:
        config, ports = engine_config(tmp_path, sim, port)
        feed_log, risk_log = tmp_path / "feed.log", tmp_path / "risk.log"
        with running(engine_argv(config, "feed"), feed_log, env) as feed:
            risk_env = {
                "STORMPROOF_REDIS_USER": "risk",
                "STORMPROOF_REDIS_PASSWORD": PASSWORDS["risk"],
            }
            with running(engine_argv(config, "risk"), risk_log, risk_env) as risk:
                wait_started(ports["risk"], risk, risk_log)
                wait_started(ports["feed"], feed, feed_log)
                assert post(f"http://127.0.0.1:{ports['feed']}/ops/pause", OPS_TOKEN) == 403
                assert post(f"http://127.0.0.1:{ports['risk']}/ops/pause", OPS_TOKEN) == 202
                assert post(f"http://127.0.0.1:{ports['risk']}/ops/resume", OPS_TOKEN) == 202
    with client(port, "harness") as harness:
        commands = [fields[b"m"] for _, fields in harness.xrange("control")]
    assert any(b'"command":"pause"' in raw for raw in commands)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (openssl, from the machine's packages)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


async def test_the_bus_speaks_tls_to_a_redis_that_requires_it(tmp_path: Path) -> None:
    """rediss:// with the server's CA in the URL: what a managed or clustered Redis asks for."""
    cert, key = self_signed(tmp_path)
    aclfile = tmp_path / "users.acl"
    aclfile.write_text(redis_acl.acl_file(PASSWORDS))
    tls_port = free_ports(1)[0]
    argv = [
        redis_server(),
        "--port",
        "0",
        "--tls-port",
        str(tls_port),
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(cert),
        "--tls-auth-clients",
        "no",
        "--aclfile",
        str(aclfile),
        "--save",
        "",
        "--dir",
        str(tmp_path),
    ]
    with process(argv, log=tmp_path / "redis-tls.log", ready=lambda: port_open(tls_port)):
        url = f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}"
        bus = RedisStreamsBus(url, username="risk", password=PASSWORDS["risk"])
        try:
            await bus.ping()
            entry = await bus.publish("control", Control(command="pause", reason="over TLS"))
            assert entry
        finally:
            await bus.close()
        plain = RedisStreamsBus(
            f"redis://127.0.0.1:{tls_port}/0",
            username="risk",
            password=PASSWORDS["risk"],
            socket_timeout_ms=500,
        )
        try:
            with pytest.raises(BusUnavailableError):
                await plain.ping()
        finally:
            await plain.close()
