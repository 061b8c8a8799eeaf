"""The compiled parts of stormproof: the replay's max-speed lane (replay/lane/), the
simulator's HTTP request head parser (replay/exchange/http11.py) and the accepting path of its
signed requests (replay/exchange/auth.py, rest.py).

Everything else is declared in pyproject.toml; `pip install -e .` (scripts/bootstrap.sh) builds
these extensions in place with the machine's C compiler and Python headers.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "replay.lane._speedups",
            sources=["replay/lane/_speedups.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            libraries=["m"],
        ),
        Extension(
            "replay.exchange._http_head",
            sources=["replay/exchange/_http_head.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        ),
        Extension(
            "replay.exchange._signed",
            sources=["replay/exchange/_signed.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            libraries=["crypto"],  # OpenSSL's SHA-256 (Debian: libssl-dev to build)
        ),
    ]
)
