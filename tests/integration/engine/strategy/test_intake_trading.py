"""The order intake on a real engine: real Redis, the replay simulator as the venue, and the
engine's services as separate processes (and once as `run all`).

An intent posted to the strategy service's `POST /intents` must travel the strategies' path
(intents stream, risk, execution) and reach the venue once, under the clientOrderId execution
derives from the caller's intent id, whatever the caller repeats. The venue's own ground truth
(`GET /truth/orders` on the simulator's control API) is the judge.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.core.ids import client_order_id
from engine.core.messages import Intent
from tests.helpers import ReplayProcess, redis, replay_process, wait_until
from tests.integration.trading import (
    OPS_TOKEN,
    Bus,
    engine_argv,
    engine_config,
    get_json,
    running,
    status,
    venue_orders,
    wait_started,
)

pytestmark = pytest.mark.integration

INTAKE_TOKEN = "intake-token-for-trading-tests-9876543210"
WRONG_TOKEN = "not-the-intake-token-but-looks-like-one-1234"
SERVICES = ("feed", "execution", "risk", "strategy")
QUIET_STRATEGY = """
[[strategies]]
kind = "momentum"
name = "momentum"
params = { threshold_bps = 1000000000.0 }
[intake]
max_in_flight = 8
"""
"""The example strategy stays (it is what the strategy service runs) but never trades, so every
order at the venue is one the intake sent."""


@dataclass
class Engine:
    sim: ReplayProcess
    ports: dict[str, int]
    bus: Bus
    logs: list[Path]

    @property
    def intake_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['strategy']}/intents"

    def intents_on_bus(self, intent_id: str) -> list[Intent]:
        return [
            m
            for m in self.bus.messages("intents")
            if isinstance(m, Intent) and m.intent_id == intent_id
        ]


def post_intent(
    url: str, body: object, token: str | None = INTAKE_TOKEN, raw: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:  # aiohttp's own 404 for a route nobody serves is plain text
            return error.code, {"text": text.decode(errors="replace")}


def market(intent_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "intent_id": intent_id,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "qty": "0.001",
        "order_type": "MARKET",
        "source": "it-signals",
        **changes,
    }


def orders_for(sim: ReplayProcess, intent_id: str) -> list[dict[str, Any]]:
    coid = client_order_id(intent_id, 0)
    return [o for o in venue_orders(sim) if o["client_order_id"] == coid]


def wait_for_market(risk_port: int, strategy_port: int) -> None:
    wait_until(
        lambda: status(risk_port).get("mids", {}).get("BTCUSDT"),
        timeout_s=20,
        what="risk to see the market",
    )
    # intake intents are stamped with the strategy service's last mid
    wait_until(
        lambda: status(strategy_port).get("intake", {}).get("reference_prices", {}).get("BTCUSDT"),
        timeout_s=20,
        what="the strategy service to see the market",
    )


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, synth_recording: Path) -> Iterator[Engine]:
    tmp = tmp_path_factory.mktemp("intake")
    with ExitStack() as stack:
        redis_port = stack.enter_context(redis(tmp))
        sim = stack.enter_context(replay_process(tmp, synth_recording, speed="1"))
        config, ports = engine_config(tmp, sim, redis_port, extra=QUIET_STRATEGY)
        env = {"STORMPROOF_INTAKE_TOKEN": INTAKE_TOKEN}
        logs = []
        for service in SERVICES:
            log = tmp / f"{service}.log"
            logs.append(log)
            proc = stack.enter_context(running(engine_argv(config, service), log, env))
            wait_started(ports[service], proc, log)
        wait_for_market(ports["risk"], ports["strategy"])
        bus = Bus(redis_port)
        stack.callback(bus.close)
        yield Engine(sim=sim, ports=ports, bus=bus, logs=logs)


def test_a_valid_intent_reaches_the_venue_under_its_client_order_id(engine: Engine) -> None:
    code, body = post_intent(engine.intake_url, market("it-accept-1"))
    assert code == 202, body
    assert body["status"] == "accepted" and body["intent_id"] == "it-accept-1"
    orders = wait_until(
        lambda: orders_for(engine.sim, "it-accept-1"),
        timeout_s=20,
        what="the intake's order at the venue",
    )
    assert isinstance(orders, list) and len(orders) == 1
    (order,) = orders
    assert order["side"] == "BUY" and order["symbol"] == "BTCUSDT"
    (on_bus,) = engine.intents_on_bus("it-accept-1")
    assert on_bus.source == "intake:it-signals"
    assert on_bus.created_ts_ns == body["accepted_ts_ns"]
    assert on_bus.reference_price > 0, "stamped with the mid the strategy service saw"

    code, known = get_json(f"{engine.intake_url}/it-accept-1", INTAKE_TOKEN)
    assert code == 200
    assert known["status"] == "accepted"
    assert known["accepted_ts_ns"] == body["accepted_ts_ns"]
    assert len(known["payload_sha256"]) == 64


def test_the_same_intent_posted_again_is_a_duplicate_and_one_order(engine: Engine) -> None:
    first = post_intent(engine.intake_url, market("it-dup-1"))
    assert first[0] == 202, first
    wait_until(lambda: orders_for(engine.sim, "it-dup-1"), timeout_s=20, what="the first order")
    for _ in range(3):
        code, body = post_intent(engine.intake_url, market("it-dup-1"))
        assert code == 200, body
        assert body == {
            "intent_id": "it-dup-1",
            "status": "duplicate",
            "accepted_ts_ns": first[1]["accepted_ts_ns"],
        }
    assert len(engine.intents_on_bus("it-dup-1")) == 1, "nothing published for a duplicate"
    # a later intent through the same path: once it is at the venue, anything the repeats had
    # sent before it would have had its turn
    assert post_intent(engine.intake_url, market("it-dup-after"))[0] == 202
    wait_until(lambda: orders_for(engine.sim, "it-dup-after"), timeout_s=20, what="the later order")
    assert len(orders_for(engine.sim, "it-dup-1")) == 1, "exactly one order at the venue"


def test_the_same_id_with_another_payload_is_a_conflict(engine: Engine) -> None:
    assert post_intent(engine.intake_url, market("it-conflict-1"))[0] == 202
    code, body = post_intent(engine.intake_url, market("it-conflict-1", qty="0.002"))
    assert code == 409, body
    assert "it-conflict-1" in body["error"] and "different payload" in body["error"]
    code, _ = post_intent(engine.intake_url, market("it-conflict-1", side="SELL"))
    assert code == 409
    (on_bus,) = engine.intents_on_bus("it-conflict-1")
    assert str(on_bus.qty) == "0.001", "the first payload stands"


def test_missing_or_wrong_tokens_are_401(engine: Engine) -> None:
    for token in (None, WRONG_TOKEN, OPS_TOKEN):
        code, body = post_intent(engine.intake_url, market("it-auth-1"), token=token)
        assert code == 401, token
        assert body == {"error": "missing or invalid bearer token"}
    assert get_json(f"{engine.intake_url}/it-auth-1", WRONG_TOKEN)[0] == 401
    assert get_json(f"{engine.intake_url}/it-auth-1", INTAKE_TOKEN)[0] == 404, "never accepted"
    assert engine.intents_on_bus("it-auth-1") == []
    # the intake is the strategy service's: the other services do not serve it
    for service in ("feed", "risk", "execution"):
        url = f"http://127.0.0.1:{engine.ports[service]}/intents"
        assert post_intent(url, market("it-auth-1"))[0] == 404


@pytest.mark.parametrize(
    ("body", "raw", "code", "field"),
    [
        (None, b"{oops", 400, ""),
        (None, b'["a", "list"]', 400, ""),
        (market("it-bad-1", qty="-1"), None, 422, "qty"),
        (market("it-bad-2", symbol="DOGEUSDT"), None, 422, "symbol"),
        (market("it-bad-3", side="HOLD"), None, 422, "side"),
        (market("it-bad-4", limit_price="100"), None, 422, "limit_price"),
        (market("it-bad-5", order_type="LIMIT"), None, 422, "limit_price"),
        (market("it-bad-6", reduce_only="yes"), None, 422, "reduce_only"),
        (market("it-bad-7", leverage=10), None, 422, "leverage"),
        (market("bad id with spaces"), None, 422, "intent_id"),
        (market("it-bad-8", algo="twap"), None, 422, "algo_params"),
    ],
)
def test_bad_payloads_are_refused_naming_the_field(
    engine: Engine, body: Any, raw: bytes | None, code: int, field: str
) -> None:
    status_code, answer = post_intent(engine.intake_url, body, raw=raw)
    assert status_code == code, answer
    assert answer["field"] == field
    if field:
        assert answer["error"].startswith(f"{field}: "), answer
    else:
        assert "JSON" in answer["error"]
    if isinstance(body, dict):
        assert engine.intents_on_bus(body["intent_id"]) == []


def test_the_intake_token_is_in_no_status_and_no_log_line(engine: Engine) -> None:
    assert post_intent(engine.intake_url, market("it-secret-1"), token=WRONG_TOKEN)[0] == 401
    assert post_intent(engine.intake_url, market("it-secret-1"))[0] == 202
    wait_until(lambda: orders_for(engine.sim, "it-secret-1"), timeout_s=20, what="the order")
    strategy = status(engine.ports["strategy"])
    assert strategy["intake"]["token_configured"] is True
    assert strategy["intake"]["requests"]["accepted"] >= 1
    with urllib.request.urlopen(
        f"http://127.0.0.1:{engine.ports['strategy']}/metrics", timeout=3
    ) as response:
        metrics = response.read().decode()
    assert 'trading_intake_requests_total{outcome="accepted"}' in metrics
    statuses = [json.dumps(status(port)) for port in engine.ports.values()]
    logs = [log.read_text() for log in engine.logs]
    assert any('"intake_intent_accepted"' in text and "it-secret-1" in text for text in logs)
    for text in [*statuses, metrics, *logs]:
        for secret in (INTAKE_TOKEN, WRONG_TOKEN, OPS_TOKEN):
            assert secret not in text, "a token leaked into /status, /metrics or a log line"


def test_run_all_serves_the_intake_on_the_strategy_port(
    tmp_path: Path, synth_recording: Path
) -> None:
    with (
        redis(tmp_path) as redis_port,
        replay_process(tmp_path, synth_recording, speed="1") as sim,
    ):
        config, ports = engine_config(tmp_path, sim, redis_port, extra=QUIET_STRATEGY)
        log = tmp_path / "all.log"
        env = {"STORMPROOF_INTAKE_TOKEN": INTAKE_TOKEN}
        with running(engine_argv(config, "all"), log, env) as proc:
            for port in ports.values():
                wait_started(port, proc, log)
            wait_for_market(ports["risk"], ports["strategy"])
            url = f"http://127.0.0.1:{ports['strategy']}/intents"
            code, body = post_intent(url, market("it-all-1"))
            assert code == 202, body
            wait_until(
                lambda: orders_for(sim, "it-all-1"), timeout_s=20, what="the order at the venue"
            )
            assert post_intent(url, market("it-all-1"))[0] == 200
            assert post_intent(f"http://127.0.0.1:{ports['risk']}/intents", market("x"))[0] == 404
        assert INTAKE_TOKEN not in log.read_text()
