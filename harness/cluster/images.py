"""The images a node holds: the pod sandbox (pause) always, the deployment's on request. Each is
built by harness.image (cached: a hash when nothing changed) and imported into the node's
containerd, so no registry is ever asked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from harness.image.build import DEFAULT_OUT, build_images

NODE_IMAGES = ("pause",)
DEPLOYMENT_IMAGES = ("stormproof", "gameday", "redis", "postgres", "toxiproxy")


def image_archives(
    names: Sequence[str],
    *,
    out_dir: Path = DEFAULT_OUT,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Path]:
    """The archives of `names`, built where missing or stale."""
    return [image.archive for image in build_images(only=names, out_dir=out_dir, progress=progress)]
