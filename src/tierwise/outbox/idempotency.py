"""Run each idempotency key's work once, on the receiving side of at-least-once delivery.

The outbox may deliver an item twice (its deliverer died after the receiver acted but
before it recorded the result). The receiver puts an :class:`IdempotencyStore` in front of
the work, keyed by the V2 request parameter ``idempotency_key``: the first call runs the
work and stores its result; later and concurrent calls with the same key get that result
without running it again.

Concurrent callers on one event loop share the first caller's future; callers in other
processes (or loops) sharing the database file see a ``running`` row and poll until it is
done, or take over once its ``run_lease_s`` has run out (the runner died). If the work
fails, the key is released so a retry can run it, and the error reaches every caller
waiting on that loop. Results are kept ``ttl_s`` seconds and at most ``max_entries`` of
them (oldest evicted first); the TTL must outlast the longest redelivery horizon, since a
key replayed after its entry is gone runs again. Durable files use WAL with
``synchronous=FULL``: an answered key must still be there after a crash.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

from tierwise.database import open_database
from tierwise.errors import ConfigError, IdempotencyError

__all__ = ["IdempotencyError", "IdempotencyStore"]

_T = TypeVar("_T")
_MAX_KEY_CHARS = 512
_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('running', 'done')),
    owner TEXT NOT NULL,
    result BLOB,
    stored_s REAL NOT NULL,
    expires_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_s);
CREATE INDEX IF NOT EXISTS idempotency_age ON idempotency (state, stored_s);
"""


class IdempotencyStore:
    """Results of work keyed by idempotency key; see the module docstring.

    ``path`` is a SQLite file shared by every process of the receiver, or ``":memory:"``
    for one process. ``poll_s`` is how often a caller waiting on another process looks.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        ttl_s: float,
        max_entries: int,
        run_lease_s: float = 300.0,
        poll_s: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, value in (("ttl_s", ttl_s), ("run_lease_s", run_lease_s), ("poll_s", poll_s)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(name, "a positive number of seconds", value)
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError("max_entries", "an integer >= 1", max_entries)
        self.path = str(path)
        self.ttl_s = float(ttl_s)
        self.max_entries = max_entries
        self.run_lease_s = float(run_lease_s)
        self.poll_s = float(poll_s)
        self._clock = clock
        self._memory = self.path == ":memory:"
        self._lock = threading.Lock()
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        try:
            self._conn = open_database(self.path, _SCHEMA)
        except sqlite3.Error as exc:
            raise IdempotencyError(f"cannot open: {exc}", path=self.path) from exc

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> IdempotencyStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def run_once(self, key: str, fn: Callable[[], Awaitable[bytes]]) -> bytes:
        """``fn()``'s result for ``key``: run now if the key is new, else the stored result."""
        if not isinstance(key, str) or not 0 < len(key) <= _MAX_KEY_CHARS:
            raise ConfigError("key", f"a string of 1 to {_MAX_KEY_CHARS} characters", key)
        loop = asyncio.get_running_loop()
        while True:
            shared = self._inflight.get(key)
            if shared is None or shared.get_loop() is not loop:
                break
            try:
                return await asyncio.shield(shared)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if shared.cancelled() and task is not None and not task.cancelling():
                    continue  # the runner was cancelled, not us: try again
                raise
        future: asyncio.Future[bytes] = loop.create_future()
        self._inflight[key] = future
        try:
            result = await self._resolve(key, fn)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" log when nobody waits
            raise
        else:
            future.set_result(result)
            return result
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]

    def get(self, key: str) -> bytes | None:
        """The stored result for ``key``, or None (unknown, running or expired)."""
        row = self._tx(
            lambda conn: conn.execute(
                "SELECT result FROM idempotency WHERE key = ? AND state = 'done' AND expires_s > ?",
                (key, self._clock()),
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    def __len__(self) -> int:
        row = self._tx(lambda conn: conn.execute("SELECT count(*) FROM idempotency").fetchone())
        return int(row[0])

    async def _resolve(self, key: str, fn: Callable[[], Awaitable[bytes]]) -> bytes:
        owner = uuid.uuid4().hex
        while True:
            state, stored = await self._call(self._acquire, key, owner)
            if state == "done":
                assert stored is not None
                return stored
            if state == "acquired":
                break
            await asyncio.sleep(self.poll_s)  # another process or loop is running it
        try:
            result = await fn()
            if not isinstance(result, bytes | bytearray | memoryview):
                raise TypeError(f"idempotent work returned {type(result).__name__}, not bytes")
        except BaseException:
            self._release(key, owner)  # synchronous: must happen even when cancelled
            raise
        body = bytes(result)
        await self._call(self._store, key, owner, body)
        return body

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a database step; off the loop when it may fsync."""
        if self._memory:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    def _tx(self, step: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    value = step(conn)
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise IdempotencyError(str(exc), path=self.path) from exc
            return value

    def _acquire(
        self, key: str, owner: str
    ) -> tuple[Literal["done", "busy", "acquired"], bytes | None]:
        def step(
            conn: sqlite3.Connection,
        ) -> tuple[Literal["done", "busy", "acquired"], bytes | None]:
            now = self._clock()
            row = conn.execute(
                "SELECT state, result FROM idempotency WHERE key = ? AND expires_s > ?",
                (key, now),
            ).fetchone()
            if row is not None:
                return ("done", bytes(row[1])) if row[0] == "done" else ("busy", None)
            conn.execute("DELETE FROM idempotency WHERE expires_s <= ?", (now,))
            conn.execute(
                "INSERT INTO idempotency (key, state, owner, stored_s, expires_s)"
                " VALUES (?, 'running', ?, ?, ?)",
                (key, owner, now, now + self.run_lease_s),
            )
            excess = int(conn.execute("SELECT count(*) FROM idempotency").fetchone()[0])
            excess -= self.max_entries
            if excess > 0:
                conn.execute(
                    "DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency"
                    " WHERE state = 'done' ORDER BY stored_s LIMIT ?)",
                    (excess,),
                )
            return ("acquired", None)

        return self._tx(step)

    def _store(self, key: str, owner: str, result: bytes) -> None:
        def step(conn: sqlite3.Connection) -> None:
            now = self._clock()
            conn.execute(
                "INSERT INTO idempotency (key, state, owner, result, stored_s, expires_s)"
                " VALUES (?, 'done', ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " state = 'done', owner = excluded.owner, result = excluded.result,"
                " stored_s = excluded.stored_s, expires_s = excluded.expires_s"
                " WHERE idempotency.owner = excluded.owner OR idempotency.state = 'running'",
                (key, owner, result, now, now + self.ttl_s),
            )

        self._tx(step)

    def _release(self, key: str, owner: str) -> None:
        self._tx(
            lambda conn: conn.execute(
                "DELETE FROM idempotency WHERE key = ? AND owner = ? AND state = 'running'",
                (key, owner),
            )
        )
