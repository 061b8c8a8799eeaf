"""The lane's compiled module, `replay.lane._speedups`, when it is built.

`speedups` is None in a checkout where `pip install -e .` did not build it: the replay then runs
the Python path only (and says so once at startup), and the feed frames in Python.
"""

from __future__ import annotations

from types import ModuleType

speedups: ModuleType | None
try:
    from replay.lane import _speedups as speedups
except ImportError:  # pragma: no cover - the build step installs it (scripts/bootstrap.sh)
    speedups = None

AVAILABLE = speedups is not None
