"""The one way tierwise opens a SQLite file (outbox, idempotency keys, bundle index).

An autocommit connection any thread may use (callers serialize with their own lock), a
busy timeout for other processes' writes, write-ahead logging with a full fsync on commit
for files, and the schema applied in one immediate transaction so two processes opening
the same new file at once do not race.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["open_database"]


def open_database(path: str | Path, schema: str, *, timeout_s: float = 10.0) -> sqlite3.Connection:
    """Open (creating when needed) the database at ``path`` (``:memory:`` for one in memory)
    and apply ``schema``. Raises sqlite3.Error, with the connection closed, when it cannot."""
    conn = sqlite3.connect(
        str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False
    )
    try:
        if str(path) != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(f"BEGIN IMMEDIATE; {schema} COMMIT;")
    except sqlite3.Error:
        conn.close()
        raise
    return conn
