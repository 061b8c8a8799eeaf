"""An OCI image-layout archive from a root filesystem directory, written without a registry,
a daemon or a container builder: what `ctr images import` (and `podman load`, `skopeo copy
oci-archive:`) reads.

The archive holds one image of one layer: `oci-layout`, `index.json` (one manifest, its
platform, and `org.opencontainers.image.ref.name` set to the full reference so containerd
imports it under that name), and under `blobs/sha256/` the manifest, the config (Entrypoint,
Cmd, User, Env, WorkingDir, Labels, ExposedPorts) and the layer.

It is deterministic: the same rootfs and spec give the same bytes. Entries are sorted, every
mtime is `mtime_s`, owners are 0:0 unless an `OwnedPath` says otherwise, user and group names
are empty, modes are normalised (0755 for directories and executables, 0644 for the rest, the
sticky bit kept), the gzip header carries no name and no time, and the JSON documents are
canonical (sorted keys, no spaces). Two builds of the same inputs are byte-identical, so the
digest names the content.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.errors import ImageBuildError

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
EPOCH_ISO = "1970-01-01T00:00:00Z"
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, kw_only=True)
class ImageConfig:
    """The runtime defaults of an image: what `docker inspect` shows under Config."""

    user: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    """`NAME=value`, in order."""
    working_dir: str = "/"
    labels: tuple[tuple[str, str], ...] = ()
    exposed_ports: tuple[str, ...] = ()
    """`6379/tcp`, documentation only (Kubernetes ignores it)."""
    stop_signal: str = ""


@dataclass(frozen=True, kw_only=True)
class OwnedPath:
    """One entry of the layer (a path inside the image) given an owner and a mode other than
    the defaults: a data directory the image's non-root user must write to."""

    path: str
    uid: int
    gid: int
    mode: int


@dataclass(frozen=True, kw_only=True)
class ImageSpec:
    ref: str
    """The full reference, `stormproof.local/redis:7.0.15`."""
    config: ImageConfig
    owned: tuple[OwnedPath, ...] = ()
    mtime_s: int = 0
    gzip_level: int = 6
    """0 writes an uncompressed layer."""
    architecture: str = "amd64"


@dataclass(frozen=True, kw_only=True)
class Descriptor:
    media_type: str
    digest: str
    size_bytes: int


@dataclass(frozen=True, kw_only=True)
class WrittenImage:
    ref: str
    manifest: Descriptor
    config: Descriptor
    layer: Descriptor
    diff_id: str
    """sha256 of the uncompressed layer (the config's rootfs.diff_ids)."""
    layer_tar_bytes: int
    archive_bytes: int
    entries: int


def canonical_json(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def split_ref(ref: str) -> tuple[str, str]:
    """(repository, tag) of `host/path:tag`; ImageBuildError without a valid tag."""
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag or not tag:
        raise ImageBuildError(f"image reference {ref!r} has no tag (want host/name:tag)")
    if len(tag) > 128 or not all(c.isalnum() or c in "_.-" for c in tag) or tag[0] in ".-":
        raise ImageBuildError(f"image tag {tag!r} of {ref!r} is not a valid tag ([A-Za-z0-9_.-])")
    return repository, tag


def config_document(config: ImageConfig, *, diff_id: str, architecture: str) -> dict[str, object]:
    """The image config (OCI image-spec config.md), every optional key left out when empty."""
    runtime: dict[str, object] = {"User": config.user, "WorkingDir": config.working_dir}
    if config.entrypoint:
        runtime["Entrypoint"] = list(config.entrypoint)
    if config.cmd:
        runtime["Cmd"] = list(config.cmd)
    if config.env:
        runtime["Env"] = list(config.env)
    if config.labels:
        runtime["Labels"] = dict(config.labels)
    if config.exposed_ports:
        runtime["ExposedPorts"] = {port: {} for port in config.exposed_ports}
    if config.stop_signal:
        runtime["StopSignal"] = config.stop_signal
    return {
        "architecture": architecture,
        "os": "linux",
        "created": EPOCH_ISO,
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": EPOCH_ISO, "created_by": "stormproof image build (harness.image)"}],
    }


def normalised_mode(st_mode: int) -> int:
    if stat.S_ISDIR(st_mode):
        return 0o755 | (st_mode & stat.S_ISVTX)
    if stat.S_ISLNK(st_mode):
        return 0o777
    return 0o755 if st_mode & 0o111 else 0o644


def walk_sorted(rootfs: Path) -> Iterator[tuple[str, Path]]:
    """(name inside the image, path on disk) of every entry under rootfs, parents first, siblings
    in byte order of their names; symlinks are entries, never followed."""

    def visit(directory: Path, prefix: str) -> Iterator[tuple[str, Path]]:
        for name in sorted(os.listdir(directory), key=os.fsencode):
            path = directory / name
            arcname = f"{prefix}{name}"
            yield arcname, path
            if path.is_dir() and not path.is_symlink():
                yield from visit(path, arcname + "/")

    yield from visit(rootfs, "")


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to `sink`."""

    def __init__(self, sink: IO[bytes] | gzip.GzipFile | _HashingWriter) -> None:
        self.sink = sink
        self.sha256 = hashlib.sha256()
        self.size_bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data)
        self.sha256.update(view)
        self.size_bytes += len(view)
        self.sink.write(view)
        return len(view)

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha256.hexdigest()


def _tarinfo(
    arcname: str, path: Path, spec: ImageSpec, owned: dict[str, OwnedPath]
) -> tarfile.TarInfo:
    st = path.lstat()
    info = tarfile.TarInfo(arcname)
    info.mtime = spec.mtime_s
    info.uname = info.gname = ""
    override = owned.get(arcname)
    info.uid = override.uid if override else 0
    info.gid = override.gid if override else 0
    info.mode = override.mode if override else normalised_mode(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
    elif stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
    else:
        raise ImageBuildError(
            f"{path}: not a file, directory or symlink (devices have no place in a layer)"
        )
    return info


def write_layer(rootfs: Path, spec: ImageSpec, sink: IO[bytes]) -> tuple[str, str, int, int, int]:
    """The layer tar of rootfs into sink (gzip unless `gzip_level` is 0): (digest, diff_id, size
    written, uncompressed size, entries). Hard links are written as copies: two files, one
    content, the same bytes whatever the extraction did."""
    owned = {entry.path.strip("/"): entry for entry in spec.owned}
    outer = _HashingWriter(sink)
    compressor: gzip.GzipFile | None = None
    if spec.gzip_level:
        compressor = gzip.GzipFile(
            filename="", mode="wb", fileobj=outer, compresslevel=spec.gzip_level, mtime=0
        )
    inner = _HashingWriter(compressor if compressor is not None else outer)
    entries = 0
    seen: set[str] = set()
    with tarfile.open(fileobj=inner, mode="w|", format=tarfile.PAX_FORMAT) as layer:
        for arcname, path in walk_sorted(rootfs):
            info = _tarinfo(arcname, path, spec, owned)
            seen.add(arcname)
            entries += 1
            if info.isreg():
                with path.open("rb") as content:
                    layer.addfile(info, content)
            else:
                layer.addfile(info)
    if compressor is not None:
        compressor.close()
    missing = sorted(set(owned) - seen)
    if missing:
        raise ImageBuildError(f"owned paths absent from the rootfs: {', '.join(missing)}")
    return outer.digest, inner.digest, outer.size_bytes, inner.size_bytes, entries


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    archive.addfile(info, io.BytesIO(data))


def write_oci_archive(rootfs: Path, spec: ImageSpec, out: Path) -> WrittenImage:
    """Writes the archive to `out` (atomically: a temporary file beside it, then a rename)."""
    if not rootfs.is_dir():
        raise ImageBuildError(f"rootfs {rootfs} is not a directory")
    split_ref(spec.ref)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".oci-") as scratch:
        layer_path = Path(scratch) / "layer"
        with layer_path.open("wb") as sink:
            digest, diff_id, size, tar_size, entries = write_layer(rootfs, spec, sink)
        layer = Descriptor(
            media_type=MEDIA_LAYER_GZIP if spec.gzip_level else MEDIA_LAYER_TAR,
            digest=digest,
            size_bytes=size,
        )
        config_bytes = canonical_json(
            config_document(spec.config, diff_id=diff_id, architecture=spec.architecture)
        )
        config = Descriptor(
            media_type=MEDIA_CONFIG,
            digest=sha256_digest(config_bytes),
            size_bytes=len(config_bytes),
        )
        manifest_bytes = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": _descriptor_json(config),
                "layers": [_descriptor_json(layer)],
            }
        )
        manifest = Descriptor(
            media_type=MEDIA_MANIFEST,
            digest=sha256_digest(manifest_bytes),
            size_bytes=len(manifest_bytes),
        )
        index_bytes = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_INDEX,
                "manifests": [
                    {
                        **_descriptor_json(manifest),
                        "platform": {"architecture": spec.architecture, "os": "linux"},
                        "annotations": {REF_NAME: spec.ref},
                    }
                ],
            }
        )
        partial = Path(scratch) / "archive.tar"
        with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as archive:
            _add_bytes(archive, "oci-layout", LAYOUT)
            _add_bytes(archive, "index.json", index_bytes)
            _add_bytes(archive, _blob_name(manifest.digest), manifest_bytes)
            _add_bytes(archive, _blob_name(config.digest), config_bytes)
            info = tarfile.TarInfo(_blob_name(layer.digest))
            info.size = layer.size_bytes
            info.mode = 0o644
            info.mtime = 0
            with layer_path.open("rb") as content:
                archive.addfile(info, content)
        os.replace(partial, out)
    return WrittenImage(
        ref=spec.ref,
        manifest=manifest,
        config=config,
        layer=layer,
        diff_id=diff_id,
        layer_tar_bytes=tar_size,
        archive_bytes=out.stat().st_size,
        entries=entries,
    )


def _descriptor_json(descriptor: Descriptor) -> dict[str, object]:
    return {
        "mediaType": descriptor.media_type,
        "digest": descriptor.digest,
        "size": descriptor.size_bytes,
    }


def _blob_name(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"
