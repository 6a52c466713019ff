"""The outbox's durable store: a SQLite queue of requests waiting for a tier.

Deferrable requests, and requests whose required tier is unreachable during a partition,
are written here and delivered later by a :class:`~tierwise.outbox.drain.Drainer`.
Delivery is at-least-once: a deliverer *claims* items under a lease, and an item whose
deliverer died comes back when its lease runs out. The receiving side deduplicates with
the item's idempotency key (see :mod:`tierwise.outbox.idempotency`).

Durability: WAL journal with ``synchronous=FULL``. A ``put`` that returned is on disk
even if the machine loses power the next instant; with ``NORMAL`` a WAL database survives
a process crash but may drop the last commits on power loss, and an outbox that forgets
an accepted request breaks the one promise it makes. Every write is one ``BEGIN
IMMEDIATE`` transaction, so a kill -9 at any point leaves each item either before or
after a state change, never half-way, and an item moves to ``done`` exactly once.

Times are on ``clock`` (wall-clock seconds by default, not ``time.monotonic``: leases and
``not_before_s`` must keep their meaning across a restart).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from tierwise.database import open_database
from tierwise.errors import ConfigError, PayloadTooLargeError
from tierwise.outbox.sql import (
    MAX_ERROR_CHARS,
    SCHEMA,
    SCHEMA_VERSION,
    backlog_rows,
    count_undelivered,
    load_item,
    non_negative,
    positive_int,
)
from tierwise.outbox.types import (
    ItemStatus,
    OutboxError,
    OutboxFullError,
    OutboxItem,
    OutboxItemNotFoundError,
)

__all__ = ["Outbox"]


class Outbox:
    """A bounded, durable queue of requests per tier (see the module docstring).

    ``max_items`` bounds undelivered (pending or leased) items over all tiers. A failed
    delivery is retried after ``retry_after_s`` or an exponential backoff
    (``backoff_base_s * 2**(attempts-1)``, at most ``backoff_max_s``) until
    ``max_attempts`` claims, then the item is ``failed``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_items: int,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 10,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 300.0,
        max_payload_bytes: int = 16 * 1024 * 1024,
        busy_timeout_s: float = 10.0,
    ) -> None:
        positive_int("max_items", max_items)
        positive_int("max_attempts", max_attempts)
        positive_int("max_payload_bytes", max_payload_bytes)
        non_negative("backoff_base_s", backoff_base_s)
        non_negative("backoff_max_s", backoff_max_s)
        non_negative("busy_timeout_s", busy_timeout_s)
        self.path = str(path)
        self.max_items = max_items
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_payload_bytes = max_payload_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._last_backlog: list[tuple[str, int, float]] = []
        try:
            self._conn = open_database(
                self.path,
                f"{SCHEMA} PRAGMA user_version={SCHEMA_VERSION};",
                timeout_s=busy_timeout_s,
            )
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open: {exc}", path=self.path) from exc

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        """Close the database connection (idempotent)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- queue operations ---------------------------------------------------------------

    def put(
        self,
        tier: str,
        payload: bytes,
        *,
        idempotency_key: str | None = None,
        not_before_s: float | None = None,
        callback_url: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> str:
        """Queue ``payload`` for ``tier``; returns the item id.

        A ``idempotency_key`` already queued returns the first item's id and queues
        nothing. ``not_before_s`` (on the outbox clock) holds the item back until then.
        Raises :class:`OutboxFullError` past ``max_items`` undelivered items.
        """
        if not isinstance(tier, str) or not tier:
            raise ConfigError("tier", "a non-empty tier name", tier)
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise ConfigError("payload", "bytes", type(payload).__name__)
        body = bytes(payload)
        if len(body) > self.max_payload_bytes:
            raise PayloadTooLargeError(len(body), self.max_payload_bytes)
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 512
        ):
            raise ConfigError("idempotency_key", "a string of 1 to 512 characters", idempotency_key)
        if callback_url is not None:
            parts = urlsplit(callback_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError("callback_url", "an absolute http(s) URL", callback_url)
        try:
            meta_json = json.dumps(dict(meta or {}), sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ConfigError("meta", "a JSON-serializable mapping", str(exc)) from exc
        now = self._clock()
        start_s = now if not_before_s is None else float(not_before_s)
        with self._tx() as conn:
            if idempotency_key is not None:
                row = conn.execute(
                    "SELECT id FROM outbox_items WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    return str(row[0])
            pending = count_undelivered(conn, None)
            if pending >= self.max_items:
                raise OutboxFullError(
                    path=self.path, tier=tier, max_items=self.max_items, pending=pending
                )
            item_id = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO outbox_items (id, tier, idempotency_key, payload, meta, callback_url,"
                " status, not_before_s, created_s, updated_s)"
                " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                (item_id, tier, idempotency_key, body, meta_json, callback_url, start_s, now, now),
            )
        return item_id

    def claim(self, tier: str, *, limit: int, lease_s: float) -> list[OutboxItem]:
        """Lease up to ``limit`` due items of ``tier`` (oldest first) for ``lease_s`` seconds.

        Due: pending with ``not_before_s`` passed, or leased with the lease run out. An
        expired item that already had ``max_attempts`` claims is marked ``failed`` instead
        (its deliverer keeps dying on it).
        """
        positive_int("limit", limit)
        if not lease_s > 0:
            raise ConfigError("lease_s", "a positive number of seconds", lease_s)
        now = self._clock()
        token = uuid.uuid4().hex
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT id, status, attempts FROM outbox_items WHERE tier = ? AND ("
                " (status = 'pending' AND not_before_s <= ?)"
                " OR (status = 'leased' AND lease_until_s <= ?)) ORDER BY seq LIMIT ?",
                (tier, now, now, limit),
            ).fetchall()
            claimed: list[str] = []
            for item_id, status, attempts in rows:
                if status == "leased" and attempts >= self.max_attempts:
                    conn.execute(
                        "UPDATE outbox_items SET status = 'failed', last_error = ?, lease_until_s"
                        " = NULL, lease_token = NULL, updated_s = ?, finished_s = ? WHERE id = ?",
                        (f"lease ran out on all {attempts} attempts", now, now, item_id),
                    )
                    continue
                claimed.append(item_id)
            conn.executemany(
                "UPDATE outbox_items SET status = 'leased', lease_until_s = ?, lease_token = ?,"
                " attempts = attempts + 1, updated_s = ? WHERE id = ?",
                [(now + lease_s, token, now, item_id) for item_id in claimed],
            )
            return [load_item(conn, item_id, now, path=self.path) for item_id in claimed]

    def complete(self, item_id: str, result: bytes) -> bool:
        """Store ``result`` and mark the item ``done``; False if it was already done.

        The first completion wins even from a deliverer whose lease ran out (its result is
        as good as any). When the item has a callback URL its callback becomes pending,
        held by the current lease so the completing deliverer posts it first.
        """
        if not isinstance(result, bytes | bytearray | memoryview):
            raise ConfigError("result", "bytes", type(result).__name__)
        now = self._clock()
        with self._tx() as conn:
            row = conn.execute(
                "SELECT status, callback_url FROM outbox_items WHERE id = ?", (item_id,)
            ).fetchone()
            if row is None:
                raise OutboxItemNotFoundError(path=self.path, item_id=item_id)
            if row[0] == "done":
                return False
            callback_status = "pending" if row[1] is not None else None
            conn.execute(
                "UPDATE outbox_items SET status = 'done', result = ?, lease_token = NULL,"
                " callback_status = ?, updated_s = ?, finished_s = ? WHERE id = ?",
                (bytes(result), callback_status, now, now, item_id),
            )
        return True

    def fail(
        self,
        item_id: str,
        error: str,
        *,
        retry_after_s: float | None = None,
        permanent: bool = False,
        lease_token: str | None = None,
    ) -> ItemStatus:
        """Record a failed delivery; returns the item's status afterwards.

        The item goes back to ``pending`` after ``retry_after_s`` (or the backoff), or to
        ``failed`` when ``permanent`` or out of attempts. A call from a stale deliverer
        (``lease_token`` not the current, live lease) or on a finished item changes nothing.
        """
        if retry_after_s is not None and not retry_after_s >= 0:
            raise ConfigError("retry_after_s", "a number of seconds >= 0", retry_after_s)
        now = self._clock()
        with self._tx() as conn:
            row = conn.execute(
                "SELECT status, attempts, lease_token, lease_until_s FROM outbox_items"
                " WHERE id = ?",
                (item_id,),
            ).fetchone()
            if row is None:
                raise OutboxItemNotFoundError(path=self.path, item_id=item_id)
            status, attempts, current_token, lease_until_s = row
            if status in ("done", "failed"):
                return status  # type: ignore[no-any-return]
            if (
                lease_token is not None
                and status == "leased"
                and current_token != lease_token
                and lease_until_s > now
            ):
                return "leased"
            message = str(error)[:MAX_ERROR_CHARS]
            if permanent or attempts >= self.max_attempts:
                conn.execute(
                    "UPDATE outbox_items SET status = 'failed', last_error = ?, lease_until_s"
                    " = NULL, lease_token = NULL, updated_s = ?, finished_s = ? WHERE id = ?",
                    (message, now, now, item_id),
                )
                return "failed"
            if retry_after_s is None:
                exponent = max(attempts, 1) - 1
                retry_after_s = min(self.backoff_max_s, self.backoff_base_s * 2.0**exponent)
            conn.execute(
                "UPDATE outbox_items SET status = 'pending', last_error = ?, not_before_s = ?,"
                " lease_until_s = NULL, lease_token = NULL, updated_s = ? WHERE id = ?",
                (message, now + retry_after_s, now, item_id),
            )
            return "pending"

    def get(self, item_id: str) -> OutboxItem:
        """The item as stored now (its ``result`` once done); raises if unknown."""
        now = self._clock()
        with self._tx() as conn:
            return load_item(conn, item_id, now, path=self.path)

    def pending_count(self, tier: str | None = None) -> int:
        """Undelivered items (pending or leased), for one tier or all."""
        with self._tx() as conn:
            return count_undelivered(conn, tier)

    def backlog(self, *, wait: bool = True) -> dict[str, tuple[int, float]]:
        """Per queue (tier): undelivered items and the age (s) of the oldest, for gauges;
        ``wait=False`` never waits for the lock: the last figures read, aged to now."""
        now = self._clock()
        if self._lock.acquire(blocking=wait):
            try:
                self._last_backlog = backlog_rows(self._conn, path=self.path)
            finally:
                self._lock.release()
        return {tier: (n, max(0.0, now - oldest)) for tier, n, oldest in self._last_backlog}

    def purge_done(self, older_than_s: float, *, include_failed: bool = False) -> int:
        """Delete items done (and, optionally, failed) more than ``older_than_s`` ago whose
        callback is not still pending; returns how many. Their results are gone after."""
        non_negative("older_than_s", older_than_s)
        cutoff = self._clock() - older_than_s
        statuses = ("done", "failed") if include_failed else ("done", "done")
        with self._tx() as conn:
            cursor = conn.execute(
                "DELETE FROM outbox_items WHERE status IN (?, ?) AND finished_s <= ?"
                " AND (callback_status IS NULL OR callback_status != 'pending')",
                (*statuses, cutoff),
            )
            return cursor.rowcount

    # -- callbacks ----------------------------------------------------------------------

    def claim_callbacks(
        self, tier: str, *, limit: int, lease_s: float, max_attempts: int = 5
    ) -> list[OutboxItem]:
        """Lease done items of ``tier`` whose callback is pending and not held by a live
        lease (e.g. left by a deliverer that crashed after completing). Callbacks already
        claimed ``max_attempts`` times are marked failed instead."""
        positive_int("limit", limit)
        positive_int("max_attempts", max_attempts)
        now = self._clock()
        with self._tx() as conn:
            conn.execute(
                "UPDATE outbox_items SET callback_status = 'failed', callback_error ="
                " coalesce(callback_error, 'out of attempts'), updated_s = ? WHERE tier = ?"
                " AND status = 'done' AND callback_status = 'pending' AND callback_attempts >= ?"
                " AND (lease_until_s IS NULL OR lease_until_s <= ?)",
                (now, tier, max_attempts, now),
            )
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM outbox_items WHERE tier = ? AND status = 'done'"
                    " AND callback_status = 'pending'"
                    " AND (lease_until_s IS NULL OR lease_until_s <= ?) ORDER BY seq LIMIT ?",
                    (tier, now, limit),
                )
            ]
            conn.executemany(
                "UPDATE outbox_items SET lease_until_s = ?, callback_attempts ="
                " callback_attempts + 1, updated_s = ? WHERE id = ?",
                [(now + lease_s, now, item_id) for item_id in ids],
            )
            return [load_item(conn, item_id, now, path=self.path) for item_id in ids]

    def finish_callback(self, item_id: str, *, delivered: bool, error: str | None = None) -> None:
        """Record the outcome of posting an item's result to its callback URL."""
        now = self._clock()
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE outbox_items SET callback_status = ?, callback_error = ?,"
                " lease_until_s = NULL, updated_s = ? WHERE id = ? AND status = 'done'",
                (
                    "delivered" if delivered else "failed",
                    None if error is None else error[:MAX_ERROR_CHARS],
                    now,
                    item_id,
                ),
            )
            if cursor.rowcount == 0:
                raise OutboxItemNotFoundError(path=self.path, item_id=item_id)

    # -- internals ----------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction; sqlite errors become :class:`OutboxError`."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise OutboxError(str(exc), path=self.path) from exc
