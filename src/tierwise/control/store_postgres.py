"""The control store in PostgreSQL: one database shared by several control plane replicas.

psycopg 3's sync API, one autocommit connection per store guarded by a lock, reopened on
the next call when the server dropped it. Writes run in one transaction each; a decision
first takes a transaction-scoped advisory lock, so audit seqs are assigned in commit order
and a reader following ``after_seq`` never skips an entry committed late. The leader lease
is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement: race-free across replicas
without any lock of ours. Messages name the server as ``host:port``, never the password.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tierwise.control.store import SCHEMA, SCHEMA_VERSION
from tierwise.control.store_open import redact_dsn
from tierwise.control.store_sqlite import Cursor, SqlControlStore
from tierwise.errors import ConfigError, TierwiseError

__all__ = ["PostgresControlStore"]

_SCHEMA = SCHEMA.format(real="DOUBLE PRECISION", version=SCHEMA_VERSION)
# pg_advisory_xact_lock keys: one for schema creation, one for decisions
_SCHEMA_LOCK = 0x7477_0001
_DECISION_LOCK = 0x7477_0002


class PostgresControlStore(SqlControlStore):
    """A :class:`~tierwise.control.store.ControlStore` in the PostgreSQL database ``dsn``
    names (a ``postgresql://`` URL or a libpq ``key=value`` string). The schema is created
    when missing; ``connect_timeout_s`` applies unless the DSN sets ``connect_timeout``."""

    def __init__(self, dsn: str, *, connect_timeout_s: float = 10.0) -> None:
        super().__init__()
        if isinstance(connect_timeout_s, bool) or not isinstance(connect_timeout_s, int | float):
            raise ConfigError("connect_timeout_s", "a number > 0", connect_timeout_s)
        if not connect_timeout_s > 0:
            raise ConfigError("connect_timeout_s", "a number > 0", connect_timeout_s)
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.Error as exc:
            reason = redact_dsn(" ".join(str(exc).split()))
            raise ConfigError(
                "store", "a PostgreSQL URL or DSN", f"{redact_dsn(dsn)}: {reason}"
            ) from exc
        self._password = str(params.get("password") or "")
        host = params.get("host") or params.get("hostaddr") or "localhost"
        self.address = f"{host}:{params.get('port') or 5432}"
        self.database = str(params.get("dbname") or params.get("user") or "")
        extra: dict[str, Any] = {"application_name": "tierwise-control"}
        if "connect_timeout" not in params:
            extra["connect_timeout"] = max(1, round(connect_timeout_s))
        self._conninfo = make_conninfo(dsn, **extra)
        self._closed = False
        self._conn = self._connect(opening=True)
        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                cur.execute(_SCHEMA)
                self._check_schema(cur)
        except psycopg.Error as exc:
            self._conn.close()
            raise self._failure(exc) from exc
        except BaseException:
            self._conn.close()
            raise

    @property
    def kind(self) -> str:
        return "postgresql"

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._closed = True
            self._conn.close()

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def _serialize(self, cur: Cursor) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_DECISION_LOCK,))

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Cursor]:
        with self._lock:
            if self._closed:
                raise TierwiseError(f"{self._where()}: the store is closed")
            if self._conn.closed:  # also when the server broke the connection
                with suppress(psycopg.Error):
                    self._conn.close()
                self._conn = self._connect(opening=False)
            try:
                with self._conn.cursor() as cur:
                    if write:
                        with self._conn.transaction():
                            yield cur
                    else:
                        yield cur
            except psycopg.Error as exc:
                raise self._failure(exc) from exc

    def _connect(self, *, opening: bool) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            if opening:
                raise ConfigError(
                    "store", f"a PostgreSQL server reachable at {self.address}", self._reason(exc)
                ) from exc
            raise self._failure(exc) from exc

    def _reason(self, exc: psycopg.Error) -> str:
        reason = " ".join(str(exc).split())
        return reason.replace(self._password, "***") if self._password else reason

    def _where(self) -> str:
        return f"control store (postgresql {self.address}/{self.database})"

    def _failure(self, exc: psycopg.Error) -> TierwiseError:
        return TierwiseError(f"{self._where()}: {self._reason(exc)}")
