"""The engine's rate governor in front of a real ccxt client against a real `replay serve`
simulator that enforces Binance's limits: we stay under 70% and never meet a 429; a client
without it does; after a 429 or a 418 nothing reaches the venue before Retry-After, then we
resume and are not banned.

A 5-second weight window of 600 (instead of Binance's minute of 6000) keeps the tests short;
the governor is told the same window."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from engine.config import Secret, Secrets, VenueConfig
from engine.core.clock import LiveClock
from engine.core.ratelimit import NS_PER_S, VenueGovernor
from engine.execution.venue import make_binance
from engine.execution.venue_pacer import VenueRateLimiter
from tests.helpers import SIM_KEY, SIM_SECRET, ReplayProcess, control, replay_process

pytestmark = pytest.mark.integration
LIMIT = 600
WINDOW_S = 5.0
BUDGET = int(0.7 * LIMIT)  # 420
SYMBOL = "BTC/USDT"
CLOCK = LiveClock()


def simulator(tmp: Path, recording: Path, *extra: str) -> contextlib.AbstractContextManager[Any]:
    return replay_process(tmp, recording, speed="1", extra=list(extra))


@pytest.fixture
def sim(tmp_path: Path, synth_recording: Path) -> Iterator[ReplayProcess]:
    limits = ["--weight-per-minute", str(LIMIT), "--weight-window-s", str(WINDOW_S)]
    with simulator(tmp_path, synth_recording, *limits, "--ban-base-s", "2") as process:
        yield process


def governor(window_s: float = WINDOW_S, limit: int = LIMIT) -> VenueGovernor:
    return VenueGovernor(
        weight_per_minute=limit,
        weight_window_s=window_s,
        orders_per_10s=20,
        max_orders_in_flight=4,
    )


@dataclass
class Response:
    at_ns: int
    status: int
    used: int | None
    retry_after: str | None


@dataclass
class Call:
    op: str
    granted_ns: int
    weight: int
    error: str | None = None


@dataclass
class Client:
    exchange: Any
    limiter: VenueRateLimiter | None
    responses: list[Response] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        used = headers.get("X-MBX-USED-WEIGHT-1M")
        self.responses.append(
            Response(
                CLOCK.monotonic_ns(),
                status,
                int(used) if used is not None else None,
                headers.get("Retry-After"),
            )
        )
        if self.limiter is not None:
            self.limiter.observe(status, headers)

    async def call(self, op: str, fn: Callable[[], Any], weight: int = 0) -> Any:
        """One request, through the limiter when there is one."""
        if self.limiter is None:
            record = Call(op, CLOCK.monotonic_ns(), weight)
            self.calls.append(record)
            return await fn()
        async with self.limiter.slot(op) as permit:
            record = Call(op, permit.granted_ns, permit.weight)
            self.calls.append(record)
            try:
                return await fn()
            except ccxt.DDoSProtection as exc:
                record.error = str(exc)
                raise


@contextlib.asynccontextmanager
async def client(sim: ReplayProcess, gov: VenueGovernor | None) -> AsyncIterator[Client]:
    venue = VenueConfig(ws_urls=[sim.ws_url], rest_url=sim.rest_url, symbols=["BTCUSDT"])
    secrets = Secrets(api_key=Secret(SIM_KEY), api_secret=Secret(SIM_SECRET), ops_token=Secret(""))
    limiter = VenueRateLimiter(gov, CLOCK) if gov is not None else None
    holder: list[Client] = []
    exchange = make_binance(venue, secrets, on_response=lambda s, h: holder[0].observe(s, h))
    assert exchange.enableRateLimit is False, "our governor is the only limiter"
    holder.append(Client(exchange, limiter))
    try:
        await holder[0].call("load_markets", exchange.load_markets, 20)
        yield holder[0]
    finally:
        await exchange.close()


POLLS = (
    ("fetch_order_book", 5, lambda ex: ex.fetch_order_book(SYMBOL)),
    ("fetch_open_orders", 6, lambda ex: ex.fetch_open_orders(SYMBOL)),
)


async def poll(c: Client, *, until: Callable[[], bool], swallow_429: bool = False) -> None:
    """Poll the venue (book and open orders) until told to stop."""
    for op, weight, fn in itertools.cycle(POLLS):
        if until():
            return
        try:
            await c.call(op, lambda fn=fn: fn(c.exchange), weight)
        except ccxt.DDoSProtection:
            if not swallow_429:
                raise


def rest_requests(sim: ReplayProcess) -> int:
    return int(control(sim, "GET", "/status")["rest_requests"])


async def test_weights_the_venue_charges_are_the_ones_we_book(
    tmp_path: Path, synth_recording: Path
) -> None:
    """Every ccxt call the engine makes costs at the venue exactly the weight our table says
    (a 60-second window so that nothing leaves it during the test)."""
    with simulator(tmp_path, synth_recording) as sim:
        async with client(sim, governor(window_s=60, limit=6000)) as c:
            ex = c.exchange
            book = await c.call("fetch_order_book", lambda: ex.fetch_order_book(SYMBOL))
            price = round(book["bids"][0][0] * 0.9, 2)
            order = await c.call(
                "create_order", lambda: ex.create_order(SYMBOL, "limit", "buy", 0.001, price)
            )
            steps: list[tuple[str, Callable[[], Any]]] = [
                ("fetch_open_orders", lambda: ex.fetch_open_orders(SYMBOL)),
                ("fetch_order", lambda: ex.fetch_order(order["id"], SYMBOL)),
                ("fetch_order_trades", lambda: ex.fetch_order_trades(order["id"], SYMBOL)),
                ("fetch_balance", ex.fetch_balance),
                ("cancel_order", lambda: ex.cancel_order(order["id"], SYMBOL)),
                ("fetch_time", ex.fetch_time),
            ]
            for op, fn in steps:
                await c.call(op, fn)
            used = [r.used for r in c.responses]
            assert [r.status for r in c.responses] == [200] * len(c.calls)
            assert len(used) == len(c.calls), "one HTTP request per call"
            charged = [b - a for a, b in itertools.pairwise([0, *used])]  # type: ignore[operator]
            assert charged == [call.weight for call in c.calls], [call.op for call in c.calls]
            assert rest_requests(sim) == len(c.calls)


async def test_hammering_through_the_limiter_stays_under_70_percent_without_a_429(
    sim: ReplayProcess,
) -> None:
    gov = governor()
    async with client(sim, gov) as c:
        end = time.monotonic() + 2.4 * WINDOW_S
        await asyncio.gather(*(poll(c, until=lambda: time.monotonic() > end) for _ in range(4)))
    statuses = {r.status for r in c.responses}
    assert statuses == {200}, "never a 429"
    peak = max(r.used or 0 for r in c.responses)
    assert peak <= BUDGET + 6, f"venue-reported weight {peak} over 70% of {LIMIT} (+ one request)"
    assert peak >= 0.85 * BUDGET, f"the limiter lets us use the budget ({peak} of {BUDGET})"
    assert len(c.calls) > (2.4 * WINDOW_S) * gov.weight_bucket.refill_per_s / 6
    assert rest_requests(sim) == len(c.calls), "every request the venue saw had a permit"
    assert gov.usage_fraction <= (BUDGET + 6) / LIMIT


async def test_the_same_hammering_without_the_limiter_meets_429(sim: ReplayProcess) -> None:
    async with client(sim, None) as c:
        end = time.monotonic() + 2.4 * WINDOW_S
        with pytest.raises(ccxt.DDoSProtection, match="429"):
            await asyncio.gather(*(poll(c, until=lambda: time.monotonic() > end) for _ in range(4)))
    assert 429 in {r.status for r in c.responses}


async def test_after_a_418_ban_nothing_reaches_the_venue_until_retry_after(
    sim: ReplayProcess,
) -> None:
    gov = governor()
    async with client(sim, gov) as c:
        ban = control(sim, "POST", "/faults", {"kind": "ban", "duration_ms": 3000})
        resumed: list[Call] = []

        def enough() -> bool:
            resumed[:] = [
                call
                for call in c.calls
                if gov.paused_until_ns and call.granted_ns >= gov.paused_until_ns
            ]
            return len(resumed) >= 20 or time.monotonic() > deadline

        deadline = time.monotonic() + 15
        await asyncio.gather(*(poll(c, until=enough, swallow_429=True) for _ in range(3)))
    banned = [r for r in c.responses if r.status == 418]
    fault = next(f for f in control(sim, "GET", "/faults")["faults"] if f["id"] == ban["id"])
    assert 1 <= fault["applied"] == len(banned) <= 3, "only the requests already on their way"
    first_418 = banned[0]
    assert first_418.retry_after is not None
    paused_until = gov.paused_until_ns
    assert paused_until >= first_418.at_ns + int(first_418.retry_after) * NS_PER_S
    during = [call for call in c.calls if first_418.at_ns <= call.granted_ns < paused_until]
    assert during == [], "no permit while paused"
    assert len(resumed) >= 20 and all(call.error is None for call in resumed), "we resumed"
    assert {r.status for r in c.responses if r.at_ns >= paused_until} == {200}
    assert rest_requests(sim) == len(c.calls)


async def test_after_a_429_caused_by_another_client_we_wait_and_are_not_banned(
    sim: ReplayProcess,
) -> None:
    gov = governor()
    async with client(sim, gov) as c:
        # another client on our IP spends the rest of the window: 600 - 20 (our load_markets)
        async with aiohttp.ClientSession() as http:
            for limit, times in (("5000", 2), ("500", 3), ("100", 1)):  # 2*250 + 3*25 + 5
                for _ in range(times):
                    url = f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit={limit}"
                    async with http.get(url) as response:
                        assert response.status == 200
                        used = int(response.headers["X-MBX-USED-WEIGHT-1M"])
        assert used == LIMIT
        before = rest_requests(sim)
        deadline = time.monotonic() + 20

        def enough() -> bool:
            after = [
                x for x in c.calls if gov.paused_until_ns and x.granted_ns >= gov.paused_until_ns
            ]
            return len(after) >= 10 or time.monotonic() > deadline

        await poll(c, until=enough, swallow_429=True)
    refused = [r for r in c.responses if r.status != 200]
    assert [r.status for r in refused] == [429], "one 429, then nothing inside Retry-After"
    (too_many,) = refused
    assert too_many.retry_after is not None and too_many.used == LIMIT
    paused_until = gov.paused_until_ns
    assert paused_until >= too_many.at_ns + int(too_many.retry_after) * NS_PER_S
    assert all(x.granted_ns >= paused_until for x in c.calls if x.granted_ns > too_many.at_ns), (
        "no permit before Retry-After"
    )
    resumed = [x for x in c.calls if x.granted_ns >= paused_until]
    assert len(resumed) >= 10 and all(x.error is None for x in resumed)
    assert rest_requests(sim) - before == len(c.calls) - 1, "the venue saw only permitted calls"
