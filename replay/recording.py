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
from collections.abc import Callable, Iterable, Iterator
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


def line_blocks(path: str | Path, chunk_size: int = 1 << 14) -> Iterator[bytes | None]:
    """The file's text in blocks of whole lines, each block ending with b"\n" (a last line without
    one gets it); None where the file ended abruptly, after everything before it (an unfinished
    last line is dropped). Lines keep any b"\r" before their newline: readers strip it.

    16 KiB of the file at a time (about 150 KB of text): inflating one block stalls a paced
    replay for well under a millisecond."""
    if str(path).endswith(".gz"):
        chunks: Iterable[bytes] = _gzip_blocks(path, chunk_size)
    else:
        chunks = _plain_blocks(path, chunk_size)
    carry = b""
    for chunk in chunks:
        if not chunk:
            yield None
            return
        cut = chunk.rfind(b"\n")
        if cut < 0:
            carry += chunk
            continue
        yield carry + chunk[: cut + 1]
        carry = chunk[cut + 1 :]
    if carry:
        yield carry + b"\n"


def _plain_blocks(path: str | Path, chunk_size: int) -> Iterator[bytes]:
    with open(path, "rb") as plain:
        while chunk := plain.read(chunk_size):
            yield chunk


def record_of(line: bytes, last_ns: int, where: Callable[[], str]) -> Record:
    """The record of one line (its newline and any b"\r" before it removed); a disconnect marker
    is Record(last_ns, b""). Raises RecordingError, naming `where()`, for a line that is neither."""
    stamp, _, payload = line.partition(b" ")
    if payload and stamp.isdigit():  # the usual case, kept cheap
        return Record(int(stamp), payload)
    record = parse_line(line, where=where())
    if record is None or not record.payload:
        return Record(last_ns, b"")
    return record


def read_records(path: str | Path) -> Iterator[Record]:
    """Yield every record of one recording, disconnect markers included (payload b"").

    A file whose writer died before closing it (no gzip trailer) is read up to where its data
    ends, and a disconnect marker stands for the abrupt end: what was flushed is not lost.
    """
    cursor = RecordCursor(path)
    while (record := cursor.next()) is not None:
        yield record


class RecordCursor:
    """One recording, read block by block: records one at a time (`next`), or runs of whole
    lines taken straight from the current block by a faster reader (`block`, `pos`, `advance`).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._blocks = line_blocks(path)
        self.block = b""
        self.pos = 0
        self.last_ns = 0
        """Receive time of the latest record (a disconnect marker carries it)."""
        self.lines = 0
        """Lines consumed so far (a record is one line): names the line of a parse error."""
        self._truncated = False
        self._marker_due = False

    def fill(self) -> bool:
        """Make `block[pos:]` hold at least one line (or the marker of an abrupt end); False at
        the end of the file."""
        while self.pos >= len(self.block):
            if self._truncated:
                return self._marker_due
            block = next(self._blocks, b"")
            if block is None:
                self._truncated = self._marker_due = True
                return True
            if not block:
                return False
            self.block, self.pos = block, 0
        return True

    def next(self) -> Record | None:
        if not self.fill():
            return None
        if self.pos >= len(self.block):  # the file ended abruptly here
            self._marker_due = False
            return Record(self.last_ns, b"")
        end = self.block.index(b"\n", self.pos)
        line = self.block[self.pos : end].rstrip(b"\r")
        self.pos = end + 1
        self.lines += 1
        record = record_of(line, self.last_ns, lambda: f"{self.path}:{self.lines}")
        self.last_ns = record.recv_ns
        return record

    def advance(self, pos: int, records: int, last_ns: int) -> None:
        """A faster reader took `records` lines, up to `pos`; the last was received at `last_ns`."""
        self.pos = pos
        self.lines += records
        self.last_ns = last_ns


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
