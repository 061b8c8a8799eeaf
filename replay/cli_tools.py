"""`replay inspect | slice | merge | convert`: offline tools for recordings.

Only wiring lives here (files in, files out, errors to one stderr line via `fail`); what the
tools do is in `replay.tools.*`, pure over record iterators.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from replay.cli_support import fail
from replay.recording import Record, RecordingWriter, read_records
from replay.tools import replacing

_BAD_INPUT = (ValueError, OSError, EOFError, zlib.error)
"""RecordingError and TimeSpecError are ValueErrors; a corrupt gzip is OSError/EOFError/zlib."""


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except _BAD_INPUT as exc:
        fail(" ".join(str(exc).split()) or type(exc).__name__)


def _inputs(paths: Iterable[Path]) -> list[Path]:
    paths = list(paths)
    for path in paths:
        if not path.is_file():
            fail(f"no such file: {path}")
    return paths


def _output(out: Path, inputs: list[Path]) -> Path:
    if not out.name.endswith(".gz"):
        fail(f"--out must end in .gz (recordings are gzip): {out}")
    if any(out.resolve() == path.resolve() for path in inputs):
        fail(f"--out must not be one of the inputs: {out}")
    return out


def _write(records: Iterable[Record], out: Path) -> int:
    """Write records to a recording at `out`, replacing it only once all are written."""
    with replacing(out) as part, RecordingWriter(part) as writer:
        for record in records:
            if record.is_disconnect:
                writer.write_disconnect()
            else:
                writer.write(record.recv_ns, record.payload)
        return writer.records


def inspect_command(
    files: Annotated[list[Path], typer.Argument(help="recording file(s), read as one, in order")],
    as_json: Annotated[
        bool, typer.Option("--json", help="print a stable JSON object instead of tables")
    ] = False,
) -> None:
    """Streams, counts, time span, message rates, id gaps and clock offsets of a recording."""
    from replay.tools.inspect import Inspector, render

    paths = _inputs(files)
    inspector = Inspector()
    with _one_line_errors():
        for path in paths:
            inspector.add(read_records(path), str(path))
    report = inspector.report()
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    from rich.console import Console

    console = Console()
    for table in render(report):
        console.print(table)


def slice_command(
    file: Annotated[Path, typer.Argument(help="recording to cut")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output .gz recording")],
    start: Annotated[
        str | None,
        typer.Option("--from", help="first receive time kept: ISO-8601, epoch s/ms/ns, +30s"),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="receive time kept up to (excluded), same forms")
    ] = None,
) -> None:
    """Keep records with from <= receive time < to, replayable from the first line."""
    from replay.tools.slice import parse_time, slice_records

    paths = _inputs([file])
    _output(out, paths)
    with _one_line_errors():
        first_ns = (
            _first_recv_ns(file)
            if any(t and t.strip().startswith("+") for t in (start, end))
            else None
        )
        start_ns = parse_time(start, file_start_ns=first_ns) if start is not None else None
        end_ns = parse_time(end, file_start_ns=first_ns) if end is not None else None
        if start_ns is not None and end_ns is not None and end_ns <= start_ns:
            fail(f"--to ({end}) must be after --from ({start})")
        records = slice_records(
            read_records(file), start_ns=start_ns, end_ns=end_ns, source=str(file)
        )
        count = _write(records, out)
    typer.echo(f"wrote {count} records to {out}")


def _first_recv_ns(path: Path) -> int | None:
    for record in read_records(path):
        if not record.is_disconnect:
            return record.recv_ns
    return None


def merge_command(
    files: Annotated[list[Path], typer.Argument(help="recordings to merge (earlier wins ties)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output .gz recording")],
) -> None:
    """Merge recordings by receive time; rotations join seamlessly, overlaps are written once."""
    from replay.tools.merge import merge_records

    paths = _inputs(files)
    _output(out, paths)
    with _one_line_errors():
        count = _write(merge_records([read_records(p) for p in paths]), out)
    typer.echo(f"wrote {count} records to {out}")


def convert_command(
    file: Annotated[Path, typer.Argument(help="recording to convert")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory")],
    to: Annotated[str, typer.Option("--to", help="output format: parquet")] = "parquet",
) -> None:
    """Write trades, book updates and quotes as Parquet tables."""
    from replay.tools.convert import FORMATS, convert_records

    if to not in FORMATS:
        fail(f"cannot convert to {to!r}; supported: {', '.join(FORMATS)}")
    paths = _inputs([file])
    with _one_line_errors():
        rows = convert_records(read_records(paths[0]), out, to=to, source=str(file))
    summary = ", ".join(f"{name} {count}" for name, count in rows.items())
    typer.echo(f"wrote {summary} rows to {out}")
