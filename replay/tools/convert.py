"""`replay convert --to parquet`: a recording as three columnar tables for analysis.

- `trades.parquet`: one row per trade message (`trade_type`: futures' `X`, MARKET / LIQUIDATION
  ...; null on spot);
- `book_updates.parquet`: one row per level change of a diff-depth message (bids first, then
  asks, in message order), so a level count is a row count (`previous_final_update_id`: futures'
  `pu`; null on spot);
- `quotes.parquet`: one row per bookTicker message.
REST snapshots, disconnect markers and other streams are not converted: these tables describe
the streams, and a snapshot is a book state, not a change.

Rows go out in batches through `pyarrow.parquet.ParquetWriter`, so memory is one batch per table
whatever the file length. Each table is written beside its final name and moved there at the
end, so a failed conversion leaves no half-written table.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from replay.binance import BookTickerEvent, TradeEvent
from replay.depth_sync import DepthDiff
from replay.recording import Record, RecordingError
from replay.tools import decode, replacing

FORMATS = ("parquet",)
BATCH_ROWS = 50_000

TRADES = pa.schema(
    [
        ("recv_ns", pa.int64()),
        ("event_ms", pa.int64()),
        ("trade_time_ms", pa.int64()),
        ("symbol", pa.string()),
        ("trade_id", pa.int64()),
        ("price", pa.float64()),
        ("qty", pa.float64()),
        ("buyer_is_maker", pa.bool_()),
        ("trade_type", pa.string()),
    ]
)
BOOK_UPDATES = pa.schema(
    [
        ("recv_ns", pa.int64()),
        ("event_ms", pa.int64()),
        ("symbol", pa.string()),
        ("first_update_id", pa.int64()),
        ("final_update_id", pa.int64()),
        ("previous_final_update_id", pa.int64()),
        ("side", pa.string()),
        ("price", pa.float64()),
        ("qty", pa.float64()),
    ]
)
QUOTES = pa.schema(
    [
        ("recv_ns", pa.int64()),
        ("symbol", pa.string()),
        ("update_id", pa.int64()),
        ("bid_price", pa.float64()),
        ("bid_qty", pa.float64()),
        ("ask_price", pa.float64()),
        ("ask_qty", pa.float64()),
    ]
)
TABLES = {"trades": TRADES, "book_updates": BOOK_UPDATES, "quotes": QUOTES}


class UnsupportedFormat(ValueError):
    """`--to` names a format this tool does not write."""


class _TableSink:
    """Column buffers for one table, flushed to its ParquetWriter every `batch_rows` rows."""

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema, batch_rows: int) -> None:
        self.writer, self.schema, self.batch_rows = writer, schema, batch_rows
        self.columns: list[list[Any]] = [[] for _ in schema.names]
        self.rows = 0
        self._buffered = 0

    def add(self, *row: Any) -> None:
        for column, value in zip(self.columns, row, strict=True):
            column.append(value)
        self._buffered += 1
        self.rows += 1
        if self._buffered >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self._buffered:
            return
        arrays = [
            pa.array(column, type=f.type)
            for column, f in zip(self.columns, self.schema, strict=True)
        ]
        self.writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        for column in self.columns:
            column.clear()
        self._buffered = 0


def convert_records(
    records: Iterable[Record],
    out_dir: Path,
    *,
    to: str = "parquet",
    source: str = "",
    batch_rows: int = BATCH_ROWS,
) -> dict[str, int]:
    """Write the tables into `out_dir` (created if needed); returns rows written per table."""
    if to not in FORMATS:
        raise UnsupportedFormat(f"cannot convert to {to!r}; supported: {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        sinks: dict[str, _TableSink] = {}
        for name, schema in TABLES.items():
            part = stack.enter_context(replacing(out_dir / f"{name}.parquet"))
            writer = stack.enter_context(pq.ParquetWriter(part, schema))
            sinks[name] = _TableSink(writer, schema, batch_rows)
        _fill(records, sinks, source)
        for sink in sinks.values():
            sink.flush()
        return {name: sink.rows for name, sink in sinks.items()}


def _fill(records: Iterable[Record], sinks: dict[str, _TableSink], source: str) -> None:
    trades, updates, quotes = sinks["trades"], sinks["book_updates"], sinks["quotes"]
    for number, record in enumerate(records, start=1):
        if record.is_disconnect:
            continue
        item = decode(record, source, number)
        recv, event = record.recv_ns, item.event
        if isinstance(event, TradeEvent):
            price, qty = _floats(f"{source}:{number}", event.p, event.q)
            kind = event.X or None
            trades.add(recv, event.E, event.T, item.symbol, event.t, price, qty, event.m, kind)
        elif isinstance(event, DepthDiff):
            ids = (event.first_update_id, event.final_update_id, event.previous_final_update_id)
            for price, qty in event.bids:
                updates.add(recv, event.event_ms, item.symbol, *ids, "bid", price, qty)
            for price, qty in event.asks:
                updates.add(recv, event.event_ms, item.symbol, *ids, "ask", price, qty)
        elif isinstance(event, BookTickerEvent):
            values = _floats(f"{source}:{number}", event.b, event.B, event.a, event.A)
            quotes.add(recv, item.symbol, event.u, *values)


def _floats(where: str, *texts: str) -> list[float]:
    try:
        return [float(text) for text in texts]
    except ValueError:
        raise RecordingError(f"{where}: malformed number in {texts!r}") from None
