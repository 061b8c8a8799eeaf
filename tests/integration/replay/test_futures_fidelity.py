"""Unmodified ccxt.pro `binanceusdm` and `binancecoinm` cannot tell the replay of a real futures
recording from Binance: they load the futures markets, watch trades and build the order book
(REST snapshot from /fapi or /dapi, then diffs chained by `pu`), and the book they hold equals
one rebuilt offline from the recording with Binance's futures rule."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt.pro as ccxtpro
import pytest

from replay.recording import read_records
from tests.helpers import control, replay_process

pytestmark = pytest.mark.integration

MARKETS = {
    "usdm": ("binance-usdm/ethusdt_20240808.gz", "ETH/USDT:USDT", "ethusdt", "linear"),
    "coinm": ("binance-coinm/ethusd_perp_20240808.gz", "ETH/USD:ETH", "ethusd_perp", "inverse"),
}


def pointed_at_replay(market: str, rest_url: str, ws_url: str, rate: str = "0") -> Any:
    """The ccxt.pro client as shipped, with its venue URLs pointed at the replay; its book from
    `@depth@<rate>ms` (the recordings hold @depth@0ms; the replay conflates the slower ones)."""
    exchange = ccxtpro.binanceusdm() if market == "usdm" else ccxtpro.binancecoinm()
    exchange.options["watchOrderBookRate"] = rate
    api = dict(exchange.urls["api"])
    for key, url in api.items():
        if isinstance(url, str) and url.startswith("https://"):
            api[key] = rest_url + urlsplit(url).path
    api["ws"] = {kind: f"{ws_url}/ws" for kind in ("spot", "margin", "linear", "inverse")}
    exchange.urls["api"] = api
    return exchange


class FuturesBook:
    """Binance's futures procedure, written here from its documentation, independent of the
    replay's code: drop events with u < lastUpdateId; the first applied event spans the
    snapshot (U <= lastUpdateId <= u); each later event's pu is the previous event's u."""

    def __init__(self, last_update_id: int, bids: list[list[str]], asks: list[list[str]]) -> None:
        self.update_id = last_update_id
        self.started = False
        self.sides = {
            "b": {float(p): float(q) for p, q in bids},
            "a": {float(p): float(q) for p, q in asks},
        }

    def apply(self, event: dict[str, Any]) -> None:
        if event["u"] < self.update_id:
            return
        if not self.started:
            assert event["U"] <= self.update_id <= event["u"], "the first event spans the snapshot"
            self.started = True
        else:
            assert event["pu"] == self.update_id, "the recording has no gap"
        for side in ("b", "a"):
            for price, qty in event[side]:
                if float(qty) == 0:
                    self.sides[side].pop(float(price), None)
                else:
                    self.sides[side][float(price)] = float(qty)
        self.update_id = event["u"]

    def top(self, side: str, depth: int) -> list[list[float]]:
        prices = sorted(self.sides[side], reverse=side == "b")[:depth]
        return [[p, self.sides[side][p]] for p in prices]


def offline_book_at(recording: Path, stream: str, update_id: int) -> FuturesBook:
    """The book at `update_id`, from the recording alone. Events received before the snapshot
    are buffered, as Binance says to (one of them spans the snapshot)."""
    book: FuturesBook | None = None
    buffered: list[dict[str, Any]] = []
    for record in read_records(recording):
        message = json.loads(record.payload) if record.payload else None
        if message is None:
            continue
        if "lastUpdateId" in message:
            book = FuturesBook(message["lastUpdateId"], message["bids"], message["asks"])
            for event in buffered:
                book.apply(event)
        elif message["stream"] == stream:
            if book is None:
                buffered.append(message["data"])
                continue
            book.apply(message["data"])
            if book.update_id >= update_id:
                break
    assert book is not None and book.update_id == update_id
    return book


@pytest.mark.parametrize(
    ("market", "rate"), [("coinm", "0"), ("usdm", "0"), ("usdm", "100"), ("coinm", "500")]
)
async def test_unmodified_ccxt_pro_futures_clients_watch_trades_and_the_book(
    tmp_path: Path, shared_data: Path, market: str, rate: str
) -> None:
    """At the recorded rate and at slower ones the replay conflates: either way the book at an
    update id equals the recording's own diffs applied up to that id."""
    name, symbol, lower, subtype = MARKETS[market]
    recording = shared_data / name
    with replay_process(tmp_path, recording, speed="10", balances=()) as feed:
        exchange = pointed_at_replay(market, feed.rest_url, feed.ws_url, rate)
        try:
            markets = await exchange.load_markets()
            contract = markets[symbol]
            assert contract["swap"] and contract[subtype]
            assert contract["contractSize"] == (10 if market == "coinm" else 1)
            assert contract["settle"] == ("ETH" if market == "coinm" else "USDT")
            trades = await asyncio.wait_for(exchange.watch_trades(symbol), 20)
            assert trades[-1]["symbol"] == symbol
            assert trades[-1]["price"] > 0
            await asyncio.wait_for(exchange.watch_order_book(symbol), 20)
            for _ in range(5):
                book = await asyncio.wait_for(exchange.watch_order_book(symbol), 20)
            nonce = book["nonce"]
            bids = [list(level) for level in book["bids"][:10]]
            asks = [list(level) for level in book["asks"][:10]]
        finally:
            await exchange.close()
    offline = offline_book_at(recording, f"{lower}@depth@0ms", nonce)
    assert bids == offline.top("b", 10)
    assert asks == offline.top("a", 10)
    assert bids[0][0] < asks[0][0]


@pytest.mark.parametrize("market", sorted(MARKETS))
async def test_the_replay_derives_mark_price_and_funding_and_marks_them_derived(
    tmp_path: Path, shared_data: Path, market: str
) -> None:
    name, symbol, lower, _ = MARKETS[market]
    with replay_process(tmp_path, shared_data / name, speed="10", balances=()) as feed:
        exchange = pointed_at_replay(market, feed.rest_url, feed.ws_url)
        try:
            await exchange.load_markets()
            first = await asyncio.wait_for(exchange.watch_mark_price(symbol), 20)
            assert first["info"]["derived"] is True
            quote = await asyncio.wait_for(exchange.watch_order_book(symbol), 20)
            mid = (quote["bids"][0][0] + quote["asks"][0][0]) / 2
            assert first["markPrice"] == pytest.approx(mid, rel=0.002)
            rate = await exchange.fetch_funding_rate(symbol)
            assert rate["fundingRate"] == pytest.approx(0.0001)
            # the recording ends at 00:00 UTC, a funding time; replayed at 10x, rebased onto
            # the replay's clock, it comes a tenth as far ahead, the same on REST and stream
            assert rate["fundingTimestamp"] == first["info"]["T"]
            assert 0 < rate["fundingTimestamp"] - exchange.milliseconds() <= 8 * 3_600_000 / 10
            moved = control(
                feed, "POST", "/replay/mark-price", {"funding_rate": 0.003, "mark_shift": -0.05}
            )
            assert moved["funding_rate"] == 0.003
            shifted = await asyncio.wait_for(exchange.watch_mark_price(symbol), 20)
            while shifted["info"]["r"] != "0.00300000":
                shifted = await asyncio.wait_for(exchange.watch_mark_price(symbol), 20)
            assert shifted["markPrice"] < first["markPrice"] * 0.97
            rate = await exchange.fetch_funding_rate(symbol)
            assert rate["fundingRate"] == pytest.approx(0.003)
        finally:
            await exchange.close()
    assert lower in str(first["info"]["s"]).lower()
