"""The dependency direction of DESIGN.md, enforced.

engine.core imports nothing of ours (plumbing included) and does no I/O; engine never imports
replay or harness, and its layers only import downwards (app > services and ops as siblings >
runtime > bus > config > core > plumbing); replay never imports harness nor the engine (the
oracle owns its knowledge) and is layered from its command line down to its pure base; plumbing,
the domain-free base layer all may use, imports nothing of ours; the harness is layered from its
command line down to its run-directory contract (import-linter contracts in pyproject.toml).

Locustfiles in load/ import no asyncio code (Locust monkey-patches with gevent) and, of ours, only
what they share with the stack and the engine: the run directory's contract (`harness.runfile`)
and the engine's clientOrderId rule (`engine.core.ids`). Those modules, and every package and
module they bring in, import nothing but the standard library and each other.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness.tools import PROJECT_ROOT

pytestmark = pytest.mark.unit

LOCUST_FORBIDDEN = (
    "engine",
    "replay",
    "harness",
    "plumbing",
    "asyncio",
    "aiohttp",
    "websockets",
    "redis.asyncio",
)
LOCUST_ALLOWED = ("harness.runfile", "engine.core.ids")
"""Ours, and importable by a locustfile: standard library only (with what they import of ours,
LOCUST_SHARED)."""
LOCUST_SHARED = (
    "harness",
    "harness.runfile",
    "harness.errors",
    "engine",
    "engine.core",
    "engine.core.ids",
)
"""What importing LOCUST_ALLOWED runs of ours: the modules and their packages' __init__."""


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
    contracts = len(
        tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
            "contracts"
        ]
    )
    assert f"Contracts: {contracts} kept, 0 broken." in result.stdout, result.stdout


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
        ("engine/runtime/leak.py", "import engine.app\n", "engine layers"),
        ("engine/bus/leak.py", "from engine import runtime\n", "engine layers"),
        ("engine/config.py", "import engine.strategy\n", "engine layers"),
        ("engine/risk/peek.py", "import engine.strategy\n", "engine layers"),
        ("engine/ops/peek.py", "import engine.execution\n", "engine layers"),
        ("plumbing/up.py", "import engine.bus\n", "engine layers"),
        ("replay/feed.py", "from replay import server\n", "replay layers"),
        ("replay/lane.py", "import replay.market\n", "replay layers"),
        ("replay/book.py", "from replay.cli_support import fail\n", "replay layers"),
        ("harness/chaos/probe.py", "from harness.gameday import runner\n", "harness layers"),
        ("harness/runfile.py", "import harness.stack\n", "harness layers"),
        ("harness/truth/collect.py", "from harness.chaos import probes\n", "harness layers"),
        ("harness/client.py", "import harness.supervisor\n", "harness layers"),
        ("harness/errors.py", "from harness import tools\n", "harness layers"),
        ("harness/load/runner.py", "from harness.cli import app\n", "harness layers"),
    ],
)
def test_a_violation_breaks_the_build(
    tmp_path: Path, module: str, source: str, contract: str
) -> None:
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # a skeleton of the real layout: every module a contract names must exist
    packages = ["plumbing", "engine", "replay", "replay/sub", "harness"]
    packages += [f"harness/{p}" for p in ("cli", "gameday", "load", "chaos", "truth")]
    packages += [
        f"engine/{p}"
        for p in ("core", "runtime", "bus", "marketdata", "strategy", "risk", "execution", "ops")
    ]
    for package in packages:
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    for name in (
        "engine/__main__.py",
        "engine/app.py",
        "engine/config.py",
        "engine/core/book.py",
        "plumbing/waits.py",
        "replay/recording.py",
        "harness/gameday/runner.py",
        "harness/chaos/probes.py",
        *(
            f"harness/{m}.py"
            for m in (
                "quiesce",
                "stack",
                "client",
                "supervisor",
                "runfile",
                "recordings",
                "toxiproxy",
                "postgres",
                "redis_acl",
                "ports",
                "tools",
                "summary",
                "errors",
            )
        ),
    ):
        (tmp_path / name).write_text("")
    for name in layer_modules(PROJECT_ROOT / "pyproject.toml"):
        (tmp_path / name).write_text("")
    (tmp_path / module).write_text(source)
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout


def layer_modules(pyproject: Path) -> list[str]:
    """Every module a `layers` contract names inside its containers, as a file path."""
    config = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]
    paths = []
    for contract in config["contracts"]:
        if contract["type"] != "layers":
            continue
        for container in contract.get("containers", []):
            for layer in contract["layers"]:
                for name in re.split(r"[|:]", layer):
                    name = name.strip().strip("()")
                    paths.append(f"{container}.{name}".replace(".", "/") + ".py")
    return paths


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def forbidden_imports(path: Path, allowed: tuple[str, ...] = LOCUST_ALLOWED) -> list[str]:
    return [
        f"{path.name}:{line} imports {name}"
        for line, name in _imports(path)
        if name not in allowed
        and any(name == bad or name.startswith(bad + ".") for bad in LOCUST_FORBIDDEN)
    ]


def _source(module: str) -> Path:
    base = PROJECT_ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def non_stdlib_imports(module: str) -> list[str]:
    return [
        f"{module}:{line} imports {name}"
        for line, name in _imports(_source(module))
        if name.split(".")[0] not in sys.stdlib_module_names
        and name not in LOCUST_SHARED
        and name != "__future__"
    ]


def test_what_locustfiles_may_import_of_ours_is_standard_library_only() -> None:
    assert [problem for m in LOCUST_SHARED for problem in non_stdlib_imports(m)] == []


def test_the_shared_list_holds_every_package_on_the_way() -> None:
    for module in LOCUST_ALLOWED:
        parts = module.split(".")
        assert all(".".join(parts[:n]) in LOCUST_SHARED for n in range(1, len(parts) + 1))


def test_locustfiles_import_none_of_our_asyncio_code() -> None:
    files = sorted((PROJECT_ROOT / "load").rglob("*.py"))
    assert [problem for f in files for problem in forbidden_imports(f)] == []


def test_the_locustfile_check_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "locustfile.py"
    bad.write_text(
        "import json\nfrom engine.bus import MemoryBus\nimport asyncio\n"
        "from engine.core.ids import client_order_id\nfrom harness.stack import Stack\n"
    )
    assert forbidden_imports(bad) == [
        "locustfile.py:2 imports engine.bus",
        "locustfile.py:3 imports asyncio",
        "locustfile.py:5 imports harness.stack",
    ]
