"""Debian packages for an image, without debootstrap and without running a maintainer script:
resolve the dependency closure with apt's own metadata, download the exact versions with
`apt-get download` into a cache (checked against the archive's SHA256), unpack with
`dpkg-deb -x`.

The closure is apt's, minus what an image never runs: a package is resolved from its roots by
Depends and Pre-Depends (the first alternative of each group, as apt would, virtual packages
through their first provider), except that a group naming an excluded package is dropped. The
exclusions are the package manager and the machinery of maintainer scripts (dpkg, debconf,
perl, adduser, init-system helpers): an image is unpacked once, never configured, and never
gains a package afterwards. Whatever an exclusion removes that a program does load is caught
by `elf.missing_libraries` and by the tests that run the images.

Resolving costs apt about a second per image, so a resolution is kept as JSON under the
cache, keyed by the selection and a fingerprint of apt's package lists: after `apt-get update`
brings a new version, the next build resolves, downloads and rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.errors import ImageBuildError
from harness.image.host import require_tool, run, sha256_file

APT_LISTS = Path("/var/lib/apt/lists")
APT_ETC = Path("/etc/apt")


@dataclass(frozen=True, kw_only=True)
class DebianSelection:
    """What an image takes from Debian: the packages it is for, and the dependencies it leaves
    out on purpose (each must be justified where the selection is declared)."""

    roots: tuple[str, ...]
    excluded: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DebPackage:
    name: str
    version: str
    architecture: str
    sha256: str
    size_bytes: int

    @property
    def deb_name(self) -> str:
        """The file name `apt-get download` gives it (the epoch's colon escaped)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.architecture}.deb"


Alternative = tuple[str, tuple[str, ...]]
"""(package or <virtual>, its providers when virtual)."""
DependencyGraph = Mapping[str, tuple[tuple[Alternative, ...], ...]]

_DEP_LINE = re.compile(r"^ (?P<alt>[ |])(?:Pre)?Depends: (?P<name>\S+)$")


def _bare(name: str) -> str:
    """`<perl:any>` -> `<perl>`, `libc6:amd64` -> `libc6`."""
    virtual = name.startswith("<") and name.endswith(">")
    core = name.strip("<>").split(":", 1)[0]
    return f"<{core}>" if virtual else core


def parse_depends(text: str) -> dict[str, tuple[tuple[Alternative, ...], ...]]:
    """`apt-cache depends --recurse` output -> package: its dependency groups, each a tuple of
    alternatives in apt's order."""
    graph: dict[str, list[list[tuple[str, list[str]]]]] = {}
    current: list[list[tuple[str, list[str]]]] | None = None
    continuing = False
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            current = graph.setdefault(_bare(line.strip()), [])
            continuing = False
            continue
        if current is None:
            continue
        match = _DEP_LINE.match(line)
        if match:
            alternative: tuple[str, list[str]] = (_bare(match["name"]), [])
            if continuing and current:
                current[-1].append(alternative)
            else:
                current.append([alternative])
            continuing = match["alt"] == "|"
        elif line.startswith("    ") and current and current[-1]:
            current[-1][-1][1].append(_bare(line.strip()))  # a provider of a virtual package
        # Suggests/Recommends/... are not asked for; other lines are ignored
    return {
        name: tuple(tuple((alt, tuple(providers)) for alt, providers in group) for group in groups)
        for name, groups in graph.items()
    }


def select_packages(graph: DependencyGraph, selection: DebianSelection) -> tuple[str, ...]:
    """The closure of selection.roots over graph, sorted; ImageBuildError when a root is unknown
    or a dependency has no installable alternative."""
    excluded = set(selection.excluded)
    chosen: set[str] = set()
    pending = list(selection.roots)
    while pending:
        name = pending.pop()
        if name in chosen:
            continue
        if name not in graph:
            raise ImageBuildError(f"Debian package {name!r} is unknown to apt (apt-get update?)")
        chosen.add(name)
        for group in graph[name]:
            names = {alt for alt, _ in group} | {p for _, providers in group for p in providers}
            if names & excluded:
                continue
            pick = _first_real(group, graph, excluded)
            if pick is None:
                wanted = " | ".join(alt for alt, _ in group)
                raise ImageBuildError(f"{name} depends on {wanted}: no candidate in apt's lists")
            pending.append(pick)
    return tuple(sorted(chosen))


def _first_real(
    group: tuple[Alternative, ...], graph: DependencyGraph, excluded: set[str]
) -> str | None:
    for alternative, providers in group:
        if not alternative.startswith("<"):
            if alternative in graph:
                return alternative
            continue
        for provider in providers:
            if provider in graph and provider not in excluded:
                return provider
    return None


def parse_show(text: str) -> dict[str, DebPackage]:
    """`apt-cache show --no-all-versions` output -> package: its candidate's facts."""
    packages: dict[str, DebPackage] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" not in fields:
            continue
        try:
            package = DebPackage(
                name=fields["Package"],
                version=fields["Version"],
                architecture=fields["Architecture"],
                sha256=fields["SHA256"],
                size_bytes=int(fields["Size"]),
            )
        except KeyError as exc:
            raise ImageBuildError(f"apt-cache show {fields['Package']}: no {exc} field") from exc
        packages.setdefault(package.name, package)
    return packages


def apt_fingerprint() -> str:
    """Changes whenever `apt-get update` or a sources change could change a resolution."""
    digest = hashlib.sha256()
    for directory in (APT_LISTS, APT_ETC / "sources.list.d", APT_ETC / "preferences.d"):
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir()):
            if entry.is_file():
                st = entry.stat()
                digest.update(f"{entry}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    for file in (APT_ETC / "sources.list", APT_ETC / "preferences"):
        if file.is_file():
            digest.update(file.read_bytes())
    return digest.hexdigest()


def resolve(selection: DebianSelection, cache_dir: Path) -> tuple[DebPackage, ...]:
    """The packages of selection with their candidate versions (cached per apt fingerprint)."""
    key = hashlib.sha256(
        json.dumps([asdict(selection), apt_fingerprint()], sort_keys=True).encode()
    ).hexdigest()[:24]
    cached = cache_dir / "resolved" / f"{key}.json"
    if cached.is_file():
        return tuple(DebPackage(**entry) for entry in json.loads(cached.read_text()))
    apt_cache = require_tool("apt-cache", "apt")
    flags = ["--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks"]
    flags += ["--no-replaces", "--no-enhances"]
    graph = parse_depends(
        run([apt_cache, "depends", "--recurse", *flags, *selection.roots], what="apt-cache depends")
    )
    names = select_packages(graph, selection)
    shown = parse_show(run([apt_cache, "show", "--no-all-versions", *names], what="apt-cache show"))
    missing = [name for name in names if name not in shown]
    if missing:
        raise ImageBuildError(f"apt-cache show knows no candidate of {', '.join(missing)}")
    packages = tuple(shown[name] for name in names)
    cached.parent.mkdir(parents=True, exist_ok=True)
    temporary = cached.with_suffix(".tmp")
    temporary.write_text(json.dumps([asdict(p) for p in packages], indent=1) + "\n")
    os.replace(temporary, cached)
    return packages


def fetch(packages: Sequence[DebPackage], cache_dir: Path) -> list[Path]:
    """The .deb files of packages, downloaded into cache_dir/debs when absent; each checked
    against the SHA256 of apt's lists (a mismatch is deleted and refused)."""
    debs = cache_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    absent = [p for p in packages if not (debs / p.deb_name).is_file()]
    if absent:
        apt_get = require_tool("apt-get", "apt")
        run(
            [apt_get, "download", "-q", *(f"{p.name}={p.version}" for p in absent)],
            what="apt-get download (is the Debian mirror reachable? apt-get update?)",
            cwd=debs,
            timeout_s=900,
        )
    paths = []
    for package in packages:
        path = debs / package.deb_name
        if not path.is_file():
            raise ImageBuildError(f"apt-get download left no {path.name} in {debs}")
        if package in absent and sha256_file(path) != package.sha256:
            path.unlink()
            raise ImageBuildError(f"{path.name}: SHA256 differs from apt's lists; deleted it")
        paths.append(path)
    return paths


def extract(deb: Path, rootfs: Path) -> None:
    """Unpacks a .deb's files (not its maintainer scripts) into rootfs."""
    run(
        [require_tool("dpkg-deb", "dpkg"), "-x", str(deb), str(rootfs)],
        what=f"dpkg-deb -x {deb.name}",
    )


def control(deb: Path) -> str:
    """The package's control stanza (for the image's /var/lib/dpkg/status)."""
    return run([require_tool("dpkg-deb", "dpkg"), "-f", str(deb)], what=f"dpkg-deb -f {deb.name}")


def status_file(stanzas: Sequence[str]) -> str:
    """A dpkg status database listing the unpacked packages as installed, so scanners (trivy,
    grype, syft) see what the image holds."""
    entries = []
    for stanza in stanzas:
        lines = stanza.rstrip("\n").splitlines()
        lines.insert(1, "Status: install ok installed")
        entries.append("\n".join(lines))
    return "\n\n".join(sorted(entries)) + "\n"


def host_architecture() -> str:
    return run([require_tool("dpkg", "dpkg"), "--print-architecture"], what="dpkg").strip()


def package_versions(packages: Sequence[DebPackage]) -> dict[str, str]:
    return {p.name: p.version for p in packages}
