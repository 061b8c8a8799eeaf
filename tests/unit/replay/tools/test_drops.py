"""Finding where a recorded market falls, so that a flash-crash experiment replays the crash the
recording has instead of imitating one."""

from pathlib import Path

import pytest

from replay.recording import read_many
from replay.synth import SynthSpec, write_recording
from replay.tools.drops import find_drop, trade_prices

pytestmark = pytest.mark.unit
S = 1_000_000_000


def test_a_fall_within_the_window_is_found_from_its_high() -> None:
    prices = [(0, 100.0), (1 * S, 101.0), (2 * S, 100.5), (3 * S, 99.4), (4 * S, 98.9)]
    drop = find_drop(prices, min_drop_pct=2.0, within_ns=10 * S)
    assert drop is not None
    assert (drop.high_ns, drop.low_ns, drop.high, drop.low) == (1 * S, 4 * S, 101.0, 98.9)
    assert drop.start_ns == 2 * S, "the last price within 0.5% of the high"
    assert drop.pct == pytest.approx(100 * 2.1 / 101)


def test_a_slow_decline_longer_than_the_window_is_not_a_drop() -> None:
    slow = [(t * S, 100.0 - 0.1 * t) for t in range(60)]  # 6% over a minute, 1% per 10 s
    assert find_drop(slow, min_drop_pct=2.0, within_ns=10 * S) is None
    assert find_drop(slow, min_drop_pct=2.0, within_ns=30 * S) is not None


def test_the_first_qualifying_fall_wins() -> None:
    prices = [(0, 100.0), (S, 97.0), (2 * S, 100.0), (3 * S, 90.0)]
    drop = find_drop(prices, min_drop_pct=2.0, within_ns=10 * S)
    assert drop is not None and drop.low_ns == S


@pytest.mark.parametrize(("pct", "within"), [(0.0, S), (100.0, S), (2.0, 0)])
def test_nonsense_thresholds_are_refused(pct: float, within: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        find_drop([], min_drop_pct=pct, within_ns=within)


def test_the_planted_crash_of_a_synthetic_recording_is_found(tmp_path: Path) -> None:
    spec = SynthSpec(duration_s=120.0, seed=4, regime="flash_crash", crash_at_s=90.0)
    write_recording(spec, tmp_path / "crash.gz")
    write_recording(SynthSpec(duration_s=120.0, seed=4), tmp_path / "calm.gz")
    drop = find_drop(
        trade_prices(read_many([tmp_path / "crash.gz"]), "BTCUSDT"),
        min_drop_pct=2.0,
        within_ns=10 * S,
    )
    assert drop is not None
    crash_ns = spec.start_ns + 90 * S
    assert drop.high_ns <= drop.start_ns <= drop.low_ns
    assert crash_ns - S <= drop.start_ns <= crash_ns + S, "where the planted crash begins"
    assert drop.low_ns - crash_ns < 3 * S, "the fall takes 2 s"
    calm = trade_prices(read_many([tmp_path / "calm.gz"]), "BTCUSDT")
    assert find_drop(calm, min_drop_pct=2.0, within_ns=10 * S) is None
    assert list(trade_prices(read_many([tmp_path / "crash.gz"]), "ETHUSDT")) == []


def test_a_late_crash_leaves_the_calm_market_before_it_untouched(tmp_path: Path) -> None:
    crash = SynthSpec(duration_s=60.0, seed=9, regime="flash_crash", crash_at_s=50.0)
    calm = SynthSpec(duration_s=60.0, seed=9, regime="calm")
    write_recording(crash, tmp_path / "crash.gz")
    write_recording(calm, tmp_path / "calm.gz")
    before = crash.start_ns + 49 * S

    def head(path: Path) -> list[tuple[int, bytes]]:
        return [(r.recv_ns, r.payload) for r in read_many([path]) if r.recv_ns < before]

    assert head(tmp_path / "crash.gz") == head(tmp_path / "calm.gz")


def test_a_crash_time_outside_the_recording_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="crash_at_s"):
        write_recording(
            SynthSpec(duration_s=10.0, regime="flash_crash", crash_at_s=10.0), tmp_path / "x.gz"
        )
