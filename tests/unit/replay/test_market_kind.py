"""A recording says which market it is; the REST paths, depth limits and weights follow."""

from __future__ import annotations

from pathlib import Path

import pytest

from replay.market_kind import MarketKind, detect_market_kind, parse_market_kind
from replay.recording import RecordingWriter

SPOT_DIFF = b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}}'  # noqa: E501
USDM_DIFF = b'{"stream":"ethusdt@depth@0ms","data":{"e":"depthUpdate","E":1,"T":1,"s":"ETHUSDT","U":1,"u":2,"pu":0,"b":[],"a":[]}}'  # noqa: E501
COINM_TRADE = b'{"stream":"ethusd_perp@trade","data":{"e":"trade","E":1,"T":1,"s":"ETHUSD_PERP","t":1,"p":"1","q":"1","X":"MARKET","m":true}}'  # noqa: E501
USDM_SNAPSHOT = b'{"lastUpdateId":5,"E":1,"T":1,"bids":[],"asks":[]}'
SPOT_QUOTE = (
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"}}'
)


def recording(tmp_path: Path, *payloads: bytes) -> Path:
    path = tmp_path / "r.gz"
    with RecordingWriter(path) as writer:
        for i, payload in enumerate(payloads):
            writer.write(1_000 + i, payload)
    return path


@pytest.mark.parametrize(
    ("payloads", "kind"),
    [
        ((SPOT_QUOTE, SPOT_DIFF), MarketKind.SPOT),
        ((SPOT_QUOTE,), MarketKind.SPOT),
        ((USDM_DIFF,), MarketKind.USDM),
        ((USDM_SNAPSHOT, SPOT_QUOTE), MarketKind.USDM),
        ((COINM_TRADE,), MarketKind.COINM),
    ],
)
def test_the_recording_says_its_market(
    tmp_path: Path, payloads: tuple[bytes, ...], kind: MarketKind
) -> None:
    assert detect_market_kind([recording(tmp_path, *payloads)]) is kind


def test_each_market_has_its_rest_prefix_depth_limits_and_weights() -> None:
    assert [k.rest_prefix for k in MarketKind] == ["/api/v3", "/fapi/v1", "/dapi/v1"]
    assert MarketKind.SPOT.depth_limits[-1] == 5000
    assert MarketKind.USDM.depth_limits[-1] == 1000
    assert [MarketKind.USDM.depth_weight(n) for n in (50, 100, 500, 1000)] == [2, 5, 10, 20]
    assert [MarketKind.SPOT.depth_weight(n) for n in (100, 500, 1000, 5000)] == [5, 25, 50, 250]


def test_a_bad_market_name_is_a_clear_error() -> None:
    assert parse_market_kind("USDM") is MarketKind.USDM
    with pytest.raises(ValueError, match="spot, usdm, coinm"):
        parse_market_kind("options")
