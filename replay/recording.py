"""The collector recording format.

gzip text, one record per line: `<local receive time, ns since epoch><space><message exactly as
received>`. An empty line marks a disconnect of the recording connection. REST depth snapshots
taken at (re)connect are recorded inline as their raw JSON body (`{"lastUpdateId":...}`).

Reading streams the file: memory stays flat in file length.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple


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


def _gzip_blocks(path: str | Path, chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """Decompressed data of a gzip file, member after member (appending writers add members).

    Ends with b"" when the file stops before its gzip trailer (its writer died): everything
    that was flushed is still returned, which GzipFile does not guarantee.
    """

    def new() -> Any:
        return zlib.decompressobj(16 + zlib.MAX_WBITS)

    inflater, fed = new(), False
    with open(path, "rb") as source:
        while chunk := source.read(chunk_size):
            while chunk:
                fed = True
                data = inflater.decompress(chunk)
                if data:
                    yield data
                if inflater.eof:
                    chunk = inflater.unused_data
                    inflater, fed = new(), False
                else:
                    chunk = b""
    if fed and not inflater.eof:
        tail = inflater.flush()
        if tail:
            yield tail
        yield b""


def _lines(path: str | Path) -> Iterator[bytes | None]:
    """Lines without their newline; None where the file ended abruptly."""
    if not str(path).endswith(".gz"):
        with open(path, "rb") as plain:
            for line in plain:
                yield line.rstrip(b"\r\n")
        return
    carry = b""
    for block in _gzip_blocks(path):
        if not block:
            yield None
            return
        lines = (carry + block).split(b"\n")
        carry = lines.pop()
        for line in lines:
            yield line.rstrip(b"\r")
    if carry:
        yield carry.rstrip(b"\r")


def read_records(path: str | Path) -> Iterator[Record]:
    """Yield every record of one recording, disconnect markers included (payload b"").

    A file whose writer died before closing it (no gzip trailer) is read up to where its data
    ends, and a disconnect marker stands for the abrupt end: what was flushed is not lost.
    """
    last_ns = 0
    for number, line in enumerate(_lines(path), start=1):
        if line is None:
            yield Record(last_ns, b"")
            return
        stamp, _, payload = line.partition(b" ")
        if payload and stamp.isdigit():  # the usual case, kept cheap
            last_ns = int(stamp)
            yield Record(last_ns, payload)
            continue
        record = parse_line(line, where=f"{path}:{number}")
        if record is None or not record.payload:
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

    def flush(self) -> None:
        """Hand what was written to the OS (a gzip sync point): readable by others, and it
        survives a crash of this process, though not a crash of the machine."""
        self._gzip.flush()
        self._file.flush()

    def sync(self) -> None:
        """flush() and fsync: it survives a crash of the machine too."""
        self.flush()
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
