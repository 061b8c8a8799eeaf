import json

import pytest

from replay.binance import TradeEvent
from replay.derived import DAY_MS, DerivedStreams

pytestmark = pytest.mark.unit


def trade(trade_id: int, time_ms: int, price: str, qty: str = "1.0") -> TradeEvent:
    return TradeEvent(E=time_ms, s="BTCUSDT", t=trade_id, p=price, q=qty, T=time_ms, m=False)


def test_ticker_statistics_roll_over_24_hours() -> None:
    derived = DerivedStreams()
    derived.on_quote("BTCUSDT", b'{"u":1,"s":"BTCUSDT","b":"99.0","B":"2.0","a":"101.0","A":"3.0"}')
    everything = lambda stream: True  # noqa: E731
    derived.on_trade(trade(1, 0, "100.0"), everything)
    derived.on_trade(trade(2, 1_000, "120.0", "2.0"), everything)
    out = dict(derived.on_trade(trade(3, 2_000, "90.0"), everything))
    ticker = json.loads(out["btcusdt@ticker"])
    assert (ticker["o"], ticker["h"], ticker["l"], ticker["c"]) == (
        "100.00000000",
        "120.00000000",
        "90.00000000",
        "90.00000000",
    )
    assert ticker["v"] == "4.00000000" and ticker["n"] == 3
    assert (ticker["b"], ticker["a"]) == ("99.0", "101.0")
    later = dict(derived.on_trade(trade(4, DAY_MS + 1_500, "95.0"), everything))
    rolled = json.loads(later["btcusdt@ticker"])
    assert rolled["o"] == "120.00000000", "the first second left the window"
    assert rolled["h"] == "120.00000000" and rolled["n"] == 3 and rolled["F"] == 2


def test_nothing_is_built_for_streams_nobody_wants() -> None:
    derived = DerivedStreams()
    assert derived.on_trade(trade(1, 0, "1.0"), lambda stream: False) == []
    agg = derived.on_trade(trade(2, 5_000, "1.0"), lambda stream: stream.endswith("@aggTrade"))
    assert [stream for stream, _ in agg] == ["btcusdt@aggTrade"]
