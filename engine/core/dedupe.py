"""Bounded memory of ids already handled: exactly-once on top of at-least-once inputs."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class RecentIds:
    """Remembers the last `capacity` ids; `add` says whether an id is new.

    Unlike a high-water mark, it accepts ids that arrive out of order (two feeds interleave), so
    deduplicating never creates a gap."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._ids: OrderedDict[Hashable, None] = OrderedDict()
        self._capacity = capacity

    def add(self, key: Hashable) -> bool:
        if key in self._ids:
            return False
        self._ids[key] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, key: Hashable) -> bool:
        return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)
