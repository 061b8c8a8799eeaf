"""The local overlay's secrets: private files, one consistent set (the simulator holds the
engine's account, the ACL file hashes the users' passwords, the DSN carries PostgreSQL's), kept
across runs unless rotated."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from harness import redis_acl
from harness.deploy.secrets import FILES, write_local_secrets
from harness.runfile import read_env_file

pytestmark = pytest.mark.unit


def read(directory: Path) -> dict[str, dict[str, str]]:
    return {name: read_env_file(directory / name) for name in FILES if name.endswith(".env")}


def test_one_private_consistent_set(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    written = write_local_secrets(directory)
    assert sorted(p.name for p in written) == sorted(FILES)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    env = read(directory)
    venue, sim = env["venue.env"], env["sim.env"]
    assert sim["STORMPROOF_SIM_API_KEY"] == venue["STORMPROOF_API_KEY"]
    assert sim["STORMPROOF_SIM_API_SECRET"] == venue["STORMPROOF_API_SECRET"]
    tokens = env["tokens.env"]
    assert tokens["STORMPROOF_OPS_TOKEN"] != tokens["STORMPROOF_INTAKE_TOKEN"]
    passwords = env["redis-users.env"]
    by_user = {user: passwords[redis_acl.password_key(user)] for user in redis_acl.USERS}
    assert (directory / "users.acl").read_text() == redis_acl.acl_file(by_user)
    assert all(p not in (directory / "users.acl").read_text() for p in by_user.values())
    dsn = conninfo_to_dict(env["journal.env"]["STORMPROOF_JOURNAL_DSN"])
    postgres = env["postgres.env"]
    assert (dsn["host"], dsn["port"]) == ("toxiproxy", "15432")
    assert dsn["password"] == postgres["POSTGRES_PASSWORD"]
    assert (dsn["user"], dsn["dbname"]) == (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"])


def test_a_set_is_kept_until_rotated(tmp_path: Path) -> None:
    write_local_secrets(tmp_path)
    first = read(tmp_path)
    assert write_local_secrets(tmp_path) == []
    assert read(tmp_path) == first
    assert len(write_local_secrets(tmp_path, rotate=True)) == len(FILES)
    rotated = read(tmp_path)
    assert rotated["postgres.env"] != first["postgres.env"]
    assert rotated["redis-users.env"] != first["redis-users.env"]


def test_a_partial_set_is_refused_rather_than_half_replaced(tmp_path: Path) -> None:
    write_local_secrets(tmp_path)
    (tmp_path / "postgres.env").unlink()
    kept = (tmp_path / "journal.env").read_text()
    with pytest.raises(FileExistsError, match=r"missing postgres\.env"):
        write_local_secrets(tmp_path)
    assert (tmp_path / "journal.env").read_text() == kept
