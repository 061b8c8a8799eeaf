"""Assembling a root filesystem directory: the skeleton every image has, Debian packages
unpacked into it, what an image never reads pruned from it, its users, files and links.

The skeleton is what a container runtime and a read-only root expect: /tmp (1777, where an
emptyDir is mounted), empty /dev, /proc, /sys and /run mount points, /etc/passwd and /etc/group
naming the image's one non-root user (no shell: nothing in these images needs a login), and an
/etc/nsswitch.conf that looks in /etc/hosts before DNS, as a Debian system does.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ImageBuildError
from harness.image import debian

NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
MOUNT_POINTS = ("dev", "proc", "sys", "run")
DEBIAN_PRUNED = (
    "usr/share/man",
    "usr/share/info",
    "usr/share/lintian",
    "usr/share/linda",
    "usr/share/locale",
    "usr/share/bug",
    "usr/share/menu",
    "usr/share/gdb",
    "etc/init.d",
    "etc/systemd",
    "lib/systemd/system",
    "etc/logrotate.d",
    "etc/cron.daily",
)
"""Manuals, translations, bug-report helpers, service-manager units: nothing a container runs.
/usr/share/doc keeps each package's copyright file (the licences travel with the binaries)."""


@dataclass(frozen=True, kw_only=True)
class User:
    name: str
    uid: int
    gid: int
    home: str = "/nonexistent"


def skeleton(rootfs: Path, user: User | None) -> None:
    """The directories and /etc files every image has."""
    for name in MOUNT_POINTS:
        make_dir(rootfs, name, 0o755)
    make_dir(rootfs, "tmp", 0o1777)
    make_dir(rootfs, "etc", 0o755)
    write_file(rootfs, "etc/nsswitch.conf", NSSWITCH)
    users = [User(name="root", uid=0, gid=0, home="/root")]
    if user is not None:
        users.append(user)
    write_file(rootfs, "etc/passwd", passwd(users))
    write_file(rootfs, "etc/group", group(users))


def passwd(users: Sequence[User]) -> str:
    return "".join(
        f"{u.name}:x:{u.uid}:{u.gid}:{u.name}:{u.home}:/usr/sbin/nologin\n" for u in users
    )


def group(users: Sequence[User]) -> str:
    return "".join(f"{u.name}:x:{u.gid}:\n" for u in users)


def make_dir(rootfs: Path, path: str, mode: int) -> Path:
    target = rootfs / path.strip("/")
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(mode)
    return target


def write_file(rootfs: Path, path: str, content: str | bytes, mode: int = 0o644) -> Path:
    target = rootfs / path.strip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink():
        target.unlink()  # never write through a link into what it points at
    if isinstance(content, str):
        target.write_text(content)
    else:
        target.write_bytes(content)
    target.chmod(mode)
    return target


def copy_file(rootfs: Path, source: Path, path: str, mode: int = 0o755) -> Path:
    if not source.is_file():
        raise ImageBuildError(f"{source} is not a file")
    return write_file(rootfs, path, source.read_bytes(), mode)


def copy_tree(rootfs: Path, source: Path, path: str) -> None:
    """The regular files under source (caches left out) to path, read-only for everyone but
    root: data the image reads, never writes."""
    if not source.is_dir():
        raise ImageBuildError(f"{source} is not a folder")
    for item in sorted(source.rglob("*")):
        if item.is_file() and "__pycache__" not in item.parts:
            relative = item.relative_to(source).as_posix()
            write_file(rootfs, f"{path.rstrip('/')}/{relative}", item.read_bytes(), 0o644)


def symlink(rootfs: Path, path: str, target: str) -> None:
    link = rootfs / path.strip("/")
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def remove(rootfs: Path, paths: Sequence[str]) -> None:
    """Deletes each path (glob patterns allowed) under rootfs; absent ones are fine."""
    for pattern in paths:
        for target in sorted(rootfs.glob(pattern.strip("/")), reverse=True):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()


def prune_docs(rootfs: Path) -> None:
    """/usr/share/doc down to the copyright files."""
    docs = rootfs / "usr/share/doc"
    if not docs.is_dir():
        return
    for path in sorted(docs.rglob("*"), reverse=True):
        if path.is_symlink() or path.is_file():
            if path.name != "copyright":
                path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def install_debs(rootfs: Path, debs: Sequence[Path]) -> None:
    """Unpacks the packages, records them in /var/lib/dpkg/status, prunes what no container
    reads."""
    stanzas = []
    for deb in debs:
        debian.extract(deb, rootfs)
        stanzas.append(debian.control(deb))
    write_file(rootfs, "var/lib/dpkg/status", debian.status_file(stanzas))
    remove(rootfs, DEBIAN_PRUNED)
    prune_docs(rootfs)


def tree_bytes(rootfs: Path) -> int:
    """Bytes of the regular files under rootfs (what the layer will carry)."""
    total = 0
    for directory, _, files in os.walk(rootfs):
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total
