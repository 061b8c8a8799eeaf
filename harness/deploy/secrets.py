"""The local overlay's secrets, written at deploy time (never committed): kustomize
`secretGenerator`s of deploy/kubernetes/overlays/local read them from `secrets/`.

    venue.env        STORMPROOF_API_KEY, STORMPROOF_API_SECRET           execution
    sim.env          the simulator's copy of that key pair, its control   venue, game day
                     token (STORMPROOF_SIM_*)
    tokens.env       STORMPROOF_OPS_TOKEN, STORMPROOF_INTAKE_TOKEN         risk, strategy, game day
    redis-users.env  one password per Redis user (harness.redis_acl)      each service its own
    users.acl        the Redis ACL file: those users, hashed passwords,   redis
                     the rules of harness.redis_acl
    journal.env      STORMPROOF_JOURNAL_DSN (through execution_to_journal) execution, game day
    postgres.env     POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB         postgres

Every file is created 0600. A set already written is kept whole: PostgreSQL takes its password
once, when its data directory is initialised, and a new one would lock the journal out. `rotate`
writes a new set (then delete the journal's volume, or change the password in the database).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from harness import redis_acl
from harness.deploy.config import link

POSTGRES_USER = "stormproof"
POSTGRES_DB = "stormproof"

FILES = (
    "venue.env",
    "sim.env",
    "tokens.env",
    "redis-users.env",
    "users.acl",
    "journal.env",
    "postgres.env",
)


def _env(values: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def local_secrets() -> dict[str, str]:
    """A fresh set: file name -> content. The simulator holds the engine's key pair (its
    account), the ACL file the users' hashed passwords."""
    api_key, api_secret = secrets.token_hex(16), secrets.token_hex(32)
    passwords = {user: secrets.token_urlsafe(24) for user in redis_acl.USERS}
    postgres_password = secrets.token_urlsafe(24)
    journal = link("execution_to_journal")
    dsn = (
        f"postgresql://{POSTGRES_USER}:{postgres_password}@{journal.address}/{POSTGRES_DB}"
        "?sslmode=disable&connect_timeout=5"
    )
    return {
        "venue.env": _env({"STORMPROOF_API_KEY": api_key, "STORMPROOF_API_SECRET": api_secret}),
        "sim.env": _env(
            {
                "STORMPROOF_SIM_API_KEY": api_key,
                "STORMPROOF_SIM_API_SECRET": api_secret,
                "STORMPROOF_SIM_CONTROL_TOKEN": secrets.token_urlsafe(24),
            }
        ),
        "tokens.env": _env(
            {
                "STORMPROOF_OPS_TOKEN": secrets.token_urlsafe(24),
                "STORMPROOF_INTAKE_TOKEN": secrets.token_urlsafe(24),
            }
        ),
        "redis-users.env": _env(
            {redis_acl.password_key(user): passwords[user] for user in redis_acl.USERS}
        ),
        "users.acl": redis_acl.acl_file(passwords),
        "journal.env": _env({"STORMPROOF_JOURNAL_DSN": dsn}),
        "postgres.env": _env(
            {
                "POSTGRES_USER": POSTGRES_USER,
                "POSTGRES_PASSWORD": postgres_password,
                "POSTGRES_DB": POSTGRES_DB,
            }
        ),
    }


def write_local_secrets(directory: Path, *, rotate: bool = False) -> list[Path]:
    """Write the local overlay's secret files into `directory` (0700), each 0600; returns the
    files written. A complete set already there is kept unless `rotate`; a partial one is an
    error rather than half-replaced (its passwords belong together)."""
    present = [name for name in FILES if (directory / name).exists()]
    if present and not rotate:
        if len(present) == len(FILES):
            return []
        missing = sorted(set(FILES) - set(present))
        raise FileExistsError(
            f"{directory} holds part of a secret set (missing {', '.join(missing)}):"
            " write a new one with rotate"
        )
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    written = []
    for name, text in local_secrets().items():
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(text)
        written.append(path)
    return written
