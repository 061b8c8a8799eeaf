"""Offline tools over collector recordings: inspect, slice, merge, convert.

Each tool is a pure function or class over record iterators (`replay.recording.read_records`), so
memory stays flat in file length; the typer commands in `replay.cli_tools` (registered by
`replay.cli`) only wire files to them. Shared here: decoding a record with its file position in
errors, and deciding which depth stream an (unnamed) REST snapshot belongs to.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from replay.binance import DepthSnapshot
from replay.depth_sync import DepthDiff
from replay.recording import Record, RecordingError
from replay.stream_messages import Classified, classify

__all__ = ["SnapshotRouter", "decode", "replacing"]

_MAX_PENDING = 64


def decode(record: Record, source: str, line: int) -> Classified:
    """Classify a record's message; a malformed one raises RecordingError naming `source:line`.

    A well-formed JSON object that is neither a stream message nor a snapshot (a subscription
    reply, say) is kind "other" with no stream rather than an error: it is something a collector
    legitimately receives.
    """
    try:
        return classify(record.payload)
    except (msgspec.MsgspecError, ValueError) as exc:
        try:
            value = msgspec.json.decode(record.payload)
        except msgspec.MsgspecError:
            value = None
        if isinstance(value, dict) and "stream" not in value and "lastUpdateId" not in value:
            return Classified("other", "", record.payload, None, "")
        detail = " ".join(str(exc).split())
        raise RecordingError(f"{source}:{line}: malformed message: {detail}") from None


class SnapshotRouter:
    """Decides which depth stream a recorded REST snapshot belongs to.

    A snapshot names no symbol, so it goes to the stream whose latest update id is nearest its
    `lastUpdateId` (the rule `replay.market.ReplayMarket` applies). A snapshot seen before any
    diff (a sliced file starts with one) waits, and the first stream to show up claims the
    nearest waiting snapshot. Waiting snapshots belong to one connection: a disconnect drops them.
    """

    def __init__(self) -> None:
        self._last_u: dict[str, int] = {}
        self._pending: list[DepthSnapshot] = []

    def on_diff(self, stream: str, diff: DepthDiff) -> DepthSnapshot | None:
        """Record the diff; returns a waiting snapshot this stream claims (apply it first)."""
        claimed = None
        if stream not in self._last_u and self._pending:
            claimed = min(self._pending, key=lambda s: abs(s.lastUpdateId - diff.first_update_id))
            self._pending.remove(claimed)
        self._last_u[stream] = diff.final_update_id
        return claimed

    def on_snapshot(self, snapshot: DepthSnapshot) -> str | None:
        """The stream the snapshot belongs to, or None while no depth stream has been seen."""
        if not self._last_u:
            if len(self._pending) < _MAX_PENDING:
                self._pending.append(snapshot)
            return None
        return min(self._last_u, key=lambda s: abs(self._last_u[s] - snapshot.lastUpdateId))

    def on_disconnect(self) -> None:
        self._pending.clear()


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`, moved onto it only when the block succeeds.

    A failed run (bad line halfway) must not leave a truncated output that looks complete.
    """
    part = path.with_name(path.name + ".part")
    part.unlink(missing_ok=True)
    try:
        yield part
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
