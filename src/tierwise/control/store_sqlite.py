"""The SQL both control store backends share, and the SQLite backend (the default).

:class:`SqlControlStore` holds the statements and the conversion between rows and records.
They are written in the dialect SQLite and PostgreSQL share (upserts with ``ON CONFLICT``,
``RETURNING``), with ``?`` parameters that PostgreSQL's backend rewrites to ``%s``. JSON
is encoded with orjson before a transaction opens, so a document that cannot be encoded
fails with nothing written; values always travel as parameters, never in the SQL text.

:class:`SqliteControlStore` keeps everything in one file with write-ahead logging and
``synchronous=NORMAL``: every write is one ``BEGIN IMMEDIATE`` transaction, so a process
killed at any instant leaves each decision wholly written or not at all; a power loss may
drop the last commits, which the control plane repeats (heartbeats come again, a rollout's
next step is decided again). One connection, any thread, serialized by a lock; other
processes wait up to ``busy_timeout_s`` for the file.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

import orjson

from tierwise.control.store import (
    ACTIVE_STATES,
    LEASE_NAME,
    SCHEMA,
    SCHEMA_VERSION,
    AuditEntry,
    Change,
    ControlStore,
    Heartbeat,
    NodeRecord,
    RolloutRow,
)
from tierwise.database import open_database
from tierwise.errors import ConfigError, RolloutError, TierwiseError

__all__ = ["Cursor", "SqlControlStore", "SqliteControlStore"]

_SCHEMA = SCHEMA.format(real="REAL", version=SCHEMA_VERSION)


class Cursor(Protocol):
    """What the shared code uses of a DB-API cursor (sqlite3's and psycopg's)."""

    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...
    def executemany(self, sql: Any, params: Any, /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    @property
    def rowcount(self) -> int: ...


_JSON_EXPECTED = "JSON values (str, number, bool, null, lists, mappings with str keys)"


def _default(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-able")


def _json(where: str, value: object) -> str:
    try:
        return orjson.dumps(value, default=_default).decode()
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise ConfigError(where, _JSON_EXPECTED, str(exc)) from exc


def _text(where: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(where, "a non-empty string", value)
    return value


def _number(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(where, "a finite number", value)
    return float(value)


def _count(where: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(where, f"an integer >= {least}", value)
    return value


_NODE = "SELECT node, labels, status, registered_s, last_seen_s FROM control_nodes"
_UPSERT_NODE = (
    "INSERT INTO control_nodes (node, labels, status, registered_s, last_seen_s)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (node) DO UPDATE SET labels = excluded.labels,"
    " status = excluded.status, last_seen_s = excluded.last_seen_s"  # never back in time:
    " WHERE excluded.last_seen_s >= control_nodes.last_seen_s"  # a late or redelivered beat
)
_SET_DESIRED = (
    "INSERT INTO control_desired (node, bundle, ref) VALUES (?, ?, ?)"
    " ON CONFLICT (node, bundle) DO UPDATE SET ref = excluded.ref"
)
_ROLLOUT = "SELECT id, bundle, state, doc, updated_s FROM control_rollouts"
_PUT_ROLLOUT = (
    "INSERT INTO control_rollouts (id, bundle, state, doc, updated_s, created)"
    " VALUES (?, ?, ?, ?, ?, (SELECT COALESCE(MAX(created), 0) + 1 FROM control_rollouts))"
    " ON CONFLICT (id) DO UPDATE SET bundle = excluded.bundle, state = excluded.state,"
    " doc = excluded.doc, updated_s = excluded.updated_s"
)
_AUDIT = "SELECT seq, at_s, actor, action, rollout, detail FROM control_audit"
_APPEND_AUDIT = (
    "INSERT INTO control_audit (seq, at_s, actor, action, rollout, detail)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_ACQUIRE = (
    "INSERT INTO control_leases (name, holder, expires_s) VALUES (?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_s = excluded.expires_s"
    " WHERE control_leases.holder = excluded.holder OR control_leases.expires_s <= ?"
    " RETURNING holder"
)
_ACTIVE = f"state IN ({', '.join('?' * len(ACTIVE_STATES))})"
_ACTIVE_OF_BUNDLE = "SELECT id FROM control_rollouts WHERE bundle = ? AND " + _ACTIVE  # noqa: S608 (constants only)


def _node(row: Sequence[Any]) -> NodeRecord:
    node, labels, status, registered_s, last_seen_s = row
    return NodeRecord(node, orjson.loads(labels), orjson.loads(status), registered_s, last_seen_s)


def _rollout(row: Sequence[Any]) -> RolloutRow:
    rollout_id, bundle, state, doc, updated_s = row
    return RolloutRow(rollout_id, bundle, state, orjson.loads(doc), updated_s)


def _entry(row: Sequence[Any]) -> AuditEntry:
    seq, at_s, actor, action, rollout, detail = row
    return AuditEntry(at_s, actor, action, rollout, orjson.loads(detail), int(seq))


class SqlControlStore(ControlStore):
    """The statements and conversions both SQL backends share.

    A backend supplies :meth:`_session` (a cursor under ``self._lock``, inside one
    transaction when ``write``, with driver errors turned into tierwise errors) and may
    override :meth:`_sql` (placeholder style) and :meth:`_serialize` (a lock taken first in
    every decision's transaction, so audit seqs follow commit order across processes).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @abstractmethod
    def _session(self, *, write: bool) -> AbstractContextManager[Cursor]: ...

    def _sql(self, statement: str) -> str:
        return statement

    def _serialize(self, cur: Cursor) -> None:
        """Nothing by default: a SQLite write transaction already excludes every other."""

    def _check_schema(self, cur: Cursor) -> None:
        cur.execute("SELECT MAX(version) FROM control_schema")
        version = cur.fetchone()[0]
        if version is None or int(version) > SCHEMA_VERSION:
            raise ConfigError(
                "store", f"a control store of schema version {SCHEMA_VERSION} or older", version
            )

    def record_heartbeats(self, beats: Sequence[Heartbeat]) -> None:
        rows = []
        # sorted, so concurrent batches lock rows in one order and cannot deadlock
        for beat in sorted(beats, key=lambda b: b.node if isinstance(b.node, str) else ""):
            node = _text("heartbeat.node", beat.node)
            labels = dict(beat.labels)
            for key, value in labels.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise ConfigError(f"heartbeat {node}: labels", "str -> str", labels)
            at_s = _number("heartbeat.at_s", beat.at_s)
            rows.append((node, _json("heartbeat.labels", labels),
                         _json(f"heartbeat {node}: status", beat.status), at_s, at_s))  # fmt: skip
        if not rows:
            return
        with self._session(write=True) as cur:
            cur.executemany(self._sql(_UPSERT_NODE), rows)

    def get_node(self, node: str) -> NodeRecord | None:
        with self._session(write=False) as cur:
            cur.execute(self._sql(f"{_NODE} WHERE node = ?"), (node,))
            row = cur.fetchone()
        return None if row is None else _node(row)

    def list_nodes(self) -> list[NodeRecord]:
        with self._session(write=False) as cur:
            cur.execute(f"{_NODE} ORDER BY node")
            return [_node(row) for row in cur.fetchall()]

    def forget_node(self, node: str) -> bool:
        with self._session(write=True) as cur:
            cur.execute(self._sql("DELETE FROM control_desired WHERE node = ?"), (node,))
            cur.execute(self._sql("DELETE FROM control_nodes WHERE node = ?"), (node,))
            return cur.rowcount > 0

    def desired_of(self, node: str) -> dict[str, str]:
        with self._session(write=False) as cur:
            cur.execute(
                self._sql("SELECT bundle, ref FROM control_desired WHERE node = ? ORDER BY bundle"),
                (node,),
            )
            return {bundle: ref for bundle, ref in cur.fetchall()}

    def all_desired(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        with self._session(write=False) as cur:
            cur.execute("SELECT node, bundle, ref FROM control_desired ORDER BY node, bundle")
            for node, bundle, ref in cur.fetchall():
                out.setdefault(node, {})[bundle] = ref
        return out

    def get_rollout(self, rollout_id: str) -> RolloutRow | None:
        with self._session(write=False) as cur:
            cur.execute(self._sql(f"{_ROLLOUT} WHERE id = ?"), (rollout_id,))
            row = cur.fetchone()
        return None if row is None else _rollout(row)

    def list_rollouts(
        self, *, active_only: bool = False, bundle: str | None = None
    ) -> list[RolloutRow]:
        clauses: list[str] = []
        params: list[str] = []
        if active_only:
            clauses.append(_ACTIVE)
            params.extend(sorted(ACTIVE_STATES))
        if bundle is not None:
            clauses.append("bundle = ?")
            params.append(bundle)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._session(write=False) as cur:
            cur.execute(self._sql(f"{_ROLLOUT}{where} ORDER BY created DESC"), params)
            return [_rollout(row) for row in cur.fetchall()]

    def audit(
        self, *, rollout: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditEntry]:
        _count("after_seq", after_seq, 0)
        _count("limit", limit, 1)
        where, params = ("", []) if rollout is None else (" AND rollout = ?", [rollout])
        with self._session(write=False) as cur:
            sql = f"{_AUDIT} WHERE seq > ?{where} ORDER BY seq LIMIT ?"
            cur.execute(self._sql(sql), [after_seq, *params, limit])
            return [_entry(row) for row in cur.fetchall()]

    def apply(self, change: Change) -> list[int]:
        rollout = None
        if (row := change.rollout) is not None:
            rollout = (_text("rollout.id", row.id), _text("rollout.bundle", row.bundle),
                       _text("rollout.state", row.state), _json("rollout.doc", row.doc),
                       _number("rollout.updated_s", row.updated_s))  # fmt: skip
        cleared = [
            (_text("cleared.node", n), _text("cleared.bundle", b)) for n, b in change.cleared
        ]
        desired = [(_text("desired.node", n), _text("desired.bundle", b), _text("desired.ref", r))
                   for n, b, r in change.desired]  # fmt: skip
        audit = []
        for entry in change.audit:
            if entry.rollout is not None:
                _text("audit.rollout", entry.rollout)
            audit.append((_number("audit.at_s", entry.at_s), _text("audit.actor", entry.actor),
                          _text("audit.action", entry.action), entry.rollout,
                          _json(f"audit {entry.action}: detail", entry.detail)))  # fmt: skip
        if rollout is None and not cleared and not desired and not audit:
            return []
        with self._session(write=True) as cur:
            self._serialize(cur)
            self._check(cur, change)
            if rollout is not None:
                cur.execute(self._sql(_PUT_ROLLOUT), rollout)
            if cleared:
                sql = "DELETE FROM control_desired WHERE node = ? AND bundle = ?"
                cur.executemany(self._sql(sql), cleared)
            if desired:
                cur.executemany(self._sql(_SET_DESIRED), desired)
            if not audit:
                return []
            cur.execute("SELECT COALESCE(MAX(seq), 0) FROM control_audit")
            first = int(cur.fetchone()[0]) + 1
            seqs = list(range(first, first + len(audit)))
            cur.executemany(
                self._sql(_APPEND_AUDIT), [(s, *a) for s, a in zip(seqs, audit, strict=True)]
            )
        return seqs

    def _check(self, cur: Cursor, change: Change) -> None:
        """The preconditions of ``change`` (see :class:`Change`); RolloutError otherwise."""
        row = change.rollout
        if row is not None and change.based_on is not None:
            cur.execute(self._sql("SELECT updated_s FROM control_rollouts WHERE id = ?"), (row.id,))
            found = cur.fetchone()
            if found is None or float(found[0]) != change.based_on:
                raise RolloutError(
                    f"rollout {row.id} changed meanwhile (another request or replica decided "
                    "first); read it again and retry"
                )
        if row is not None and change.active_seen is not None:
            cur.execute(self._sql(_ACTIVE_OF_BUNDLE), (row.bundle, *sorted(ACTIVE_STATES)))
            active = {str(r[0]) for r in cur.fetchall()} - {row.id}
            if active != set(change.active_seen):
                started = ", ".join(sorted(active - set(change.active_seen))) or "none"
                raise RolloutError(
                    f"another rollout of {row.bundle} started meanwhile ({started}); abort it "
                    "or wait for it to finish"
                )
        if change.lease is not None:
            holder, now_s = change.lease
            sql = "SELECT holder, expires_s FROM control_leases WHERE name = ?"
            cur.execute(self._sql(sql), (LEASE_NAME,))
            found = cur.fetchone()
            if found is None or found[0] != holder or float(found[1]) <= now_s:
                raise RolloutError(f"replica {holder} no longer holds the rollout lease")

    def acquire_lease(self, holder: str, ttl_s: float, now_s: float) -> bool:
        _text("holder", holder)
        if _number("ttl_s", ttl_s) <= 0:
            raise ConfigError("ttl_s", "a number > 0", ttl_s)
        now_s = _number("now_s", now_s)
        with self._session(write=True) as cur:
            cur.execute(self._sql(_ACQUIRE), (LEASE_NAME, holder, now_s + ttl_s, now_s))
            return len(cur.fetchall()) > 0

    def release_lease(self, holder: str) -> None:
        with self._session(write=True) as cur:
            sql = "DELETE FROM control_leases WHERE name = ? AND holder = ?"
            cur.execute(self._sql(sql), (LEASE_NAME, holder))


class SqliteControlStore(SqlControlStore):
    """A :class:`~tierwise.control.store.ControlStore` in the SQLite file at ``path``
    (created, with its parent folder, when missing)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        super().__init__()
        if (
            isinstance(busy_timeout_s, bool)
            or not isinstance(busy_timeout_s, int | float)
            or not busy_timeout_s >= 0
        ):
            raise ConfigError("busy_timeout_s", "a number >= 0", busy_timeout_s)
        self.path = str(path)
        if not self.path:
            raise ConfigError("store", "a SQLite file path", self.path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = open_database(self.path, _SCHEMA, timeout_s=busy_timeout_s)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                "store", "a SQLite file that can be opened", f"{path}: {exc}"
            ) from exc
        try:
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._check_schema(self._conn.cursor())
        except BaseException:
            self._conn.close()
            raise

    @property
    def kind(self) -> str:
        return "sqlite"

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Cursor]:
        with self._lock:
            try:
                cur = self._conn.cursor()
            except sqlite3.Error as exc:
                raise self._failure(exc) from exc
            try:
                if write:
                    cur.execute("BEGIN IMMEDIATE")
                yield cur
                if write:
                    cur.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    with suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._failure(exc) from exc
                raise
            finally:
                cur.close()

    def _failure(self, exc: sqlite3.Error) -> TierwiseError:
        return TierwiseError(f"control store (sqlite {self.path}): {exc}")
