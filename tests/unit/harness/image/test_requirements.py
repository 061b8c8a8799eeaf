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


def test_every_game_day_image_requirement_is_pinned_as_in_the_lock() -> None:
    gameday = pins(ROOT / "requirements/gameday-image.txt")
    lock = pins(ROOT / "requirements/lock.txt")
    assert gameday, "requirements/gameday-image.txt pins nothing"
    assert {n: (v, lock.get(n)) for n, v in gameday.items() if lock.get(n) != v} == {}


def test_the_game_day_image_adds_chaos_toolkit_and_no_load_generator_or_dev_tool() -> None:
    image = pins(ROOT / "requirements/image.txt")
    gameday = pins(ROOT / "requirements/gameday-image.txt")
    assert {"chaostoolkit", "chaostoolkit-lib", "chaostoolkit-kubernetes"} <= set(gameday)
    assert not set(image) & set(gameday), "each pin in one of the two files"
    assert not {"locust", "pytest", "mypy", "ruff", "pyarrow"} & set(gameday)


def test_the_game_day_image_holds_every_dependency_its_packages_declare() -> None:
    """The closure of what the game day runs (Chaos Toolkit, chaosk8s, the report's jinja2
    and matplotlib), by the installed distributions' own metadata, under the image's Python
    (Debian's 3.11.2): nothing it imports is missing from the two files."""
    from importlib import metadata

    from packaging.requirements import Requirement

    environment = {"python_version": "3.11", "python_full_version": "3.11.2", "extra": ""}
    have = set(pins(ROOT / "requirements/image.txt")) | set(
        pins(ROOT / "requirements/gameday-image.txt")
    )
    missing = set()
    todo = ["chaostoolkit", "chaostoolkit-kubernetes", "jinja2", "matplotlib", "toxiproxy-python"]
    seen: set[str] = set()
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        if name not in have:
            missing.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # not installed here (a marker for another Python): pinned above or not
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                todo.append(requirement.name)
    assert missing == set()
