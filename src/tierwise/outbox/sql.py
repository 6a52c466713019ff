"""The outbox's SQLite schema and row helpers, shared by :mod:`tierwise.outbox.store`."""

from __future__ import annotations

import json
import sqlite3

from tierwise.errors import ConfigError, OutboxError
from tierwise.outbox.types import OutboxItem, OutboxItemNotFoundError

__all__ = [
    "COLUMNS",
    "MAX_ERROR_CHARS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "backlog_rows",
    "count_undelivered",
    "load_item",
    "non_negative",
    "positive_int",
]

MAX_ERROR_CHARS = 2000
SCHEMA_VERSION = 1
COLUMNS = (
    "id, tier, idempotency_key, payload, meta, callback_url, status, attempts, not_before_s,"
    " lease_until_s, lease_token, last_error, result, callback_status, callback_attempts,"
    " callback_error, created_s, updated_s, finished_s"
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tier TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    payload BLOB NOT NULL,
    meta TEXT NOT NULL,
    callback_url TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'leased', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before_s REAL NOT NULL,
    lease_until_s REAL,
    lease_token TEXT,
    last_error TEXT,
    result BLOB,
    callback_status TEXT CHECK (callback_status IN ('pending', 'delivered', 'failed')),
    callback_attempts INTEGER NOT NULL DEFAULT 0,
    callback_error TEXT,
    created_s REAL NOT NULL,
    updated_s REAL NOT NULL,
    finished_s REAL
);
CREATE INDEX IF NOT EXISTS outbox_items_ready ON outbox_items (tier, status, not_before_s);
"""


def count_undelivered(conn: sqlite3.Connection, tier: str | None) -> int:
    """Pending or leased items, of one tier or all."""
    if tier is None:
        row = conn.execute(
            "SELECT count(*) FROM outbox_items WHERE status IN ('pending', 'leased')"
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT count(*) FROM outbox_items WHERE tier = ? AND status IN ('pending', 'leased')",
            (tier,),
        ).fetchone()
    return int(row[0])


def backlog_rows(conn: sqlite3.Connection, *, path: str) -> list[tuple[str, int, float]]:
    """Per tier: undelivered items (pending or leased) and when the oldest was queued."""
    try:
        rows = conn.execute(
            "SELECT tier, count(*), min(created_s) FROM outbox_items"
            " WHERE status IN ('pending', 'leased') GROUP BY tier"
        ).fetchall()
    except sqlite3.Error as exc:
        raise OutboxError(str(exc), path=path) from exc
    return [(str(tier), int(n), float(oldest)) for tier, n, oldest in rows]


def load_item(conn: sqlite3.Connection, item_id: str, now: float, *, path: str) -> OutboxItem:
    """One item by id, with an expired lease read as pending; raises if unknown."""
    row = conn.execute(
        f"SELECT {COLUMNS} FROM outbox_items WHERE id = ?",  # noqa: S608 (constant)
        (item_id,),
    ).fetchone()
    if row is None:
        raise OutboxItemNotFoundError(path=path, item_id=item_id)
    (id_, tier, key, payload, meta, callback_url, status, attempts, not_before_s) = row[:9]
    (lease_until_s, lease_token, last_error, result, cb_status, cb_attempts) = row[9:15]
    (cb_error, created_s, updated_s, finished_s) = row[15:]
    if status == "leased" and lease_until_s is not None and lease_until_s <= now:
        status = "pending"
    return OutboxItem(
        id=id_,
        tier=tier,
        payload=bytes(payload),
        meta=json.loads(meta),
        status=status,
        attempts=attempts,
        not_before_s=not_before_s,
        created_s=created_s,
        updated_s=updated_s,
        idempotency_key=key,
        callback_url=callback_url,
        lease_until_s=lease_until_s,
        lease_token=lease_token,
        last_error=last_error,
        result=None if result is None else bytes(result),
        finished_s=finished_s,
        callback_status=cb_status,
        callback_attempts=cb_attempts,
        callback_error=cb_error,
    )


def positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, "an integer >= 1", value)


def non_negative(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(name, "a number >= 0", value)
