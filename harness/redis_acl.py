"""The stack's Redis users: least privilege per engine service, a read-only harness user, and
no default user. Written as a Redis ACL file (passwords hashed, never in the clear) that the
stack's redis-server loads at start (`--aclfile`).

    feed        writes md.* only
    strategy    reads md.*, exec.*, risk.events; writes intents; its own state and the
                intake's idempotency records (stormproof:kv:strategy.*, stormproof:kv:intake.*)
    risk        reads intents, orders.*, exec.*, control, md.*; writes orders.*, risk.events,
                intents (flattens) and control (ops commands); its state (stormproof:kv:risk.*)
    execution   reads orders.*, control, md.*; writes exec.* and control (its drift halt); the
                leader lease (stormproof:lease:*)
    engine      all of the above, for `engine run all` (one process, every service)
    harness     reads everything (the game day's wiretap, probes, lag); writes nothing
    bench       reads everything; writes only bench.* (a benchmark's own baseline streams)

Every consumer may write dead.letters (what it cannot decode is kept there, not dropped).
Commands are named one by one; anything else (FLUSHALL, CONFIG, KEYS, DEBUG...) is refused.
Redis checks the commands a script calls too, so the scripts' GET/SET/DEL/INCR/PEXPIRE are
allowed on the state keys only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

CONNECTION = (
    "+ping",
    "+hello",
    "+auth",
    "+client|setname",
    "+client|getname",
    "+select",
    "+echo",
)
CONSUME = (
    "+xreadgroup",
    "+xack",
    "+xautoclaim",
    "+xgroup|create",
    "+xrange",
    "+xrevrange",
    "+xinfo|groups",
    "+xinfo|stream",
    "+xpending",
    "+xlen",
)
PUBLISH = ("+xadd",)
STATE = (
    "+get",
    "+set",
    "+del",
    "+incr",
    "+pexpire",
    "+evalsha",
    "+eval",
    "+script|load",
    "+script|exists",
)
READ_ONLY = (*CONNECTION, "+xread", "+xrange", "+xrevrange", "+xinfo", "+xlen", "+scan", "+get")


@dataclass(frozen=True)
class Role:
    publishes: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    state: tuple[str, ...] = ()


ROLES: Mapping[str, Role] = {
    "feed": Role(publishes=("md.*",)),
    "strategy": Role(
        publishes=("intents", "dead.letters"),
        consumes=("md.*", "exec.*", "risk.events"),
        state=("stormproof:kv:strategy.*", "stormproof:kv:intake.*"),
    ),
    "risk": Role(
        publishes=("orders.*", "risk.events", "intents", "control", "dead.letters"),
        consumes=("intents", "orders.*", "exec.*", "control", "md.*"),
        state=("stormproof:kv:risk.*",),
    ),
    "execution": Role(
        publishes=("exec.*", "control", "dead.letters"),
        consumes=("orders.*", "control", "md.*"),
        state=("stormproof:lease:*",),
    ),
}
ENGINE_ALL = "engine"
HARNESS = "harness"
BENCH = "bench"
USERS = (*ROLES, ENGINE_ALL, HARNESS, BENCH)


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def _keys(patterns: tuple[str, ...]) -> str:
    return " ".join(f"~{p}" for p in patterns)


def role_rules(role: Role) -> str:
    """One selector per kind of access: a user may run a command only on the keys that kind
    names (XADD on its streams, XREADGROUP on the ones it consumes, GET/SET on its state)."""
    selectors = []
    if role.publishes:
        selectors.append(f"({_keys(role.publishes)} {' '.join(PUBLISH)})")
    if role.consumes:
        # a consumer acknowledges and claims on the streams it reads, and dead-letters
        selectors.append(f"({_keys(role.consumes)} {' '.join(CONSUME)})")
    if role.state:
        selectors.append(f"({_keys(role.state)} {' '.join(STATE)})")
    return " ".join(selectors)


def union(roles: Mapping[str, Role]) -> Role:
    return Role(
        publishes=tuple(sorted({p for r in roles.values() for p in r.publishes})),
        consumes=tuple(sorted({p for r in roles.values() for p in r.consumes})),
        state=tuple(sorted({p for r in roles.values() for p in r.state})),
    )


def acl_file(passwords: Mapping[str, str]) -> str:
    """The ACL file for the given user -> password (every user of USERS must have one)."""
    missing = sorted(set(USERS) - set(passwords))
    if missing:
        raise ValueError(f"no password for {', '.join(missing)}")
    connection = " ".join(CONNECTION)
    lines = ["user default off resetkeys resetchannels -@all"]
    for name in (*ROLES, ENGINE_ALL):
        role = ROLES[name] if name in ROLES else union(ROLES)
        lines.append(
            f"user {name} on #{password_hash(passwords[name])} resetkeys resetchannels -@all"
            f" {connection} {role_rules(role)}"
        )
    lines.append(
        f"user {HARNESS} on #{password_hash(passwords[HARNESS])} resetkeys resetchannels -@all"
        f" ~* {' '.join(READ_ONLY)}"
    )
    lines.append(
        f"user {BENCH} on #{password_hash(passwords[BENCH])} resetkeys resetchannels -@all"
        f" {' '.join(READ_ONLY)} %R~* (~bench.* +@stream +del)"
    )
    return "\n".join(lines) + "\n"


ENGINE_SECRETS = (
    "STORMPROOF_API_KEY",
    "STORMPROOF_API_SECRET",
    "STORMPROOF_OPS_TOKEN",
    "STORMPROOF_INTAKE_TOKEN",
    "STORMPROOF_JOURNAL_DSN",
)
"""What an engine process needs from the stack's secrets besides its own Redis password."""


def password_key(user: str) -> str:
    """The secrets.env key of a user's password."""
    return f"STORMPROOF_REDIS_PASSWORD_{user.upper()}"
