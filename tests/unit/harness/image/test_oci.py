"""An OCI archive from a root filesystem: byte-identical for the same inputs, whatever the
files' times and owners on disk; owners and modes only where the spec says; what containerd
reads (index.json naming the full reference, the manifest, config and layer blobs)."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from harness.errors import ImageBuildError
from harness.image.oci import ImageConfig, ImageSpec, OwnedPath, split_ref, write_oci_archive

pytestmark = pytest.mark.unit

SPEC = ImageSpec(
    ref="stormproof.local/example:1.0",
    config=ImageConfig(user="10001:10001", entrypoint=("/bin/app",), env=("A=1",)),
    owned=(OwnedPath(path="data", uid=10001, gid=10001, mode=0o700),),
)


def make_rootfs(root: Path, *, mtime_s: int) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "data").mkdir()
    app = root / "bin" / "app"
    app.write_text("#!/bin/sh\necho hi\n")
    app.chmod(0o700)
    (root / "etc").mkdir()
    (root / "etc" / "conf").write_text("x = 1\n")
    os.symlink("app", root / "bin" / "alias")
    for path in root.rglob("*"):
        os.utime(path, (mtime_s, mtime_s), follow_symlinks=False)
    return root


def blob(archive: Path, digest: str) -> bytes:
    with tarfile.open(archive) as tar:
        member = tar.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
        assert member is not None
        return member.read()


def test_the_same_rootfs_gives_the_same_bytes_whatever_the_files_times(tmp_path: Path) -> None:
    first = write_oci_archive(make_rootfs(tmp_path / "a", mtime_s=1_000), SPEC, tmp_path / "a.tar")
    second = write_oci_archive(
        make_rootfs(tmp_path / "b", mtime_s=2_000_000), SPEC, tmp_path / "b.tar"
    )
    assert first.manifest.digest == second.manifest.digest
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_a_changed_file_changes_the_digest(tmp_path: Path) -> None:
    first = write_oci_archive(make_rootfs(tmp_path / "a", mtime_s=0), SPEC, tmp_path / "a.tar")
    root = make_rootfs(tmp_path / "b", mtime_s=0)
    (root / "etc" / "conf").write_text("x = 2\n")
    second = write_oci_archive(root, SPEC, tmp_path / "b.tar")
    assert first.layer.digest != second.layer.digest
    assert first.manifest.digest != second.manifest.digest


def test_containerd_finds_the_image_by_its_full_reference(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    written = write_oci_archive(make_rootfs(tmp_path / "root", mtime_s=0), SPEC, archive)
    with tarfile.open(archive) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        assert json.loads(tar.extractfile("oci-layout").read()) == {  # type: ignore[union-attr]
            "imageLayoutVersion": "1.0.0"
        }
    (entry,) = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == SPEC.ref
    assert entry["digest"] == written.manifest.digest
    manifest_bytes = blob(archive, written.manifest.digest)
    assert "sha256:" + hashlib.sha256(manifest_bytes).hexdigest() == written.manifest.digest
    manifest = json.loads(manifest_bytes)
    config = json.loads(blob(archive, manifest["config"]["digest"]))
    assert config["config"]["User"] == "10001:10001"
    assert config["config"]["Entrypoint"] == ["/bin/app"]
    assert config["rootfs"]["diff_ids"] == [written.diff_id]
    layer = blob(archive, manifest["layers"][0]["digest"])
    assert "sha256:" + hashlib.sha256(layer).hexdigest() == manifest["layers"][0]["digest"]


def test_owners_and_modes_are_normalised_except_where_owned(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    written = write_oci_archive(make_rootfs(tmp_path / "root", mtime_s=5), SPEC, archive)
    layer_path = tmp_path / "layer.tar.gz"
    layer_path.write_bytes(blob(archive, written.layer.digest))
    with tarfile.open(layer_path) as layer:
        members = {member.name: member for member in layer.getmembers()}
    names = list(members)
    assert names == sorted(names, key=os.fsencode)
    assert (members["data"].uid, members["data"].mode) == (10001, 0o700)
    assert (members["bin/app"].uid, members["bin/app"].mode) == (0, 0o755)
    assert members["etc/conf"].mode == 0o644
    assert members["bin/alias"].issym() and members["bin/alias"].linkname == "app"
    assert {member.mtime for member in members.values()} == {0}


def test_an_owned_path_missing_from_the_rootfs_is_an_error(tmp_path: Path) -> None:
    root = make_rootfs(tmp_path / "root", mtime_s=0)
    (root / "data").rmdir()
    with pytest.raises(ImageBuildError, match="owned paths absent from the rootfs: data"):
        write_oci_archive(root, SPEC, tmp_path / "image.tar")


@pytest.mark.parametrize("ref", ["stormproof.local/app", "stormproof.local/app:", "a/b:.x"])
def test_a_reference_needs_a_valid_tag(ref: str) -> None:
    with pytest.raises(ImageBuildError, match="tag"):
        split_ref(ref)
