"""`stormproof deploy validate`: both overlays and the monitoring kustomization, rendered from a
copy of the tree and dry-run against a kube-apiserver of its own, as a user runs it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from harness.cli import app

pytestmark = pytest.mark.integration


def test_validate_accepts_the_tree() -> None:
    result = CliRunner().invoke(app, ["deploy", "validate"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "overlays/local",
        "overlays/production",
        "monitoring",
    ]
    assert all("objects accepted (dry run)" in line for line in lines)
