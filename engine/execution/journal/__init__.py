"""Write-ahead order journal: the contract (base), SQLite (embedded) and PostgreSQL backends."""

from engine.execution.journal.base import Journal, fill_from_row, order_from_row
from engine.execution.journal.sqlite import SqliteJournal, SqliteJournalSync

__all__ = ["Journal", "SqliteJournal", "SqliteJournalSync", "fill_from_row", "order_from_row"]
