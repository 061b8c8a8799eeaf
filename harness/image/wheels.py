"""The Python half of the app image: the pinned wheels of requirements/image.txt and the
project's own wheel (its C extensions compiled here), installed into one directory of the
rootfs and compiled to bytecode.

The host's interpreter does the work (pip for the wheels, compileall for the bytecode): it is
CPython 3.11 like the image's Debian python3.11, so the wheels are the same cp311 ones and the
bytecode has the same magic number. Wheels are asked for by platform (manylinux up to glibc
2.36, Debian 12's) and never built from source. The bytecode is `unchecked-hash`: it names
its source by content, not by mtime, so it is the same bytes in every build, and a read-only
image never tries to rewrite it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from harness.errors import ImageBuildError
from harness.image.host import run

PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)),
    "manylinux2014_x86_64",
    "manylinux_2_5_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
)
"""What Debian 12's glibc 2.36 on amd64 runs; `linux_x86_64` is the project's own wheel, built on
this machine (PyPI accepts no such wheel, so downloads are manylinux ones)."""
PYTHON_TAGS = ("--python-version", "3.11", "--implementation", "cp", "--abi", "cp311")
PROJECT_FILES = ("pyproject.toml", "setup.py", "README.md")
PROJECT_PACKAGES = ("engine", "replay", "plumbing", "harness")
"""What the project wheel is built from (pyproject's packages.find); an image keeps the ones
it names (the app image leaves the harness out: its dependencies are not the engine's)."""
IMAGE_DROPPED = ("bin",)
"""pip's console scripts, whose #! names the host's interpreter."""
SOURCE_IGNORED = ("__pycache__", "*.so", "*.pyc", "*.egg-info", "build")


def _platform_args() -> list[str]:
    args: list[str] = []
    for platform in PLATFORMS:
        args += ["--platform", platform]
    return [*args, *PYTHON_TAGS]


def check_interpreter() -> None:
    if sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11):
        raise ImageBuildError(
            f"the image's Python is CPython 3.11; run the builder with a CPython 3.11 "
            f"(this is {sys.implementation.name} {sys.version.split()[0]}): .venv/bin/stormproof"
        )


def project_version(project_root: Path) -> str:
    document = tomllib.loads((project_root / "pyproject.toml").read_text())
    return str(document["project"]["version"])


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def missing_wheels(requirements: Path, wheels_dir: Path) -> list[str]:
    """The pins of requirements with no wheel of that name and version in wheels_dir."""
    present = set()
    for wheel in wheels_dir.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        present.add((_normal(name), version))
    missing = []
    for line in requirements.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if match and (_normal(match[1]), match[2]) not in present:
            missing.append(match[0])
    return missing


def download_wheels(requirements: Path, wheels_dir: Path) -> None:
    """Every pinned wheel of requirements into wheels_dir; the index is not asked at all when
    each is there already (a rebuild, a mutant's image: no network)."""
    wheels_dir.mkdir(parents=True, exist_ok=True)
    if not missing_wheels(requirements, wheels_dir):
        return
    run(
        [
            sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
            "--no-deps", "--only-binary=:all:", *_platform_args(),
            "-d", str(wheels_dir), "-r", str(requirements),
        ],
        what=f"pip download of requirements/{requirements.name} (is PyPI reachable?)",
        env=_clean_env(),
        timeout_s=1800,
    )  # fmt: skip


def build_project_wheel(project_root: Path, work_dir: Path) -> Path:
    """The project's wheel, built from a copy of its sources at a fixed path (so the compiled
    extensions are the same bytes each time), without debug information."""
    check_interpreter()
    source = work_dir / "stormproof-src"
    out = work_dir / "stormproof-wheel"
    for directory in (source, out):
        shutil.rmtree(directory, ignore_errors=True)
    source.mkdir(parents=True)
    for name in PROJECT_FILES:
        shutil.copy2(project_root / name, source / name)
    for package in PROJECT_PACKAGES:
        shutil.copytree(
            project_root / package, source / package, ignore=shutil.ignore_patterns(*SOURCE_IGNORED)
        )
    run(
        [
            sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "-q",
            "--no-deps", "--no-build-isolation", "-w", str(out), str(source),
        ],
        what="building the project wheel (needs gcc, python3-dev and libssl-dev)",
        env={**_clean_env(), "CFLAGS": "-g0", "SOURCE_DATE_EPOCH": "0"},
        timeout_s=900,
    )  # fmt: skip
    built = sorted(out.glob("stormproof-*.whl"))
    if len(built) != 1:
        raise ImageBuildError(f"expected one stormproof wheel in {out}, found {len(built)}")
    return built[0]


def install(
    *,
    requirements: Sequence[Path],
    wheels_dir: Path,
    project_wheel: Path,
    version: str,
    target: Path,
    keep: Sequence[str],
) -> None:
    """The pinned wheels and the project into target, nothing resolved from an index; of the
    project's packages only those in `keep`."""
    run(
        [
            sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q",
            "--no-index", "--find-links", str(wheels_dir),
            "--find-links", str(project_wheel.parent), "--target", str(target),
            "--no-deps", "--only-binary=:all:", "--no-compile", *_platform_args(),
            *(arg for path in requirements for arg in ("-r", str(path))), f"stormproof=={version}",
        ],
        what="pip install --target of the image's wheels",
        env=_clean_env(),
        timeout_s=900,
    )  # fmt: skip
    dropped = [p for p in PROJECT_PACKAGES if p not in keep]
    for name in (*IMAGE_DROPPED, *dropped):
        shutil.rmtree(target / name, ignore_errors=True)


def compile_bytecode(directory: Path, image_path: str) -> None:
    """Every module under directory to unchecked-hash bytecode, recorded as image_path."""
    script = (
        "import compileall, py_compile, sys\n"
        "ok = compileall.compile_dir(sys.argv[1], ddir=sys.argv[2], quiet=1, workers=1,\n"
        "    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)\n"
        "sys.exit(0 if ok else 1)\n"
    )
    run(
        [sys.executable, "-c", script, str(directory), image_path],
        what=f"compiling the bytecode of {image_path}",
        env=_clean_env(),
        timeout_s=900,
    )


def _clean_env() -> dict[str, str]:
    """The caller's environment without what would leak the host's Python setup into a build
    (an extra wheel directory, a PYTHONPATH)."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PIP_FIND_LINKS", "PIP_TARGET", "PIP_PREFIX", "PYTHONHOME"}
    }
