"""Which Debian packages an image gets: the closure of its roots over apt's dependency graph,
minus what maintainer scripts need (never run in an image), virtual packages resolved to a
provider."""

from __future__ import annotations

import pytest

from harness.errors import ImageBuildError
from harness.image.debian import DebianSelection, parse_depends, select_packages

pytestmark = pytest.mark.unit

APT_DEPENDS = """\
redis-server
  Depends: redis-tools
  PreDepends: adduser
redis-tools
  Depends: libc6
 |Depends: libjemalloc2
  Depends: libjemalloc-alt
  Depends: <libssl>
    libssl3
libc6
  Depends: libgcc-s1
libgcc-s1
  Depends: libc6
libjemalloc2
libssl3
adduser
  Depends: perl-base
perl-base
"""


def test_the_closure_follows_dependencies_and_skips_the_excluded() -> None:
    graph = parse_depends(APT_DEPENDS)
    chosen = select_packages(graph, DebianSelection(roots=("redis-server",), excluded=("adduser",)))
    assert chosen == (
        "libc6",
        "libgcc-s1",
        "libjemalloc2",
        "libssl3",
        "redis-server",
        "redis-tools",
    )


def test_a_virtual_dependency_is_resolved_to_its_provider() -> None:
    graph = parse_depends(APT_DEPENDS)
    assert graph["redis-tools"][-1] == (("<libssl>", ("libssl3",)),)


def test_an_unknown_root_is_an_error_naming_it() -> None:
    graph = parse_depends(APT_DEPENDS)
    with pytest.raises(ImageBuildError, match="'valkey-server' is unknown"):
        select_packages(graph, DebianSelection(roots=("valkey-server",), excluded=()))
