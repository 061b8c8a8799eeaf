"""`replay merge`: several recordings as one, ordered by receive time.

A k-way merge (`heapq.merge` over the streaming readers, so memory is one record per file plus
the records sharing one receive time): stable, so records with equal receive times keep their
order within a file and come from the earlier file (in argument order) first.

- Consecutive rotations of one recording (each file starts after the previous ends) merge into
  one continuous recording: the merge never inserts a disconnect marker at a file boundary.
  Markers inside a file are kept where they were (after the record they followed); a marker
  before a file's first record is dropped, as it follows nothing and disconnects nothing.
- Overlapping copies (the same receive time and payload in two files) are written once. Within
  one file identical lines are all kept (the feed really sent them twice); across files a
  payload at one receive time is written as many times as the file holding it most often has it.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter

from replay.recording import Record

_Tagged = tuple[int, int, Record]


def _tagged(records: Iterable[Record], index: int) -> Iterator[_Tagged]:
    seen_record = False
    for record in records:
        if record.is_disconnect and not seen_record:
            continue
        seen_record = True
        yield record.recv_ns, index, record


def merge_records(sources: Sequence[Iterable[Record]]) -> Iterator[Record]:
    """The records of all sources by receive time, overlapping duplicates written once."""
    merged = heapq.merge(*(_tagged(s, i) for i, s in enumerate(sources)), key=itemgetter(0))
    group_ns: int | None = None
    seen: dict[int, Counter[bytes]] = {}
    written: Counter[bytes] = Counter()
    for recv_ns, index, record in merged:
        if recv_ns != group_ns:
            group_ns = recv_ns
            seen.clear()
            written.clear()
        counts = seen.setdefault(index, Counter())
        counts[record.payload] += 1
        if counts[record.payload] > written[record.payload]:
            written[record.payload] += 1
            yield record
