"""The intake endpoint in one process: the strategy service's real ops app on a loopback socket,
over a MemoryBus whose publish a test can stall or fail, to pin down the races and failure
answers (in flight, duplicate while pending, bus down) that a full engine cannot stage on cue.
The full path to the venue is in test_intake_trading.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from engine.bus.base import INTENTS, exec_stream, make_delivery, md_stream
from engine.bus.memory import MemoryBus
from engine.config import Secret, Secrets, Settings, parse_config
from engine.core.clock import LiveClock
from engine.core.errors import BusUnavailableError
from engine.core.intent_request import payload_fingerprint
from engine.core.messages import BusMessage, Fill, Intent, Quote, Side, encode
from engine.ops.server import build_ops_app
from engine.risk.service import RiskService
from engine.runtime.metrics import EngineMetrics
from engine.runtime.service import Service, ServiceContext
from engine.runtime.watchdog import LoopWatchdog
from engine.strategy.intake_api import intake_key
from engine.strategy.registry import STRATEGY_PARAMS
from engine.strategy.service import StrategyService

pytestmark = pytest.mark.integration

TOKEN = "intake-token-for-endpoint-tests-0123456789"
CONFIG = """
[venue]
ws_urls = ["ws://127.0.0.1:1"]
rest_url = "http://127.0.0.1:2"
symbols = ["BTCUSDT"]
[intake]
max_in_flight = 2
max_body_bytes = 1024
"""
BODY: dict[str, Any] = {
    "intent_id": "sig-1",
    "symbol": "BTCUSDT",
    "side": "BUY",
    "qty": "0.001",
    "order_type": "MARKET",
}


class ControlledBus(MemoryBus):
    """A MemoryBus whose intent publishes can be made to fail, or to wait for a gate."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = False
        self.gate: asyncio.Event | None = None
        self.waiting = 0

    async def publish(self, stream: str, message: BusMessage) -> str:
        if stream == INTENTS:
            if self.fail:
                raise BusUnavailableError("redis unavailable at redis://test: connection refused")
            if self.gate is not None:
                self.waiting += 1
                await self.gate.wait()
        return await super().publish(stream, message)

    async def intents(self) -> list[Intent]:
        out = [d.message for d in await self.read_range(INTENTS)]
        assert all(isinstance(m, Intent) for m in out)
        return out  # type: ignore[return-value]


@dataclass
class Served:
    client: TestClient[web.Request, web.Application]
    bus: ControlledBus
    service: StrategyService
    metrics: EngineMetrics

    async def post(
        self, body: object, token: str | None = TOKEN, raw: bytes | None = None
    ) -> tuple[int, dict[str, Any], Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        data = raw if raw is not None else json.dumps(body).encode()
        async with self.client.post("/intents", data=data, headers=headers) as response:
            return response.status, await response.json(), response.headers

    async def get(self, intent_id: str, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.client.get(f"/intents/{intent_id}", headers=headers) as response:
            return response.status, await response.json()

    def outcome(self, name: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "trading_intake_requests_total", {"outcome": name}
        )
        return 0.0 if value is None else value


def settings(token: str, extra: str = "") -> Settings:
    return Settings(
        config=parse_config((CONFIG + extra).encode(), strategy_params=STRATEGY_PARAMS),
        secrets=Secrets(
            api_key=Secret(""),
            api_secret=Secret(""),
            ops_token=Secret(""),
            intake_token=Secret(token),
        ),
        path="<test>",
    )


def ops_app(service: Service, metrics: EngineMetrics) -> web.Application:
    async def no_control(command: str, reason: str) -> None:
        return None

    return build_ops_app(
        service=service,
        watchdog=LoopWatchdog(service.clock, fail_after_ms=2_000),
        metrics=metrics,
        token=Secret(""),
        send_control=no_control,
        routes=service.http_routes(),
    )


@asynccontextmanager
async def served(
    *, token: str = TOKEN, start: bool = True, extra: str = ""
) -> AsyncIterator[Served]:
    bus = ControlledBus()
    metrics = EngineMetrics()
    ctx = ServiceContext(
        settings=settings(token, extra), clock=LiveClock(), bus=bus, metrics=metrics, instance="t1"
    )
    service = StrategyService(ctx)
    if start:
        await service.start()
    async with TestClient(TestServer(ops_app(service, metrics))) as client:
        yield Served(client, bus, service, metrics)


async def wait_for(condition: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_an_accepted_intent_is_published_as_strategies_publish_theirs() -> None:
    async with served() as s:
        quote = Quote(
            venue="binance",
            symbol="BTCUSDT",
            update_id=1,
            bid_price=99.0,
            ask_price=101.0,
            bid_qty=1.0,
            ask_qty=1.0,
            recv_ts_ns=s.service.clock.time_ns(),
        )
        await s.service._on_market_data(
            make_delivery(md_stream("binance", "BTCUSDT"), "0-1", encode(quote))
        )
        status, body, _ = await s.post({**BODY, "source": "signals-a"})
        assert status == 202, body
        assert body["status"] == "accepted" and body["intent_id"] == "sig-1"
        (intent,) = await s.bus.intents()
        assert intent.intent_id == "sig-1" and intent.source == "intake:signals-a"
        assert intent.venue == "binance" and intent.qty == Decimal("0.001")
        assert intent.reference_price == 100.0, "the strategy service's last mid"
        assert intent.created_ts_ns == body["accepted_ts_ns"]
        code, known = await s.get("sig-1")
        assert code == 200
        assert known == {
            "intent_id": "sig-1",
            "status": "accepted",
            "accepted_ts_ns": body["accepted_ts_ns"],
            "payload_sha256": payload_fingerprint(intent),
        }
        assert s.outcome("accepted") == 1.0
        intake_status = s.service.status()["intake"]
        assert intake_status["token_configured"] is True
        assert intake_status["requests"]["accepted"] == 1
        assert TOKEN not in json.dumps(s.service.base_status())


async def test_same_id_same_payload_is_a_duplicate_and_another_payload_a_conflict() -> None:
    async with served() as s:
        first = await s.post(BODY)
        assert first[0] == 202
        again = await s.post({**BODY, "qty": "0.0010"})  # the same request, spelt differently
        assert again[0] == 200
        assert again[1] == {
            "intent_id": "sig-1",
            "status": "duplicate",
            "accepted_ts_ns": first[1]["accepted_ts_ns"],
        }
        conflict = await s.post({**BODY, "side": "SELL"})
        assert conflict[0] == 409
        assert "sig-1" in conflict[1]["error"] and "different payload" in conflict[1]["error"]
        assert len(await s.bus.intents()) == 1, "one intent, however often it is posted"
        assert (s.outcome("duplicate"), s.outcome("conflict")) == (1.0, 1.0)


async def test_a_failed_publish_releases_the_id_so_a_retry_is_accepted() -> None:
    async with served() as s:
        s.bus.fail = True
        status, body, headers = await s.post(BODY)
        assert status == 503 and headers["Retry-After"] == "1"
        assert "retry with the same intent_id" in body["error"]
        assert await s.bus.get_value(intake_key("sig-1")) is None, "the claim was released"
        assert (await s.get("sig-1"))[0] == 404
        s.bus.fail = False
        status, body, _ = await s.post(BODY)
        assert status == 202, body
        assert len(await s.bus.intents()) == 1
        assert (s.outcome("unavailable"), s.outcome("accepted")) == (1.0, 1.0)


async def test_a_repeat_while_the_first_is_being_published_is_told_to_retry() -> None:
    async with served() as s:
        s.bus.gate = asyncio.Event()
        first = asyncio.create_task(s.post(BODY))
        await wait_for(lambda: s.bus.waiting == 1, "the first publish to start")
        assert (await s.get("sig-1"))[1]["status"] == "pending"
        status, body, headers = await asyncio.wait_for(s.post(BODY), 5)
        assert status == 503 and headers["Retry-After"] == "1"
        assert "being accepted by another request" in body["error"]
        conflict = await asyncio.wait_for(s.post({**BODY, "qty": "5"}), 5)
        assert conflict[0] == 409, "a different payload conflicts even while pending"
        s.bus.gate.set()
        assert (await first)[0] == 202
        assert (await s.post(BODY))[0] == 200, "the retry learns it was accepted"
        assert len(await s.bus.intents()) == 1


async def test_requests_over_max_in_flight_are_refused_not_queued() -> None:
    async with served() as s:
        s.bus.gate = asyncio.Event()
        stalled = [
            asyncio.create_task(s.post({**BODY, "intent_id": f"slow-{i}"})) for i in range(2)
        ]
        await wait_for(lambda: s.bus.waiting == 2, "two publishes in flight")
        # bounded: were the request queued behind the gate, it would never return
        status, body, headers = await asyncio.wait_for(
            s.post({**BODY, "intent_id": "one-too-many"}), 5
        )
        assert status == 503 and headers["Retry-After"] == "1"
        assert "max_in_flight" in body["error"]
        assert (await s.get("one-too-many"))[0] == 404, "refused before it was claimed"
        s.bus.gate.set()
        assert [(await t)[0] for t in stalled] == [202, 202]
        assert s.service.status()["intake"]["in_flight"] == 0
        assert (await s.post({**BODY, "intent_id": "one-too-many"}))[0] == 202


async def test_authentication_and_bad_requests() -> None:
    async with served() as s:
        for token in (None, "", "wrong-token", TOKEN + "x", TOKEN[:-1]):
            status, body, headers = await s.post(BODY, token=token)
            assert status == 401, token
            assert body == {"error": "missing or invalid bearer token"}
            assert headers["WWW-Authenticate"] == "Bearer"
        assert (await s.get("sig-1", token="wrong-token"))[0] == 401
        assert (await s.post(None, raw=b"{not json"))[:2] == (
            400,
            {
                "error": "malformed JSON: Expecting property name enclosed in double quotes:"
                " line 1 column 2 (char 1)",
                "field": "",
            },
        )
        status, body, _ = await s.post({**BODY, "qty": "-1"})
        assert status == 422 and body["field"] == "qty" and body["error"].startswith("qty: ")
        status, body, _ = await s.post({**BODY, "pad": "x" * 2_000})
        assert status == 413 and "1024 bytes" in body["error"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            for _ in range(4):
                yield b" " * 400

        async with s.client.post(
            "/intents", data=chunks(), headers={"Authorization": f"Bearer {TOKEN}"}
        ) as response:
            assert response.status == 413
        assert (await s.get("bad.id"))[0] == 422
        assert (await s.get("never-posted"))[0] == 404
        assert await s.bus.intents() == []
        assert s.outcome("unauthorized") == 5.0
        assert s.outcome("invalid") == 4.0


async def test_without_a_token_the_intake_is_closed() -> None:
    async with served(token="") as s:
        for token in (None, "anything"):
            status, body, _ = await s.post(BODY, token=token)
            assert status == 403
            assert body["error"].startswith("intake disabled: no token configured")
            assert "STORMPROOF_INTAKE_TOKEN" in body["error"]
        assert (await s.get("sig-1", token="anything"))[0] == 403
        assert s.service.status()["intake"]["token_configured"] is False
        assert await s.bus.intents() == []


async def test_a_service_that_is_not_running_refuses_with_503() -> None:
    async with served(start=False) as s:
        status, body, headers = await s.post(BODY)
        assert status == 503 and "INITIALIZED" in body["error"]
        assert headers["Retry-After"] == "1"
        assert await s.bus.get_value(intake_key("sig-1")) is None


async def test_disabled_intake_serves_no_route_and_other_services_have_none() -> None:
    async with served(extra="enabled = false\n") as s:
        status = (await s.client.post("/intents", data=b"{}")).status
        assert status == 404
        assert s.service.status()["intake"] == {"enabled": False}
    bus = MemoryBus()
    metrics = EngineMetrics()
    risk = RiskService(
        ServiceContext(
            settings=settings(TOKEN), clock=LiveClock(), bus=bus, metrics=metrics, instance="r"
        )
    )
    async with TestClient(TestServer(ops_app(risk, metrics))) as client:
        response = await client.post(
            "/intents", data=json.dumps(BODY).encode(), headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert response.status == 404


async def test_an_intake_id_named_like_a_strategy_is_not_that_strategys() -> None:
    async with served() as s:
        assert (await s.post({**BODY, "intent_id": "momentum"}))[0] == 202
        fill = Fill(
            venue="binance",
            symbol="BTCUSDT",
            trade_id=1,
            client_order_id="x",
            intent_id="momentum",
            side=Side.BUY,
            qty=Decimal("0.001"),
            price=Decimal(100),
            commission=Decimal(0),
            commission_asset="BTC",
            is_maker=False,
            venue_ts_ms=1,
        )
        await s.service._on_own_event(make_delivery(exec_stream("binance"), "0-1", encode(fill)))
        _, sctx = s.service.strategies["momentum"]
        assert sctx.position("BTCUSDT") == 0, "the strategy's position is its own fills only"
