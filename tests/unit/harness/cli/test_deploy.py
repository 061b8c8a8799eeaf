"""`stormproof deploy render-config --check` and `stormproof deploy secrets` as a user runs
them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.deploy import config

pytestmark = pytest.mark.unit


def test_render_config_check_passes_on_the_tree_and_fails_on_a_stale_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["deploy", "render-config", "--check"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    monkeypatch.setattr(config, "stale", lambda: [Path("base/engine.toml")])
    result = runner.invoke(app, ["deploy", "render-config", "--check"])
    assert result.exit_code == 1 and "out of date: base/engine.toml" in result.output


def test_secrets_are_written_once(tmp_path: Path) -> None:
    runner = CliRunner()
    directory = tmp_path / "secrets"
    first = runner.invoke(app, ["deploy", "secrets", "--dir", str(directory)])
    assert first.exit_code == 0 and "wrote 7 files" in first.output, first.output
    again = runner.invoke(app, ["deploy", "secrets", "--dir", str(directory)])
    assert again.exit_code == 0 and "kept the set" in again.output
    (directory / "tokens.env").unlink()
    partial = runner.invoke(app, ["deploy", "secrets", "--dir", str(directory)])
    assert partial.exit_code == 2 and "part of a secret set" in partial.output
