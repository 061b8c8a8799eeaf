"""The synthetic recordings a stack replays when it is given none (`replay.synth`), cached by
what they hold: a run of one length and seed always replays the same file."""

from __future__ import annotations

import math
from pathlib import Path

FUTURES_SYMBOLS = {"usdm": "ETHUSDT", "coinm": "ETHUSD_PERP"}
"""The synthetic perpetual a futures game day trades, per market."""
FUTURES_SYNTH_VERSION = "v2"
"""In the cached file's name: a cache of an older synthesis is not replayed as the new one
(v2: USD-M quantities in the contract's step)."""


def synthetic_recording(
    run_dir: Path,
    *,
    duration_s: float,
    seed: int,
    regime: str,
    crash_at_s: float | None = None,
    market: str = "spot",
) -> Path:
    from replay.synth import SynthSpec, write_recording

    crash = f"-crash{int(crash_at_s)}s" if crash_at_s is not None else ""
    futures = market in FUTURES_SYMBOLS
    suffix = f"-{market}-{FUTURES_SYNTH_VERSION}" if futures else ""
    path = run_dir / f"synth-{regime}-{seed}-{int(duration_s)}s{crash}{suffix}.gz"
    if not path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        spec = SynthSpec(
            symbols=(FUTURES_SYMBOLS[market],) if futures else ("BTCUSDT",),
            duration_s=duration_s,
            seed=seed,
            regime=regime,
            crash_at_s=crash_at_s,
            futures=futures,
            coinm=market == "coinm",
        )
        write_recording(spec, tmp)
        tmp.rename(path)
    return path


CRASH_AFTER_S = 60.0
"""Calm market between what a run needs and the flash crash planted after it."""
CRASH_TAIL_S = 900.0
"""Recorded market from the end of the calm part: the crash, its aftermath, and room for the
scenarios after a flash-crash one (15 minutes of market is 90 s of a game day at 10x)."""


def recording_covering(market_s: float, *, market: str = "spot") -> Path:
    """The cached synthetic recording (seed 42) for a run that needs `market_s` of market: calm
    for at least that long (in whole half hours, so that runs of a similar length share one
    file), then a flash crash that the run never reaches unless an experiment seeks to it
    (`replay_seek_to_drop`). Before the crash the file is the calm regime's, message for
    message."""
    calm_s = max(1800, math.ceil(market_s / 1800) * 1800)
    return synthetic_recording(
        Path(".stormproof"),
        duration_s=calm_s + CRASH_TAIL_S,
        seed=42,
        regime="flash_crash",
        crash_at_s=calm_s + CRASH_AFTER_S,
        market=market,
    )
