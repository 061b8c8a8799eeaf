from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from replay.synth import SynthSpec, write_recording
from tests.helpers import BTC_RECORDING, SHARED_DATA
from tests.postgres import postgres_server

# No per-example deadline: it is a timing assertion, and on a loaded two-core machine one slow
# example (a collection, CPU steal) failed a property that holds. Speed is for the benchmarks.
settings.register_profile("stormproof", deadline=None)
settings.load_profile("stormproof")


@pytest.fixture(scope="session")
def shared_recording() -> Path:
    if not BTC_RECORDING.exists():
        pytest.skip(
            f"shared recording absent: {BTC_RECORDING} (../shared/data not beside the repo)"
        )
    return BTC_RECORDING


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} absent (../shared/data not beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synth_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "calm-120s.gz"
    write_recording(SynthSpec(duration_s=120, seed=3), path)
    return path


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server for the whole session: the DSN of its `stormproof` database."""
    with postgres_server(tmp_path_factory.mktemp("postgres")) as dsn:
        yield dsn
