"""The journal the configuration asks for."""

from __future__ import annotations

from engine.config import ExecutionConfig, Secrets
from engine.execution.journal.base import Journal
from engine.execution.journal.postgres import PostgresJournal
from engine.execution.journal.sqlite import SqliteJournal


def make_journal(config: ExecutionConfig, secrets: Secrets) -> Journal:
    if config.journal_backend == "postgres":
        return PostgresJournal(secrets.journal_dsn.reveal(), durability=config.journal_durability)
    return SqliteJournal(config.journal_path, durability=config.journal_durability)
