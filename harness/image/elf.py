"""Does every program and library of a rootfs find the shared libraries it needs?

A rootfs assembled from Debian packages with some dependencies left out on purpose (the
maintainer-script machinery, a JIT compiler) would fail at run time, in the cluster, with
`error while loading shared libraries`. This check fails the build instead: it reads each ELF
file's DT_NEEDED entries, its RPATH/RUNPATH ($ORIGIN expanded) and PT_INTERP, and looks for
each library where the dynamic loader would without an ld.so.cache (none is generated: no
ldconfig runs), following symlinks inside the rootfs.

Pure reading of files: a 64-bit little-endian ELF reader of a few dozen lines, no binutils.
"""

from __future__ import annotations

import posixpath
import struct
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ImageBuildError

ELF_MAGIC = b"\x7fELF"
DEFAULT_LIBRARY_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
)
"""Debian's amd64 glibc searches these when there is no ld.so.cache."""

_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_DT_NULL, _DT_NEEDED, _DT_STRTAB, _DT_RPATH, _DT_RUNPATH = 0, 1, 5, 15, 29
_MAX_SYMLINKS = 40


@dataclass(frozen=True, kw_only=True)
class DynamicInfo:
    needed: tuple[str, ...]
    search_paths: tuple[str, ...]
    """RPATH then RUNPATH entries, unexpanded."""
    interpreter: str


def read_dynamic(data: bytes) -> DynamicInfo | None:
    """The dynamic linking facts of an ELF64 little-endian file's bytes; None for anything else
    (a script, a static binary, a 32-bit or big-endian file)."""
    if len(data) < 64 or data[:4] != ELF_MAGIC or data[4] != 2 or data[5] != 1:
        return None
    phoff = struct.unpack_from("<Q", data, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    loads: list[tuple[int, int, int]] = []
    dynamic: tuple[int, int] | None = None
    interpreter = ""
    for index in range(phnum):
        start = phoff + index * phentsize
        if start + 56 > len(data):
            return None
        p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from(
            "<IIQQQQQQ", data, start
        )
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
        elif p_type == _PT_INTERP:
            interpreter = data[p_offset : p_offset + p_filesz].split(b"\0", 1)[0].decode()
    if dynamic is None:
        return None
    entries: list[tuple[int, int]] = []
    offset, size = dynamic
    for start in range(offset, min(offset + size, len(data) - 15), 16):
        tag, value = struct.unpack_from("<qQ", data, start)
        if tag == _DT_NULL:
            break
        entries.append((tag, value))
    strtab = next((value for tag, value in entries if tag == _DT_STRTAB), None)
    if strtab is None:
        return None
    strtab_offset = _file_offset(strtab, loads)

    def string(at: int) -> str:
        begin = strtab_offset + at
        return data[begin : data.index(b"\0", begin)].decode()

    needed = tuple(string(value) for tag, value in entries if tag == _DT_NEEDED)
    paths: list[str] = []
    for wanted in (_DT_RPATH, _DT_RUNPATH):
        for tag, value in entries:
            if tag == wanted:
                paths.extend(part for part in string(value).split(":") if part)
    return DynamicInfo(needed=needed, search_paths=tuple(paths), interpreter=interpreter)


def _file_offset(vaddr: int, loads: list[tuple[int, int, int]]) -> int:
    for p_vaddr, p_offset, p_filesz in loads:
        if p_vaddr <= vaddr < p_vaddr + p_filesz:
            return vaddr - p_vaddr + p_offset
    raise ImageBuildError(f"ELF string table at {vaddr:#x} is in no loaded segment")


def resolve_in_root(rootfs: Path, image_path: str) -> Path | None:
    """The file that `image_path` names inside the image (symlinks followed, absolute ones
    relative to the rootfs); None when it does not exist."""
    parts = [part for part in image_path.split("/") if part]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = rootfs.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > _MAX_SYMLINKS:
                return None
            target = candidate.readlink().as_posix()
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        if not candidate.exists():
            return None
        resolved.append(part)
    return rootfs.joinpath(*resolved)


def missing_libraries(rootfs: Path) -> list[str]:
    """`/path/in/image: libfoo.so.1 not found` for each unmet DT_NEEDED or PT_INTERP of every ELF
    file under rootfs; empty when every program would load."""
    problems: list[str] = []
    for path in sorted(rootfs.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        with path.open("rb") as file:
            if file.read(4) != ELF_MAGIC:
                continue
        info = read_dynamic(path.read_bytes())
        if info is None:
            continue
        image_path = "/" + path.relative_to(rootfs).as_posix()
        origin = posixpath.dirname(image_path)
        if info.interpreter and resolve_in_root(rootfs, info.interpreter) is None:
            problems.append(f"{image_path}: interpreter {info.interpreter} not found")
        dirs = [
            entry.replace("$ORIGIN", origin).replace("${ORIGIN}", origin)
            for entry in info.search_paths
        ]
        dirs.extend(DEFAULT_LIBRARY_DIRS)
        for library in info.needed:
            if "/" in library:
                found = resolve_in_root(rootfs, library) is not None
            else:
                found = any(
                    resolve_in_root(rootfs, posixpath.join(directory, library)) is not None
                    for directory in dirs
                )
            if not found:
                problems.append(f"{image_path}: {library} not found")
    return problems
