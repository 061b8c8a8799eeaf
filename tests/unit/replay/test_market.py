import pytest

from replay.binance import DepthSnapshot
from replay.depth_sync import DepthDiff
from replay.market import ReplayMarket

pytestmark = pytest.mark.unit


def snapshot(last: int, bid: float, ask: float) -> DepthSnapshot:
    return DepthSnapshot(last, [(f"{bid:.8f}", "1.0")], [(f"{ask:.8f}", "1.0")])


def test_leading_snapshots_of_several_symbols_are_claimed_by_their_first_diffs() -> None:
    market = ReplayMarket(["AAAUSDT", "BBBUSDT"])
    assert market.on_snapshot(snapshot(10_000_000_100, 10.0, 11.0)) is None
    assert market.on_snapshot(snapshot(20_000_000_100, 20.0, 21.0)) is None
    market.on_diff("BBBUSDT", DepthDiff(20_000_000_101, 20_000_000_102, [(20.5, 2.0)], []))
    market.on_diff("AAAUSDT", DepthDiff(10_000_000_099, 10_000_000_105, [], [(10.8, 3.0)]))
    a, b = market.book("AAAUSDT"), market.book("BBBUSDT")
    assert a is not None
    assert b is not None
    assert a.best_ask() == (10.8, 3.0)
    assert a.update_id == 10_000_000_105
    assert b.best_bid() == (20.5, 2.0)
    assert b.update_id == 20_000_000_102


def test_a_snapshot_goes_to_the_symbol_whose_ids_it_continues() -> None:
    market = ReplayMarket(["AAAUSDT", "BBBUSDT"])
    market.on_diff("AAAUSDT", DepthDiff(10, 12, [], []))
    market.on_diff("BBBUSDT", DepthDiff(5000, 5003, [], []))
    assert market.on_snapshot(snapshot(5002, 1.0, 2.0)) == "BBBUSDT"
    assert market.book("BBBUSDT") is not None
    assert market.book("AAAUSDT") is None


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frames_match_what_websockets_writes(size: int) -> None:
    from websockets.frames import Frame, Opcode

    from replay.feed_server import text_frame

    payload = b"x" * size
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False)
    assert text_frame(payload) == expected
