"""Open the control store a URL names: a SQLite file by default, PostgreSQL for replicas.

PostgreSQL's driver is an optional extra (``tierwise[postgres]``), imported only when a
``postgresql://`` URL asks for it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from tierwise.control.store import ControlStore
from tierwise.control.store_sqlite import SqliteControlStore
from tierwise.errors import ConfigError

__all__ = ["STORE_URL_EXPECTED", "open_control_store", "redact_dsn"]

STORE_URL_EXPECTED = "a SQLite file path, sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
_POSTGRES = ("postgresql://", "postgres://")

_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***`` (URL or ``key=value`` form)."""
    try:
        parts = urlsplit(dsn)
        if parts.password:
            user = parts.username or ""
            host = parts.netloc.rpartition("@")[2]
            dsn = parts._replace(netloc=f"{user}:***@{host}").geturl()
    except ValueError:
        pass
    return _PASSWORD.sub(r"\1***", dsn)


def open_control_store(url: str) -> ControlStore:
    """The store at ``url``: a path to a SQLite file (``sqlite:///PATH`` alike, PATH taken
    as written, relative or absolute), or a ``postgresql://`` / ``postgres://`` DSN."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("store", STORE_URL_EXPECTED, url)
    if url.startswith(_POSTGRES):
        try:
            from tierwise.control.store_postgres import PostgresControlStore
        except ImportError as exc:
            raise ConfigError(
                "store",
                "the psycopg driver for a PostgreSQL store: pip install 'tierwise[postgres]'",
            ) from exc
        return PostgresControlStore(url)
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:///")
        if path == url or not path:
            raise ConfigError("store", STORE_URL_EXPECTED, url)
        return SqliteControlStore(path)
    if "://" in url:
        raise ConfigError("store", STORE_URL_EXPECTED, redact_dsn(url))
    return SqliteControlStore(url)
