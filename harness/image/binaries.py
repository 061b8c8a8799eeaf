"""The two images that hold one static program each: toxiproxy-server and Kubernetes' pause.

toxiproxy-server is used as found (.tools/bin, then PATH) when it is static and the pinned
version; otherwise (scripts/bootstrap.sh builds it with cgo, so it needs the host's libc) it is
built again the way upstream's release is, `CGO_ENABLED=0 go install -trimpath -ldflags
"-s -w -X ...Version=2.12.0"`, into the image cache. pause is Kubernetes' own pause.c from the
Go module cache (k8s.io/kubernetes, the version deploy/cluster/kubernetes/go.mod pins),
compiled `gcc -Os -static` as its Makefile does.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ImageBuildError
from harness.image.elf import read_dynamic
from harness.image.host import go_tool, require_tool, run, sha256_file

TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2"
TOXIPROXY_VERSION = "2.12.0"
KUBERNETES_VERSION = "v1.34.4"
PAUSE_VERSION = "3.10"
PAUSE_CFLAGS = ("-Os", "-Wall", "-Werror", "-static", "-s", f"-DVERSION={PAUSE_VERSION}")


@dataclass(frozen=True, kw_only=True)
class StaticBinary:
    path: Path
    sha256: str
    origin: str
    """Where it came from, for the image's labels and the build index."""


def is_static_elf(path: Path) -> bool:
    data = path.read_bytes()
    return data[:4] == b"\x7fELF" and read_dynamic(data) is None


def go_module_version(binary: Path) -> str | None:
    """The main module's version recorded in a Go binary (`go version -m`), None when unknown."""
    try:
        out = run([go_tool(), "version", "-m", str(binary)], what="go version -m")
    except Exception:
        return None
    match = re.search(rf"^\s*mod\s+{re.escape(TOXIPROXY_MODULE)}\s+v(\S+)", out, re.MULTILINE)
    return match.group(1) if match else None


def toxiproxy_candidates(project_root: Path) -> list[Path]:
    found = [project_root / ".tools" / "bin" / "toxiproxy-server"]
    on_path = shutil.which("toxiproxy-server")
    if on_path:
        found.append(Path(on_path))
    return [path for path in found if path.is_file()]


def static_toxiproxy(project_root: Path, cache_dir: Path) -> StaticBinary:
    """A static toxiproxy-server of the pinned version: one already built here, one found, or
    one built now with Go."""
    built = cache_dir / "toxiproxy" / f"v{TOXIPROXY_VERSION}" / "toxiproxy-server"
    if built.is_file():
        return StaticBinary(
            path=built, sha256=sha256_file(built), origin=f"go install v{TOXIPROXY_VERSION}"
        )
    for candidate in toxiproxy_candidates(project_root):
        if is_static_elf(candidate) and go_module_version(candidate) == TOXIPROXY_VERSION:
            return StaticBinary(
                path=candidate, sha256=sha256_file(candidate), origin=str(candidate)
            )
    go = go_tool()
    gobin = built.parent / "gobin"
    shutil.rmtree(gobin, ignore_errors=True)
    gobin.mkdir(parents=True)
    ldflags = f"-s -w -X {TOXIPROXY_MODULE}.Version={TOXIPROXY_VERSION}"
    run(
        [
            go,
            "install",
            "-trimpath",
            f"-ldflags={ldflags}",
            f"{TOXIPROXY_MODULE}/cmd/server@v{TOXIPROXY_VERSION}",
        ],
        what="go install of a static toxiproxy-server (is the Go module proxy reachable?)",
        env={**os.environ, "CGO_ENABLED": "0", "GOBIN": str(gobin), "GOFLAGS": "-buildvcs=false"},
        timeout_s=1800,
    )
    server = gobin / "server"
    if not is_static_elf(server):
        raise ImageBuildError(f"{server} is not a static executable after a CGO_ENABLED=0 build")
    os.replace(server, built)
    shutil.rmtree(gobin, ignore_errors=True)
    return StaticBinary(
        path=built, sha256=sha256_file(built), origin=f"go install v{TOXIPROXY_VERSION}"
    )


def pause_source(project_root: Path) -> Path:
    """pause.c of the pinned Kubernetes module, downloaded into the Go module cache if absent."""
    go = go_tool()
    modcache = Path(run([go, "env", "GOMODCACHE"], what="go env GOMODCACHE").strip())
    source = modcache / f"k8s.io/kubernetes@{KUBERNETES_VERSION}/build/pause/linux/pause.c"
    if not source.is_file():
        run(
            [go, "mod", "download", "k8s.io/kubernetes"],
            what="go mod download k8s.io/kubernetes (is the Go module proxy reachable?)",
            cwd=project_root / "deploy" / "cluster" / "kubernetes",
            timeout_s=1800,
        )
    if not source.is_file():
        raise ImageBuildError(f"{source} is still absent after go mod download")
    return source


def compiler_identity() -> str:
    """The compiler's version line (part of the pause image's cache key)."""
    gcc = require_tool("gcc", "gcc")
    return run([gcc, "--version"], what="gcc --version").splitlines()[0]


def compile_pause(source: Path, out: Path) -> Path:
    gcc = require_tool("gcc", "gcc")
    out.parent.mkdir(parents=True, exist_ok=True)
    run(
        [gcc, *PAUSE_CFLAGS, "-o", str(out), str(source)],
        what="gcc -static pause.c (a static link needs libc6-dev)",
    )
    if not is_static_elf(out):
        raise ImageBuildError(f"{out} is not a static executable")
    return out
