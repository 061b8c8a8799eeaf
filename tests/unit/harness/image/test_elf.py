"""A build refuses an image whose programs would not load: every DT_NEEDED library and the
program interpreter must be inside the rootfs (followed through its own symlinks)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.image.elf import missing_libraries, read_dynamic

pytestmark = pytest.mark.unit

HOST_PROGRAM = Path("/usr/bin/true")


def copy_into(root: Path, source: Path, image_path: str) -> None:
    target = root / image_path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source.resolve(), target)


def test_a_program_without_its_libraries_is_reported(tmp_path: Path) -> None:
    copy_into(tmp_path, HOST_PROGRAM, "/usr/bin/true")
    problems = missing_libraries(tmp_path)
    assert any(p.startswith("/usr/bin/true: interpreter ") for p in problems)
    assert "/usr/bin/true: libc.so.6 not found" in problems


def test_a_program_with_its_libraries_loads(tmp_path: Path) -> None:
    info = read_dynamic(HOST_PROGRAM.read_bytes())
    assert info is not None and info.interpreter
    copy_into(tmp_path, HOST_PROGRAM, "/usr/bin/true")
    copy_into(tmp_path, Path(info.interpreter), info.interpreter)
    for library in info.needed:
        copy_into(
            tmp_path, Path("/lib/x86_64-linux-gnu") / library, f"/lib/x86_64-linux-gnu/{library}"
        )
    assert missing_libraries(tmp_path) == []
