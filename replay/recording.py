"""The collector recording format.

gzip text, one record per line: `<local receive time, ns since epoch><space><message exactly as
received>`. An empty line marks a disconnect of the recording connection. REST depth snapshots
taken at (re)connect are recorded inline as their raw JSON body (`{"lastUpdateId":...}`).

Reading streams the file: memory stays flat in file length.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple


class RecordingError(ValueError):
    """A recording line cannot be parsed; the message names the file and line."""


class Record(NamedTuple):
    recv_ns: int
    payload: bytes
    """The message exactly as received; b"" for a disconnect marker."""

    @property
    def is_disconnect(self) -> bool:
        return not self.payload


def parse_line(line: bytes, *, where: str = "") -> Record | None:
    """Parse one line (without its newline). Returns None for a disconnect marker."""
    if not line.strip():
        return None
    space = line.find(b" ")
    if space <= 0:
        raise RecordingError(f"{where}: expected '<recv_ns> <message>', got {line[:60]!r}")
    stamp = line[:space]
    if not stamp.isdigit():
        raise RecordingError(f"{where}: receive time is not an integer: {stamp[:30]!r}")
    return Record(int(stamp), line[space + 1 :])


def read_records(path: str | Path) -> Iterator[Record]:
    """Yield every record of one recording, disconnect markers included (payload b"")."""
    opener = gzip.open if str(path).endswith(".gz") else open
    last_ns = 0
    with opener(path, "rb") as raw:
        stream = io.BufferedReader(raw, buffer_size=1 << 20) if opener is gzip.open else raw
        for number, line in enumerate(stream, start=1):
            line = line.rstrip(b"\r\n")
            record = parse_line(line, where=f"{path}:{number}")
            if record is None:
                yield Record(last_ns, b"")
                continue
            last_ns = record.recv_ns
            yield record


def read_many(paths: Iterable[str | Path]) -> Iterator[Record]:
    """Several files in order, as one continuous recording."""
    for path in paths:
        yield from read_records(path)


class RecordingWriter:
    """Appends records to a gzip recording; `sync()` flushes and fsyncs what was written."""

    def __init__(self, path: str | Path, *, compresslevel: int = 6) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        self._gzip = gzip.GzipFile(fileobj=self._file, mode="ab", compresslevel=compresslevel)
        self.records = 0

    def write(self, recv_ns: int, payload: bytes) -> None:
        if b"\n" in payload:
            raise RecordingError("a message must not contain a newline")
        self._gzip.write(b"%d %s\n" % (recv_ns, payload))
        self.records += 1

    def write_disconnect(self) -> None:
        self._gzip.write(b"\n")

    def sync(self) -> None:
        self._gzip.flush()
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file.closed:
            return
        self._gzip.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
