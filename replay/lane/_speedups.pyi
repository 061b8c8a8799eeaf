"""Types of the compiled hot path (replay/lane/_speedups.c); see replay/lane/fastlane.py."""

from collections.abc import Callable

from replay.lane.state import LaneState

STOP_BUDGET: int
STOP_END: int
STOP_SLOW: int
STOP_CROWDED: int
STOP_NOT_DUE: int
STOP_ERROR: int

def run(
    state: LaneState, block: bytes, pos: int, budget: int, /
) -> tuple[int, int, int, int, int, BaseException | None]: ...
def frame_batch(popleft: Callable[[], bytes], count: int, /) -> bytes: ...
def read_decimal(text: bytes, /) -> float | None: ...
