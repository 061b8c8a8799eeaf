"""The dependency direction of DESIGN.md, enforced.

engine.core imports nothing of ours (plumbing included) and does no I/O; engine never imports
replay or harness; replay never imports harness nor the engine (the oracle owns its knowledge);
plumbing, the domain-free base layer both may use, imports nothing of ours; engine.execution
is layered from its assembly down to the journal and the lease (import-linter contracts in
pyproject.toml). Locustfiles in load/ import none of our packages and no asyncio code
(Locust monkey-patches with gevent).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.tools import PROJECT_ROOT

pytestmark = pytest.mark.unit

LOCUST_FORBIDDEN = (
    "engine",
    "replay",
    "harness",
    "asyncio",
    "aiohttp",
    "websockets",
    "redis.asyncio",
)


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
    )


def test_project_keeps_every_contract() -> None:
    result = lint_imports(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 7 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "source", "contract"),
    [
        ("engine/core/leak.py", "import replay.recording\n", "engine.core is pure"),
        ("engine/core/io.py", "import asyncio\n", "engine.core does no I/O"),
        ("engine/risk/leak.py", "from harness import cli\n", "engine is deployable alone"),
        ("engine/core/plumbed.py", "from plumbing import waits\n", "engine.core is pure"),
        ("replay/leak.py", "import harness.tools\n", "replay never imports harness"),
        ("replay/judge.py", "from engine.core import book\n", "replay never imports the engine"),
        ("replay/sub/deep.py", "import engine.config\n", "replay never imports the engine"),
        ("plumbing/leak.py", "import engine.config\n", "plumbing imports nothing of ours"),
        ("plumbing/venue.py", "from replay import recording\n", "plumbing imports nothing of ours"),
        ("plumbing/cli.py", "import harness.cli\n", "plumbing imports nothing of ours"),
        (
            "engine/execution/gateway.py",
            "from engine.execution import desk\n",
            "engine.execution layers",
        ),
        (
            "engine/execution/lease/x.py",
            "import engine.execution.service\n",
            "engine.execution layers",
        ),
    ],
)
def test_a_violation_breaks_the_build(
    tmp_path: Path, module: str, source: str, contract: str
) -> None:
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # a skeleton of the real layout: every module a contract names must exist
    packages = ["plumbing", "engine", "replay", "replay/sub", "harness"] + [
        f"engine/{p}"
        for p in ("core", "runtime", "bus", "marketdata", "strategy", "risk", "execution", "ops")
    ]
    packages += ["engine/execution/journal", "engine/execution/lease"]
    for package in packages:
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    for name in (
        "engine/config.py",
        "engine/core/book.py",
        "plumbing/waits.py",
        "replay/recording.py",
        "harness/cli.py",
        "harness/tools.py",
        *(
            f"engine/execution/{layer}.py"
            for layer in (
                "assembly",
                "service",
                "recovery",
                "venue_session",
                "parents",
                "user_stream",
                "desk",
                "gateway",
                "venue_pacer",
                "venue",
                "errors",
            )
        ),
    ):
        (tmp_path / name).write_text("")
    (tmp_path / module).write_text(source)
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout


def forbidden_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            if any(name == bad or name.startswith(bad + ".") for bad in LOCUST_FORBIDDEN):
                found.append(f"{path.name}:{node.lineno} imports {name}")
    return found


def test_locustfiles_import_none_of_our_asyncio_code() -> None:
    files = sorted((PROJECT_ROOT / "load").rglob("*.py"))
    assert [problem for f in files for problem in forbidden_imports(f)] == []


def test_the_locustfile_check_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "locustfile.py"
    bad.write_text("import json\nfrom engine.bus import MemoryBus\nimport asyncio\n")
    assert forbidden_imports(bad) == [
        "locustfile.py:2 imports engine.bus",
        "locustfile.py:3 imports asyncio",
    ]
