"""A throwaway PostgreSQL server for the tests: Debian's ``postgresql`` package, started on a
free loopback port with its data and its socket in a temporary folder, stopped and deleted
afterwards.

PostgreSQL refuses to run as root, so under root the server runs as the ``postgres``
system user (which Debian's package creates) and owns its folder. Missing binaries fail
the test under ``CI=true`` and skip it elsewhere, naming the command that installs them.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

from binaries import INSTALL_HINT, in_ci
from server_helpers import free_port

__all__ = ["PostgresServer", "find_postgres_bin", "postgres_server", "require_psycopg"]

#: Where Debian's package puts each major version's binaries (not on PATH).
DEBIAN_GLOB = "/usr/lib/postgresql/*/bin"
USER = "tierwise"


def _missing(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} [CI=true: a missing dependency is a failure]", pytrace=False)
    pytest.skip(reason)


def find_postgres_bin() -> Path:
    """The folder holding ``initdb`` and ``postgres``: PATH first, then Debian's
    ``/usr/lib/postgresql/<N>/bin`` (the newest N)."""
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb is not None and postgres is not None:
        folder = Path(initdb).resolve().parent
        if (folder / "postgres").exists():
            return folder
    candidates = [Path(p) for p in glob.glob(DEBIAN_GLOB) if (Path(p) / "postgres").exists()]
    candidates.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if candidates:
        return candidates[-1]
    _missing(
        f"PostgreSQL (initdb, postgres) is not installed: run {INSTALL_HINT}, "
        "or apt-get install postgresql"
    )


def require_psycopg() -> None:
    """psycopg, the driver of the PostgreSQL store: present, or a failure under CI."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg is not installed: pip install -e '.[dev]' (or 'tierwise[postgres]')")


class PostgresServer:
    """A running server; :meth:`create_database` gives each test a database of its own."""

    def __init__(self, port: int, folder: Path, process: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.folder = folder
        self.process = process
        self._names = itertools.count(1)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; its DSN."""
        import psycopg
        from psycopg import sql

        name = f"t{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _as_owner(owner: pwd.struct_passwd | None) -> dict[str, Any]:
    return {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid}


@contextmanager
def postgres_server(*, fsync: bool = False) -> Iterator[PostgresServer]:
    """Start a server (``fsync`` off by default: the tests never crash the machine)."""
    require_psycopg()
    import psycopg

    bin_dir = find_postgres_bin()
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root needs the 'postgres' user (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="tierwise-pg-"))
    try:
        if owner is not None:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        data = folder / "data"
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust",
             "--encoding=UTF8", "--no-locale", "--no-sync"],
            check=True, capture_output=True, timeout=120, cwd=folder, **_as_owner(owner),
        )  # fmt: skip
        port = free_port()
        settings = ["listen_addresses=127.0.0.1", f"fsync={'on' if fsync else 'off'}"]
        with (folder / "server.log").open("wb") as log:
            process = subprocess.Popen(
                [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder),
                 *itertools.chain.from_iterable(("-c", s) for s in settings)],
                stdout=log, stderr=log, cwd=folder, **_as_owner(owner),
            )  # fmt: skip
        server = PostgresServer(port, folder, process)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    psycopg.connect(server.dsn(), connect_timeout=2).close()
                    break
                except psycopg.OperationalError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"postgres did not start:\n{server.log()}") from None
                    time.sleep(0.1)
            yield server
        finally:
            process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
