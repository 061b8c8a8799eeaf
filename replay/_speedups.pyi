"""Types of the compiled hot path (replay/_speedups.c); see replay/fastlane.py."""

from collections import deque
from collections.abc import Callable
from typing import Any

STOP_BUDGET: int
STOP_END: int
STOP_SLOW: int
STOP_CROWDED: int
STOP_NOT_DUE: int
STOP_ERROR: int

def run(
    block: bytes,
    pos: int,
    budget: int,
    subscribed: dict[str, int],
    clients: list[tuple[set[str], bool, Callable[[bytes], None], deque[bytes], int, int]],
    quotes: dict[str, bytes],
    books: dict[str, tuple[Any, list[float], dict[float, float], list[float], dict[float, float]]],
    last_u: dict[str, int],
    rolling: dict[str, Any],
    busy: set[str],
    rebase: bool,
    time_map: tuple[int, int, float] | None,
    last_ms: int,
    on_crossed: Callable[[str, int], None],
    symbols: dict[str, str],
    pacing: tuple[int, int, float, int] | None,
    recvs: list[int] | None,
    /,
) -> tuple[int, int, int, int, int, BaseException | None]: ...
def frame_batch(popleft: Callable[[], bytes], count: int, /) -> bytes: ...
def read_decimal(text: bytes, /) -> float | None: ...
