"""The engine's feed on USD-M and COIN-M futures replays of real recordings: it subscribes the
futures depth stream, fetches /fapi or /dapi snapshots, follows `pu` and never sees a gap, and
publishes the market on the bus."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.messages import BookTop, Quote, Trade
from tests.helpers import wait_until
from tests.integration.datapath import data_path

pytestmark = pytest.mark.integration

FUTURES = {
    "usdm": ("binance-usdm/ethusdt_20240808.gz", "ETHUSDT"),
    "coinm": ("binance-coinm/ethusd_perp_20240808.gz", "ETHUSD_PERP"),
}


@pytest.mark.parametrize("market", sorted(FUTURES))
def test_the_feed_keeps_a_gap_free_futures_book(
    tmp_path: Path, shared_data: Path, market: str
) -> None:
    name, symbol = FUTURES[market]
    venue_toml = f'market = "{market}"\ndepth_stream = "@depth@0ms"'
    with data_path(
        tmp_path, shared_data / name, feeds=1, symbol=symbol, venue_toml=venue_toml
    ) as path:
        first = wait_until(
            lambda: (f := path.status()["feeds"]["feed0"])["synced"][symbol] and f,
            timeout_s=30,
            what="the futures book to sync",
        )
        start_id = first["book_update_id"][symbol]
        later = wait_until(
            lambda: (
                (f := path.status()["feeds"]["feed0"])["book_update_id"][symbol] > start_id
                and len([m for m in path.messages(symbol) if isinstance(m, Trade)]) > 20
                and f
            ),
            timeout_s=60,
            what="the book to move and trades to flow",
        )
        assert later["depth_gaps"][symbol] == 0
        assert later["synced"][symbol]
        messages = path.messages(symbol)
    tops = [m for m in messages if isinstance(m, BookTop)]
    quotes = [m for m in messages if isinstance(m, Quote)]
    assert tops and quotes
    assert all(t.bids[0][0] < t.asks[0][0] for t in tops if t.bids and t.asks)
