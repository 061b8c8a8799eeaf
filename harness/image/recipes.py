"""The six images stormproof runs on Kubernetes, each a recipe: what it is made of (the inputs
its cache key covers, gathered cheaply) and how its rootfs is assembled (done only when that key
has no archive yet).

- stormproof: Debian's python3.11 with the pinned wheels of requirements/image.txt and the
  project; runs every engine service and `replay serve` (deploy/image/Containerfile is the same
  image for those with a container builder).
- gameday: the same, plus the harness, requirements/gameday-image.txt (Chaos Toolkit and
  chaostoolkit-kubernetes) and the experiments and game days: the CronJob's in-cluster game day.
- redis: Debian's redis-server.
- postgres: Debian's PostgreSQL 15 server (the execution standby pair's shared journal), with an
  entrypoint that runs initdb on an empty data directory, then postgres.
- toxiproxy: the static toxiproxy-server.
- pause: Kubernetes' pod sandbox.

Every image runs as a non-root user (the pause image as 65535, as upstream's) and writes
nowhere but its data directory and /tmp, so a pod can mount its root read-only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ImageBuildError
from harness.image import binaries, debian, rootfs, wheels
from harness.image.debian import DebianSelection, DebPackage
from harness.image.host import sha256_file
from harness.image.oci import ImageConfig, ImageSpec, OwnedPath
from harness.image.rootfs import User

REGISTRY = "stormproof.local"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MAINTAINER_MACHINERY = (
    "dpkg",
    "debconf",
    "cdebconf",
    "perl-base",
    "install-info",
    "adduser",
    "init-system-helpers",
    "lsb-base",
    "debianutils",
    "mawk",
    "ucf",
)
"""Run by maintainer scripts and service managers, which never run in these images."""

APP_USER = User(name="stormproof", uid=10001, gid=10001)
REDIS_USER = User(name="redis", uid=10002, gid=10002)
# 10001 as the app: initdb refuses a uid without a passwd entry, and the manifests run every
# stormproof pod as 10001 (the hostPath volumes of the test cluster are writable by it)
POSTGRES_USER = User(name="postgres", uid=10001, gid=10001)
TOXIPROXY_USER = User(name="toxiproxy", uid=10004, gid=10004)
PAUSE_UID = 65535

APP_SITE_PACKAGES = "/opt/stormproof/site-packages"
APP_SELECTION = DebianSelection(
    # libstdc++6: frozenlist's compiled extension (an aiohttp dependency) links it
    roots=("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6", "base-files"),
    excluded=MAINTAINER_MACHINERY,
)
REDIS_SELECTION = DebianSelection(
    roots=("redis-server", "base-files"), excluded=MAINTAINER_MACHINERY
)
POSTGRES_MAJOR = "15"
POSTGRES_SELECTION = DebianSelection(
    roots=(f"postgresql-{POSTGRES_MAJOR}", "dash", "tzdata", "base-files"),
    excluded=(
        *MAINTAINER_MACHINERY,
        "postgresql-common",  # Debian's cluster manager (perl): the entrypoint runs initdb itself
        f"postgresql-client-{POSTGRES_MAJOR}",  # psql and friends: the server needs none
        "locales",  # the cluster's locale is C (initdb --no-locale), built into glibc
        "locales-all",
        "ssl-cert",  # a snakeoil certificate made by a maintainer script
        "libllvm14",  # the JIT: jit=off and llvmjit.so removed, saves about 100 MB
    ),
)
POSTGRES_PRUNED = (
    f"usr/lib/postgresql/{POSTGRES_MAJOR}/lib/bitcode",
    f"usr/lib/postgresql/{POSTGRES_MAJOR}/lib/llvmjit*",
)


@dataclass(frozen=True, kw_only=True)
class Context:
    project_root: Path
    cache_dir: Path
    """Downloads and built binaries, kept between builds (.tools/images)."""
    app_tag: str | None = None
    """The stormproof image's tag instead of the project's version (a variant: a mutant)."""


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """One image's inputs, known before anything is assembled."""

    spec: ImageSpec
    inputs: dict[str, object]
    """JSON-able facts the cache key covers beyond the spec and the Debian packages."""
    packages: tuple[DebPackage, ...]
    assemble: Callable[[Path, Path], None]
    """(rootfs, scratch directory) -> fills rootfs."""


@dataclass(frozen=True, kw_only=True)
class Recipe:
    name: str
    prepare: Callable[[Context], Prepared]


def upstream_version(debian_version: str) -> str:
    """`5:7.0.15-1~deb12u10` -> `7.0.15` (a valid image tag)."""
    without_epoch = debian_version.split(":", 1)[-1]
    return without_epoch.rsplit("-", 1)[0] if "-" in without_epoch else without_epoch


def tree_sha256(root: Path, directories: tuple[str, ...], files: tuple[str, ...]) -> str:
    """One hash of the named files and of every source file under the directories (names and
    contents; caches, compiled extensions and bytecode left out)."""
    digest = hashlib.sha256()
    paths = [root / name for name in files]
    for directory in directories:
        paths.extend(
            path
            for path in (root / directory).rglob("*")
            if path.is_file()
            and "__pycache__" not in path.parts
            and path.suffix not in {".so", ".pyc"}
        )
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _version_of(packages: tuple[DebPackage, ...], name: str) -> str:
    for package in packages:
        if package.name == name:
            return package.version
    raise ImageBuildError(f"{name} is not among the resolved packages")


def _debian_rootfs(root: Path, ctx: Context, packages: tuple[DebPackage, ...], user: User) -> None:
    rootfs.install_debs(root, debian.fetch(packages, ctx.cache_dir))
    rootfs.skeleton(root, user)


def _labels(
    title: str, version: str, description: str, **extra: str
) -> tuple[tuple[str, str], ...]:
    labels = {
        "org.opencontainers.image.title": title,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.description": description,
        "org.opencontainers.image.vendor": "stormproof",
        **{f"io.stormproof.{key.replace('_', '-')}": value for key, value in extra.items()},
    }
    return tuple(sorted(labels.items()))


# -- stormproof (the app) and gameday (the app with the harness) --------------------------------


@dataclass(frozen=True, kw_only=True)
class PythonImage:
    """One of the two images of Debian's python3.11, the pinned wheels and the project."""

    name: str
    requirements: tuple[str, ...]
    """Files under requirements/, installed together."""
    packages: tuple[str, ...]
    """The project's packages the image keeps (the wheel holds them all)."""
    trees: tuple[str, ...] = ()
    """Project folders copied as they are to GAMEDAY_HOME (the experiments and game days)."""
    cmd: tuple[str, ...]
    description: str
    env: tuple[str, ...] = ()


GAMEDAY_HOME = "/opt/stormproof/gameday"
"""The game-day image's experiments/ and gamedays/: `repository_root` finds them from a game-day
file there."""
APP = PythonImage(
    name="stormproof",
    requirements=("image.txt",),
    packages=("engine", "replay", "plumbing"),
    cmd=("python", "-m", "engine", "--help"),
    description="stormproof engine services (python -m engine run SERVICE) and the replay "
    "(replay serve)",
)
GAMEDAY = PythonImage(
    name="gameday",
    requirements=("image.txt", "gameday-image.txt"),
    packages=("engine", "replay", "plumbing", "harness"),
    trees=("experiments", "gamedays"),
    cmd=("python", "-m", "harness.cli", "gameday", "run", "--help"),
    description="the stormproof game day inside the cluster (python -m harness.cli gameday run "
    "FILE --target k8s --in-cluster): the harness, Chaos Toolkit, chaostoolkit-kubernetes",
    # matplotlib and Chaos Toolkit want a writable home: /tmp, the pod's only writable place
    env=("HOME=/tmp", "MPLCONFIGDIR=/tmp/matplotlib"),
)


def prepare_app(ctx: Context) -> Prepared:
    return prepare_python(ctx, APP)


def prepare_gameday(ctx: Context) -> Prepared:
    return prepare_python(ctx, GAMEDAY)


def prepare_python(ctx: Context, image: PythonImage) -> Prepared:
    requirements = [ctx.project_root / "requirements" / name for name in image.requirements]
    version = wheels.project_version(ctx.project_root)
    packages = debian.resolve(APP_SELECTION, ctx.cache_dir)
    source = tree_sha256(
        ctx.project_root,
        (*image.packages, *image.trees),
        (*wheels.PROJECT_FILES, "deploy/image/replay"),
    )
    python = _version_of(packages, "python3.11-minimal")
    tag = (ctx.app_tag if image is APP else None) or version
    spec = ImageSpec(
        ref=f"{REGISTRY}/{image.name}:{tag}",
        config=ImageConfig(
            user=f"{APP_USER.uid}:{APP_USER.gid}",
            cmd=image.cmd,
            env=(
                f"PATH=/opt/stormproof/bin:{BASE_PATH}",
                f"PYTHONPATH={APP_SITE_PACKAGES}",
                "PYTHONDONTWRITEBYTECODE=1",
                "PYTHONUNBUFFERED=1",
                "LANG=C.UTF-8",
                f"SSL_CERT_FILE={APP_SITE_PACKAGES}/certifi/cacert.pem",
                *image.env,
            ),
            working_dir=GAMEDAY_HOME if image.trees else "/",
            labels=_labels(
                image.name,
                version,
                image.description,
                source_sha256=source,
                python=f"{python} (Debian)",
            ),
        ),
    )

    def assemble(root: Path, scratch: Path) -> None:
        wheels.check_interpreter()
        _debian_rootfs(root, ctx, packages, APP_USER)
        for name in ("python", "python3", "python3.11"):
            rootfs.symlink(root, f"usr/local/bin/{name}", "/usr/bin/python3.11")
        wheels_dir = ctx.cache_dir / "wheels"
        for path in requirements:
            wheels.download_wheels(path, wheels_dir)
        project_wheel = wheels.build_project_wheel(ctx.project_root, scratch)
        site = rootfs.make_dir(root, APP_SITE_PACKAGES, 0o755)
        wheels.install(
            requirements=requirements,
            wheels_dir=wheels_dir,
            project_wheel=project_wheel,
            version=version,
            target=site,
            keep=image.packages,
        )
        rootfs.copy_file(
            root, ctx.project_root / "deploy/image/replay", "opt/stormproof/bin/replay"
        )
        for tree in image.trees:
            rootfs.copy_tree(root, ctx.project_root / tree, f"{GAMEDAY_HOME}/{tree}")
        wheels.compile_bytecode(site, APP_SITE_PACKAGES)
        wheels.compile_bytecode(root / "usr/lib/python3.11", "/usr/lib/python3.11")

    return Prepared(
        spec=spec,
        inputs={
            "requirements": [path.read_text() for path in requirements],
            "source_sha256": source,
        },
        packages=packages,
        assemble=assemble,
    )


# -- redis ---------------------------------------------------------------------------------------


def prepare_redis(ctx: Context) -> Prepared:
    packages = debian.resolve(REDIS_SELECTION, ctx.cache_dir)
    debian_version = _version_of(packages, "redis-server")
    version = upstream_version(debian_version)
    spec = ImageSpec(
        ref=f"{REGISTRY}/redis:{version}",
        config=ImageConfig(
            user=f"{REDIS_USER.uid}:{REDIS_USER.gid}",
            entrypoint=("/usr/bin/redis-server",),
            cmd=("--dir", "/data"),
            env=(f"PATH={BASE_PATH}", "LANG=C.UTF-8"),
            working_dir="/data",
            exposed_ports=("6379/tcp",),
            labels=_labels(
                "redis", version, "Debian's redis-server", debian_version=debian_version
            ),
        ),
        owned=(OwnedPath(path="data", uid=REDIS_USER.uid, gid=REDIS_USER.gid, mode=0o700),),
    )

    def assemble(root: Path, _: Path) -> None:
        _debian_rootfs(root, ctx, packages, REDIS_USER)
        rootfs.make_dir(root, "data", 0o700)

    return Prepared(spec=spec, inputs={}, packages=packages, assemble=assemble)


# -- postgres ------------------------------------------------------------------------------------


def prepare_postgres(ctx: Context) -> Prepared:
    packages = debian.resolve(POSTGRES_SELECTION, ctx.cache_dir)
    debian_version = _version_of(packages, f"postgresql-{POSTGRES_MAJOR}")
    version = upstream_version(debian_version)
    entrypoint = ctx.project_root / "deploy/image/postgres-entrypoint"
    data = "var/lib/postgresql/data"
    owner = {"uid": POSTGRES_USER.uid, "gid": POSTGRES_USER.gid}
    spec = ImageSpec(
        ref=f"{REGISTRY}/postgres:{version}",
        config=ImageConfig(
            user=f"{POSTGRES_USER.uid}:{POSTGRES_USER.gid}",
            entrypoint=("/usr/local/bin/postgres-entrypoint",),
            cmd=("-c", "listen_addresses=*", "-c", "unix_socket_directories=", "-c", "jit=off"),
            env=(
                f"PATH=/usr/lib/postgresql/{POSTGRES_MAJOR}/bin:{BASE_PATH}",
                f"PGDATA=/{data}",
                "LANG=C.UTF-8",
                "TZ=UTC",
            ),
            working_dir="/var/lib/postgresql",
            exposed_ports=("5432/tcp",),
            stop_signal="SIGINT",
            labels=_labels(
                "postgres", version, "Debian's PostgreSQL server", debian_version=debian_version
            ),
        ),
        owned=(
            OwnedPath(path="var/lib/postgresql", mode=0o700, **owner),
            OwnedPath(path=data, mode=0o700, **owner),
        ),
    )

    def assemble(root: Path, _: Path) -> None:
        _debian_rootfs(root, ctx, packages, POSTGRES_USER)
        rootfs.remove(root, POSTGRES_PRUNED)
        rootfs.symlink(root, "bin/sh", "dash")  # initdb and pg_ctl start programs via /bin/sh
        rootfs.copy_file(root, entrypoint, "usr/local/bin/postgres-entrypoint")
        rootfs.make_dir(root, data, 0o700)

    return Prepared(
        spec=spec,
        inputs={"entrypoint_sha256": sha256_file(entrypoint)},
        packages=packages,
        assemble=assemble,
    )


# -- toxiproxy -----------------------------------------------------------------------------------


def prepare_toxiproxy(ctx: Context) -> Prepared:
    binary = binaries.static_toxiproxy(ctx.project_root, ctx.cache_dir)
    version = binaries.TOXIPROXY_VERSION
    spec = ImageSpec(
        ref=f"{REGISTRY}/toxiproxy:{version}",
        config=ImageConfig(
            user=f"{TOXIPROXY_USER.uid}:{TOXIPROXY_USER.gid}",
            entrypoint=("/usr/local/bin/toxiproxy-server",),
            cmd=("-host", "0.0.0.0"),
            env=(f"PATH={BASE_PATH}",),
            exposed_ports=("8474/tcp",),
            labels=_labels("toxiproxy", version, "Shopify's toxiproxy-server, static"),
        ),
    )

    def assemble(root: Path, _: Path) -> None:
        rootfs.skeleton(root, TOXIPROXY_USER)
        rootfs.copy_file(root, binary.path, "usr/local/bin/toxiproxy-server")

    return Prepared(
        spec=spec, inputs={"toxiproxy_sha256": binary.sha256}, packages=(), assemble=assemble
    )


# -- pause ---------------------------------------------------------------------------------------


def prepare_pause(ctx: Context) -> Prepared:
    source = binaries.pause_source(ctx.project_root)
    version = binaries.PAUSE_VERSION
    spec = ImageSpec(
        ref=f"{REGISTRY}/pause:{version}",
        config=ImageConfig(
            user=f"{PAUSE_UID}:{PAUSE_UID}",
            entrypoint=("/pause",),
            labels=_labels(
                "pause", version, f"Kubernetes {binaries.KUBERNETES_VERSION} pause.c, static"
            ),
        ),
    )

    def assemble(root: Path, _: Path) -> None:
        binaries.compile_pause(source, root / "pause")

    return Prepared(
        spec=spec,
        inputs={
            "pause_c_sha256": sha256_file(source),
            "compiler": binaries.compiler_identity(),
            "cflags": list(binaries.PAUSE_CFLAGS),
        },
        packages=(),
        assemble=assemble,
    )


RECIPES = (
    Recipe(name="stormproof", prepare=prepare_app),
    Recipe(name="gameday", prepare=prepare_gameday),
    Recipe(name="redis", prepare=prepare_redis),
    Recipe(name="postgres", prepare=prepare_postgres),
    Recipe(name="toxiproxy", prepare=prepare_toxiproxy),
    Recipe(name="pause", prepare=prepare_pause),
)
