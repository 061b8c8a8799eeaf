"""Write-ahead order journal: the contract (base), SQLite (embedded) and PostgreSQL backends."""

from engine.execution.journal.base import Journal, ParentRecord, fill_from_row, order_from_row
from engine.execution.journal.factory import make_journal
from engine.execution.journal.postgres import PostgresJournal
from engine.execution.journal.sqlite import SqliteJournal, SqliteJournalSync

__all__ = [
    "Journal",
    "ParentRecord",
    "PostgresJournal",
    "SqliteJournal",
    "SqliteJournalSync",
    "fill_from_row",
    "make_journal",
    "order_from_row",
]
