"""`stormproof image build`: each recipe's inputs gathered, hashed into a cache key, and its
archive written only when no archive has that key.

The key covers everything the archive is made of: the builder's own source (this package), the
image spec (reference, config, owners), the exact Debian packages (name, version, SHA256), and
the recipe's inputs (requirements/image.txt, the project's source tree, the static binaries,
pause.c and the compiler). With nothing changed, a build reads a few files, finds
`<name>-<key>.tar` and the index entry that names it, and is done in well under a second.

Outputs, under the output directory (.tools/images by default, never committed):
`<name>-<key>.tar` (an OCI archive, `ctr images import` reads it) and `images.json`, the index of
what was built (reference, manifest digest, size, archive, key). A superseded archive of the same
image is deleted when its successor is written. One build at a time per directory (a lock).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.errors import ImageBuildError
from harness.image.elf import missing_libraries
from harness.image.oci import write_oci_archive
from harness.image.recipes import RECIPES, Context, Prepared, Recipe

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = PROJECT_ROOT / ".tools" / "images"
INDEX_NAME = "images.json"
KEY_HEX_CHARS = 16


@dataclass(frozen=True, kw_only=True)
class BuiltImage:
    name: str
    ref: str
    digest: str
    """The manifest's digest: what `ctr images ls` and the kubelet show."""
    archive: Path
    archive_bytes: int
    key: str
    cached: bool
    seconds: float


def builder_sha256() -> str:
    """The builder's own version: the hash of this package's source."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cache_key(*, builder: str, name: str, prepared: Prepared) -> str:
    """The hex key of one image: equal keys, equal archives."""
    document = {
        "builder": builder,
        "name": name,
        "spec": asdict(prepared.spec),
        "packages": [asdict(package) for package in prepared.packages],
        "inputs": prepared.inputs,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:KEY_HEX_CHARS]


def read_index(out_dir: Path) -> dict[str, dict[str, object]]:
    path = out_dir / INDEX_NAME
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    images = document.get("images", {}) if isinstance(document, dict) else {}
    return images if isinstance(images, dict) else {}


def write_index(out_dir: Path, images: dict[str, dict[str, object]]) -> None:
    path = out_dir / INDEX_NAME
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"images": images}, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


@contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def select(only: Sequence[str]) -> list[Recipe]:
    known = {recipe.name: recipe for recipe in RECIPES}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ImageBuildError(f"no image named {', '.join(unknown)} (images: {', '.join(known)})")
    return [recipe for recipe in RECIPES if not only or recipe.name in only]


def build_images(
    *,
    only: Sequence[str] = (),
    out_dir: Path = DEFAULT_OUT,
    project_root: Path = PROJECT_ROOT,
    cache_dir: Path | None = None,
    app_tag: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[BuiltImage]:
    """Builds the selected images (all by default) whose archive is missing or stale.
    `cache_dir` (default out_dir) keeps the downloads; `app_tag` tags the stormproof image
    instead of the project's version (a variant built from another tree, e.g. a mutant's)."""
    recipes = select(only)
    out_dir = out_dir.absolute()
    ctx = Context(
        project_root=project_root, cache_dir=(cache_dir or out_dir).absolute(), app_tag=app_tag
    )
    builder = builder_sha256()
    results = []
    with _locked(out_dir):
        remove_work_dirs(out_dir)
        for recipe in recipes:
            started = time.monotonic()
            prepared = recipe.prepare(ctx)
            key = cache_key(builder=builder, name=recipe.name, prepared=prepared)
            results.append(
                _build_one(recipe.name, prepared, key, out_dir, started=started, progress=progress)
            )
    return results


def _build_one(
    name: str,
    prepared: Prepared,
    key: str,
    out_dir: Path,
    *,
    started: float,
    progress: Callable[[str], None],
) -> BuiltImage:
    archive = out_dir / f"{name}-{key}.tar"
    index = read_index(out_dir)
    entry = index.get(name, {})
    if archive.is_file() and entry.get("key") == key and entry.get("ref") == prepared.spec.ref:
        return BuiltImage(
            name=name,
            ref=prepared.spec.ref,
            digest=str(entry["digest"]),
            archive=archive,
            archive_bytes=archive.stat().st_size,
            key=key,
            cached=True,
            seconds=time.monotonic() - started,
        )
    progress(f"{name}: assembling {prepared.spec.ref}")
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".work-{name}-") as scratch:
        root = Path(scratch) / "rootfs"
        root.mkdir()
        prepared.assemble(root, Path(scratch))
        missing = missing_libraries(root)
        if missing:
            raise ImageBuildError(
                f"{name}: {len(missing)} shared libraries missing, e.g. {'; '.join(missing[:3])}"
            )
        progress(f"{name}: writing the OCI archive")
        written = write_oci_archive(root, prepared.spec, archive)
    previous = entry.get("archive")
    if isinstance(previous, str) and previous != archive.name:
        (out_dir / previous).unlink(missing_ok=True)
    index = read_index(out_dir)
    index[name] = {
        "ref": written.ref,
        "digest": written.manifest.digest,
        "config_digest": written.config.digest,
        "layer_digest": written.layer.digest,
        "layer_tar_bytes": written.layer_tar_bytes,
        "archive": archive.name,
        "archive_bytes": written.archive_bytes,
        "key": key,
        "debian_packages": {p.name: p.version for p in prepared.packages},
    }
    write_index(out_dir, index)
    return BuiltImage(
        name=name,
        ref=written.ref,
        digest=written.manifest.digest,
        archive=archive,
        archive_bytes=written.archive_bytes,
        key=key,
        cached=False,
        seconds=time.monotonic() - started,
    )


def remove_work_dirs(out_dir: Path) -> None:
    """Scratch directories a killed build left behind."""
    for path in out_dir.glob(".work-*"):
        shutil.rmtree(path, ignore_errors=True)
