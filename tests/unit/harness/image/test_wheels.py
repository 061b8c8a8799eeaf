"""A rebuild asks no index: the pins whose wheel is already downloaded are not missing, names
compared as wheel file names spell them (PEP 427: `_` for `-` and `.`, any case)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.image.wheels import missing_wheels

pytestmark = pytest.mark.unit


def test_only_pins_without_a_wheel_of_that_name_and_version_are_missing(tmp_path: Path) -> None:
    requirements = tmp_path / "r.txt"
    requirements.write_text(
        "# a comment\nchaostoolkit-lib==1.44.0\nJinja2==3.1.6\nzope.interface==7.0\nnumpy==2.4.6\n"
    )
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in (
        "chaostoolkit_lib-1.44.0-py3-none-any.whl",
        "jinja2-3.1.6-py3-none-any.whl",
        "zope_interface-7.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "numpy-2.4.5-cp311-cp311-manylinux_2_28_x86_64.whl",  # another version
    ):
        (wheels / name).write_bytes(b"")
    assert missing_wheels(requirements, wheels) == ["numpy==2.4.6"]
    (wheels / "numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    assert missing_wheels(requirements, wheels) == []
