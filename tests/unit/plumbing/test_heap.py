"""Settling the heap: what startup built is out of the collector's way, what comes after is
collected as usual."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from plumbing.heap import settle_heap

pytestmark = pytest.mark.unit


@pytest.fixture
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()  # the test process goes on with an ordinary heap


def _tracked(target: object) -> bool:
    return any(candidate is target for candidate in gc.get_objects())


def test_startup_objects_leave_the_collected_generations(thawed: None) -> None:
    built_at_startup = {"venue": ["metadata"]}
    assert _tracked(built_at_startup)

    report = settle_heap()

    assert report["frozen"] == gc.get_freeze_count() > 0
    assert not _tracked(built_at_startup)
    gc.unfreeze()
    assert _tracked(built_at_startup)


def test_garbage_made_after_settling_is_still_collected(thawed: None) -> None:
    settle_heap()
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
