"""The compiled part of stormproof: the replay's max-speed lane (replay/fastlane.py).

Everything else is declared in pyproject.toml; `pip install -e .` (scripts/bootstrap.sh) builds
this extension in place with the machine's C compiler and Python headers.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "replay._speedups",
            sources=["replay/_speedups.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            libraries=["m"],
        )
    ]
)
