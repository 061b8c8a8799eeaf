"""The image's runtime dependencies are the lock's: each pinned exactly as in
requirements/lock.txt, and none of the harness-only or dev tools."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[4]
IMAGE_ONLY = {"async-timeout"}
"""Needed by the image's interpreter (Debian's Python 3.11.2), not by the lock's."""
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return found


def test_every_image_requirement_is_pinned_as_in_the_lock() -> None:
    image, lock = pins(ROOT / "requirements/image.txt"), pins(ROOT / "requirements/lock.txt")
    assert image, "requirements/image.txt pins nothing"
    assert {name: (version, lock.get(name)) for name, version in image.items()
            if lock.get(name) != version and name not in IMAGE_ONLY} == {}  # fmt: skip


def test_an_image_only_pin_is_really_absent_from_the_lock() -> None:
    assert set(pins(ROOT / "requirements/image.txt")) >= IMAGE_ONLY
    assert not IMAGE_ONLY & set(pins(ROOT / "requirements/lock.txt"))


def test_the_harness_and_dev_tools_stay_out_of_the_image() -> None:
    image = pins(ROOT / "requirements/image.txt")
    assert not {"locust", "chaostoolkit", "pytest", "mypy", "ruff", "pyarrow"} & set(image)
