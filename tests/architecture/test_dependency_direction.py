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
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

from harness.tools import PROJECT_ROOT

pytestmark = pytest.mark.unit

PACKAGES = ("plumbing", "engine", "replay", "harness")

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
        ("replay/tools/deep.py", "import engine.config\n", "replay never imports the engine"),
        ("plumbing/leak.py", "import engine.config\n", "plumbing imports nothing of ours"),
        ("plumbing/venue.py", "from replay import recording\n", "plumbing imports nothing of ours"),
        ("plumbing/cli.py", "import harness.cli\n", "plumbing imports nothing of ours"),
        ("engine/runtime/service.py", "import engine.app\n", "engine layers"),
        ("engine/bus/base.py", "from engine import runtime\n", "engine layers"),
        ("engine/config.py", "import engine.strategy\n", "engine layers"),
        ("engine/risk/service.py", "import engine.strategy.service\n", "engine layers"),
        ("engine/ops/server.py", "import engine.execution.service\n", "engine layers"),
        ("plumbing/waits.py", "import engine.bus\n", "engine layers"),
        ("engine/execution/gateway.py", "from engine.execution import desk\n", "engine.execution"),
        (
            "engine/execution/lease/redis.py",
            "import engine.execution.service\n",
            "engine.execution",
        ),
        ("replay/feed_server.py", "from replay import server\n", "replay layers"),
        ("replay/lane/state.py", "import replay.market\n", "replay layers"),
        ("replay/book.py", "from replay.cli_support import fail\n", "replay layers"),
        ("harness/chaos/probes.py", "from harness.gameday import runner\n", "harness layers"),
        ("harness/runfile.py", "import harness.stack\n", "harness layers"),
        ("harness/truth/collect.py", "from harness.chaos import probes\n", "harness layers"),
        ("harness/client.py", "import harness.supervisor\n", "harness layers"),
        ("harness/errors.py", "from harness import tools\n", "harness layers"),
        ("harness/load/runner.py", "from harness.cli import app\n", "harness layers"),
        ("harness/deploy/config.py", "import harness.stack\n", "harness layers"),
        ("harness/deploy/secrets.py", "from harness import supervisor\n", "harness layers"),
    ],
)
def test_a_violation_breaks_the_build(
    tmp_path: Path, module: str, source: str, contract: str
) -> None:
    """One import against the direction, added to a copy of the real tree, breaks the contract
    it names (and the build: `make test` runs lint-imports through this file)."""
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(
            PROJECT_ROOT / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c", "*.j2"),
        )
    target = tmp_path / module
    with target.open("a") as file:
        file.write("\n" + source)
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout


def import_circles(packages: tuple[str, ...]) -> list[list[str]]:
    """Every group of our modules that import each other round in a circle (Tarjan's strongly
    connected components of the import graph, imports inside functions included)."""
    graph = grimp.build_graph(*packages, cache_dir=None)
    edges = {m: graph.find_modules_directly_imported_by(m) & graph.modules for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return circles


def test_no_module_of_ours_imports_its_way_back_to_itself() -> None:
    assert import_circles(PACKAGES) == []


def test_the_circle_finder_sees_a_circle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop" / "__init__.py").write_text("")
    (tmp_path / "loop" / "a.py").write_text("from loop import b\n")
    (tmp_path / "loop" / "b.py").write_text("def f():\n    from loop import c\n")
    (tmp_path / "loop" / "c.py").write_text("import loop.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_circles(("loop",)) == [["loop.a", "loop.b", "loop.c"]]


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
