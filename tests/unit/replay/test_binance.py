"""The replay's own reading of Binance messages (replay.binance and
replay.stream_messages.classify)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.marketdata.binance import split_envelope
from replay.binance import DepthSnapshot, MalformedMessage, parse_snapshot, split_combined
from replay.depth_sync import DepthDiff
from replay.stream_messages import classify

pytestmark = pytest.mark.unit

DEPTH = (
    b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1700000000123,'
    b'"s":"BTCUSDT","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"],["0.0027","0"]]}}'
)


def test_a_depth_update_becomes_a_diff_with_float_levels_and_its_event_time() -> None:
    item = classify(DEPTH)
    assert (item.kind, item.stream, item.symbol) == ("depth", "btcusdt@depth@100ms", "BTCUSDT")
    assert item.event == DepthDiff(
        157, 160, [(0.0024, 10.0)], [(0.0026, 100.0), (0.0027, 0.0)], event_ms=1700000000123
    )


def test_a_snapshot_is_recognised_and_parsed() -> None:
    body = b'{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[]}'
    assert isinstance(classify(body).event, DepthSnapshot)
    assert parse_snapshot(body) == (1027024, [(4.0, 431.0)], [])


@pytest.mark.parametrize(
    "body",
    [
        b'{"lastUpdateId":"x","bids":[],"asks":[]}',
        b'{"lastUpdateId":1,"bids":[["abc","1"]],"asks":[]}',
        b'{"lastUpdateId":1,"bids":[]}',
        b"not json",
    ],
)
def test_a_bad_snapshot_is_a_malformed_message(body: bytes) -> None:
    with pytest.raises(MalformedMessage) as error:
        parse_snapshot(body)
    assert error.value.kind == "snapshot"


def test_the_split_takes_only_binances_exact_layout() -> None:
    assert split_combined(b'{"stream":"a@trade","data":{"p":"1"}}') == ("a@trade", b'{"p":"1"}')
    assert split_combined(b'{ "stream":"a@trade","data":{}}') is None
    assert split_combined(b'{"data":{},"stream":"a@trade"}') is None
    assert split_combined(b'{"stream":"a@trade","data":{}} ') is None
    # a layout it does not take is still classified, by a full decode
    reordered = b'{"data":{"u":1,"s":"X","b":"1","B":"1","a":"2","A":"1"},"stream":"x@bookTicker"}'
    assert classify(reordered).kind == "bookTicker"


LAYOUT_PARTS = st.sampled_from(
    [b'{"stream":"', b'","data":', b"}", b"{", b'"', b"btcusdt@trade", b'{"p":"1"}', b" ", b""]
)


@given(st.lists(LAYOUT_PARTS, max_size=8).map(b"".join))
def test_the_split_agrees_with_the_engines_on_any_arrangement(payload: bytes) -> None:
    """Written separately from the engine's; where either takes the fast path, both must find
    the same stream name and data (or both decline and leave it to a full decode)."""
    assert split_combined(payload) == split_envelope(payload)
