"""The harness's command line without its Toxiproxy server: one clear line on stderr, exit 2, no
traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.helpers import assert_one_clear_line, run_cli

pytestmark = pytest.mark.integration


def test_missing_toxiproxy_binary(tmp_path: Path, synth_recording: Path) -> None:
    result = run_cli(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "stack",
            "up",
            "-r",
            str(synth_recording),
            "--run-dir",
            str(tmp_path / "stack"),
        ],
        env={"STORMPROOF_TOXIPROXY_SERVER": str(tmp_path / "no-such-toxiproxy-server")},
    )
    assert_one_clear_line(result, "toxiproxy-server not found")
