"""The engine on a futures venue: real Redis, the engine's services as processes, the simulator
standing on the real USD-M and COIN-M recordings. An intent opens a position at the venue; a
flatten closes it with reduce-only orders only (ground truth: the simulator's orders and
positions), and the engine's books agree with the venue's."""

from __future__ import annotations

from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import control, redis, replay_process, wait_until
from tests.integration.engine.strategy.test_intake_trading import (
    INTAKE_TOKEN,
    QUIET_STRATEGY,
    post_intent,
)
from tests.integration.trading import (
    OPS_TOKEN,
    Bus,
    engine_argv,
    engine_config,
    post,
    running,
    status,
    venue_orders,
    wait_started,
)

pytestmark = pytest.mark.integration

SERVICES = ("feed", "execution", "risk", "strategy")
FUTURES = {  # market: recording, symbol, wallet, entry size
    "usdm": ("binance-usdm/ethusdt_20240808.gz", "ETHUSDT", "USDT=100000", "0.5"),
    "coinm": ("binance-coinm/ethusd_perp_20240808.gz", "ETHUSD_PERP", "ETH=50", "30"),
}
RISK = """
[risk]
max_position_qty = "1000"
max_notional_per_order = "1000000"
"""


def venue_position(sim: Any, symbol: str) -> Decimal:
    accounts = control(sim, "GET", "/truth/positions")["accounts"]
    return sum(
        (Decimal(p["qty"]) for a in accounts for p in a["positions"] if p["symbol"] == symbol),
        Decimal(0),
    )


def start_engine(
    stack: ExitStack,
    tmp_path: Path,
    sim: Any,
    redis_port: int,
    *,
    market: str,
    symbol: str,
    extra: str = RISK,
    venue: str = "",
    execution: str = "",
) -> dict[str, int]:
    """The engine's four services as processes on a futures venue, started and seeing the
    market (the strategy service stamps intents with its mid); their ports."""
    venue_toml = (
        f'request_timeout_ms = 2000\nmarket = "{market}"\ndepth_stream = "@depth@0ms"\n{venue}'
    )
    config, ports = engine_config(
        tmp_path,
        sim,
        redis_port,
        extra=QUIET_STRATEGY + extra,
        venue=venue_toml,
        symbols=f'["{symbol}"]',
        execution=execution,
    )
    env = {"STORMPROOF_INTAKE_TOKEN": INTAKE_TOKEN}
    for service in SERVICES:
        log = tmp_path / f"{service}.log"
        proc = stack.enter_context(running(engine_argv(config, service), log, env))
        wait_started(ports[service], proc, log)
    wait_until(
        lambda: status(ports["strategy"]).get("intake", {}).get("reference_prices", {}).get(symbol),
        timeout_s=30,
        what="the engine to see the futures market",
    )
    return ports


def usdm_engine(
    stack: ExitStack,
    tmp_path: Path,
    shared_data: Path,
    *,
    wallet: str = "USDT=100000",
    speed: str = "1",
    replay_extra: list[str] | None = None,
    **engine: str,
) -> tuple[Any, dict[str, int], int]:
    """Redis, the simulator on the USD-M recording, and the engine trading ETHUSDT on it (the
    keyword arguments go to `start_engine`): the simulator, the engine's ports, Redis's port."""
    redis_port = stack.enter_context(redis(tmp_path))
    sim = stack.enter_context(
        replay_process(
            tmp_path,
            shared_data / FUTURES["usdm"][0],
            speed=speed,
            balances=(wallet,),
            wait_for_market=True,
            extra=replay_extra,
        )
    )
    ports = start_engine(
        stack, tmp_path, sim, redis_port, market="usdm", symbol="ETHUSDT", **engine
    )
    return sim, ports, redis_port


def market_intent(intent_id: str, symbol: str, qty: str, side: str = "BUY") -> dict[str, Any]:
    return {
        "intent_id": intent_id,
        "symbol": symbol,
        "side": side,
        "qty": qty,
        "order_type": "MARKET",
        "source": "it-futures",
    }


@pytest.mark.parametrize("market", sorted(FUTURES))
def test_the_engine_opens_a_futures_position_and_flattens_it_reduce_only(
    tmp_path: Path, shared_data: Path, market: str
) -> None:
    name, symbol, wallet, size = FUTURES[market]
    with ExitStack() as stack:
        redis_port = stack.enter_context(redis(tmp_path))
        sim = stack.enter_context(
            replay_process(
                tmp_path, shared_data / name, speed="1", balances=(wallet,), wait_for_market=True
            )
        )
        ports = start_engine(stack, tmp_path, sim, redis_port, market=market, symbol=symbol)
        intent = market_intent(f"fut-{market}-1", symbol, size)
        code, body = post_intent(f"http://127.0.0.1:{ports['strategy']}/intents", intent)
        assert code == 202, body
        wait_until(
            lambda: venue_position(sim, symbol) == Decimal(size),
            timeout_s=30,
            what="the position at the venue",
        )
        wait_until(
            lambda: (
                Decimal(status(ports["risk"]).get("positions", {}).get(symbol, "0"))
                == Decimal(size)
            ),
            timeout_s=20,
            what="risk to know the position",
        )
        risk_url = f"http://127.0.0.1:{ports['risk']}"
        assert post(f"{risk_url}/ops/flatten", OPS_TOKEN, {"reason": "test"}) == 202
        wait_until(
            lambda: venue_position(sim, symbol) == 0,
            timeout_s=60,
            what="the flatten to close the venue position",
        )
        orders = venue_orders(sim)
        closing = [o for o in orders if o["side"] == "SELL"]
        assert closing, "the flatten sent orders"
        assert all(o["reduce_only"] for o in closing), "every flatten order is reduce-only"
        opening = [o for o in orders if o["side"] == "BUY"]
        assert [o["reduce_only"] for o in opening] == [False]
        wait_until(
            lambda: Decimal(status(ports["execution"]).get("positions", {}).get(symbol, "1")) == 0,
            timeout_s=20,
            what="execution's position to be flat",
        )


def test_funding_settled_at_the_venue_reaches_risk_once(tmp_path: Path, shared_data: Path) -> None:
    """Funding every minute of event time (12 s at 5x): what the venue books for our position
    (its ground truth) is what risk counts in its PnL, each settlement once."""
    _, symbol, wallet, size = FUTURES["usdm"]
    with ExitStack() as stack:
        sim, ports, _ = usdm_engine(
            stack,
            tmp_path,
            shared_data,
            wallet=wallet,
            speed="5",
            replay_extra=["--funding-interval-h", str(1 / 60)],
            execution="position_poll_ms = 200\nfunding_poll_ms = 500",
        )
        body = market_intent("fund-1", symbol, size)
        assert post_intent(f"http://127.0.0.1:{ports['strategy']}/intents", body)[0] == 202
        wait_until(
            lambda: len(control(sim, "GET", "/truth/funding")["funding"]) >= 2,
            timeout_s=60,
            what="two funding times to pass with the position held",
        )
        control(sim, "POST", "/replay/pause")  # the market stops: no funding time passes now

        def venue_booked() -> Decimal:
            paid = control(sim, "GET", "/truth/funding")["funding"]
            return -sum((Decimal(p["paid"]) for p in paid), Decimal(0))

        wait_until(
            lambda: (
                Decimal(status(ports["risk"]).get("funding_income", {}).get(symbol, "0"))
                == venue_booked()
            ),
            timeout_s=20,
            what="risk to count the funding the venue booked, each settlement once",
        )
        assert venue_booked() < 0, "a long pays at a positive rate"


def test_coin_m_orders_are_valued_at_their_contracts_face_value(
    tmp_path: Path, shared_data: Path
) -> None:
    """ETHUSD_PERP contracts are 10 USD each whatever the price (about 2680): with a 500 USD
    limit, 40 contracts (400 USD) reach the venue and 60 (600 USD) are refused by risk."""
    name, symbol, wallet, _ = FUTURES["coinm"]
    with ExitStack() as stack:
        redis_port = stack.enter_context(redis(tmp_path))
        sim = stack.enter_context(
            replay_process(
                tmp_path, shared_data / name, speed="1", balances=(wallet,), wait_for_market=True
            )
        )
        limits = '[risk]\nmax_position_qty = "1000"\nmax_notional_per_order = "500"\n'
        ports = start_engine(
            stack, tmp_path, sim, redis_port, market="coinm", symbol=symbol, extra=limits
        )
        intake = f"http://127.0.0.1:{ports['strategy']}/intents"
        assert post_intent(intake, market_intent("face-1", symbol, "40"))[0] == 202
        wait_until(
            lambda: venue_position(sim, symbol) == 40, timeout_s=30, what="the 400 USD order"
        )
        assert post_intent(intake, market_intent("face-2", symbol, "60"))[0] == 202
        bus = Bus(redis_port)
        stack.callback(bus.close)
        denial = bus.denial("face-2", what="the 600 USD order to be refused")
        assert denial.check == "max_notional" and "600" in denial.reason
        assert venue_position(sim, symbol) == 40
