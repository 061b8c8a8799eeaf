"""The images every node needs before any workload: the pod sandbox (pause)."""

from __future__ import annotations

import os
from pathlib import Path


def node_images() -> list[Path]:
    # TODO(integration): built by harness.image; until then an archive named by the env
    override = os.environ.get("STORMPROOF_PAUSE_IMAGE")
    return [Path(override)] if override else []
