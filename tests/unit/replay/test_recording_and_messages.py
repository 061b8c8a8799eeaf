import gzip
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from engine.core.messages import Fill, Intent, Side, Trade, decode, encode
from engine.marketdata.binance import MalformedMessage, Reply, parse_combined, parse_snapshot
from replay.recording import RecordingError, RecordingWriter, read_records
from replay.stream_messages import EventTimeMap, classify, rebase

pytestmark = pytest.mark.unit


def test_bus_messages_round_trip_with_decimals_intact() -> None:
    fill = Fill(
        venue="binance",
        symbol="BTCUSDT",
        trade_id=1,
        client_order_id="c",
        intent_id="i",
        side=Side.BUY,
        qty=Decimal("0.00100000"),
        price=Decimal("61837.63"),
        commission=Decimal("0.000001"),
        commission_asset="BTC",
        is_maker=True,
        venue_ts_ms=1,
        correlation_id="x",
    )
    assert decode(encode(fill)) == fill
    assert b'"qty":"0.00100000"' in encode(fill)
    trade = Trade(
        venue="v",
        symbol="S",
        trade_id=1,
        price=1.5,
        qty=2.0,
        buyer_is_maker=False,
        exchange_ts_ms=1,
        recv_ts_ns=2,
    )
    assert decode(encode(trade)) == trade


def test_bus_decode_rejects_garbage_and_unknown_types() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode(b"{not json")
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"type":"nope"}')
    with pytest.raises(msgspec.ValidationError):
        decode(
            encode(Intent(intent_id="i", source="s", venue="v", symbol="S")).replace(
                b'"qty":"0"', b'"qty":"lots"'
            )
        )


def test_recording_round_trip_keeps_bytes_and_disconnects(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    with RecordingWriter(path) as writer:
        writer.write(1, b'{"a":1}')
        writer.write_disconnect()
        writer.write(3, b'{"b": 2}  ')
    records = list(read_records(path))
    assert [(r.recv_ns, r.payload) for r in records] == [
        (1, b'{"a":1}'),
        (1, b""),
        (3, b'{"b": 2}  '),
    ]
    assert records[1].is_disconnect


def test_bad_recording_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as out:
        out.write(b'1 {"ok":1}\nnot-a-number {"x":1}\n')
    with pytest.raises(RecordingError, match=r"bad.gz:2"):
        list(read_records(path))


def test_shared_recording_has_the_documented_line_counts(shared_recording: Path) -> None:
    counts: dict[str, int] = {}
    for record in read_records(shared_recording):
        kind = classify(record.payload).kind
        counts[kind] = counts.get(kind, 0) + 1
    assert counts == {"trade": 9757, "depth": 3451, "bookTicker": 28040, "snapshot": 1}


def test_parse_combined_reports_malformed_kinds() -> None:
    assert isinstance(parse_combined(b'{"result":null,"id":1}'), Reply)
    with pytest.raises(MalformedMessage) as error:
        parse_combined(b'{"stream":"btcusdt@trade","data":{"e":"trade"}}')
    assert error.value.kind == "trade"
    with pytest.raises(MalformedMessage) as error:
        parse_combined(b"{{{")
    assert error.value.kind == "json"
    with pytest.raises(MalformedMessage):
        parse_snapshot(b'{"lastUpdateId":"x"}')


def test_rebase_rewrites_only_event_times() -> None:
    data = (
        b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"1.0","T":1723161255342}'
    )
    mapping = EventTimeMap(
        anchor_event_ms=1723161255342, anchor_wall_ms=2_000_000_000_000, speed=10.0
    )
    out = rebase(data, mapping)
    assert out == (
        b'{"e":"trade","E":2000000000000,"s":"BTCUSDT","t":3735683259,"p":"1.0","T":2000000000000}'
    )
    assert mapping(1723161265342) == 2_000_000_001_000  # 10 s of market is 1 s at 10x


def test_a_recording_whose_writer_died_is_read_up_to_where_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "crashed.gz"
    writer = RecordingWriter(path)
    for n in range(5000):
        writer.write(n + 1, b'{"n":%d}' % n)
    writer.flush()  # what a recorder does every flush interval; then it is killed
    records = list(read_records(path))
    assert [r.payload for r in records[:5000]] == [b'{"n":%d}' % n for n in range(5000)]
    assert records[-1].is_disconnect, "the abrupt end reads as a disconnect"
