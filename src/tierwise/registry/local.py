"""The embedded store: a folder of content-addressed blobs plus a SQLite index.

::

    ROOT/index.db              versions, tags, manifests and their signatures
    ROOT/blobs/sha256/<hex>    one file per distinct blob, shared by every version
    ROOT/tmp/                  partial writes; emptied whenever the store is opened

A blob becomes visible only after it was written whole, fsynced and checked (see
:class:`~tierwise.registry.digest.BlobWriter`), and a version only once all its blobs
are in place, in one transaction; so a crash at any point leaves no half-installed
version, and the next open removes the partial files.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import orjson

from tierwise.database import open_database
from tierwise.errors import BundleExistsError, BundleNotFoundError, IntegrityError, RegistryError
from tierwise.registry.digest import BlobWriter, check_digest, digest_bytes
from tierwise.registry.manifest import check_version, parse_manifest
from tierwise.registry.store import BlobSink, BundleRow, BundleStore, StoredBundle, latest_hint

__all__ = ["GcReport", "LocalStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS manifests (
    digest TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    body BLOB NOT NULL,
    signature BLOB
);
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    digest TEXT NOT NULL REFERENCES manifests (digest),
    pushed_s REAL NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT NOT NULL,
    tag TEXT NOT NULL,
    version TEXT NOT NULL,
    updated_s REAL NOT NULL,
    PRIMARY KEY (name, tag)
);
"""
_CHUNK = 1024 * 1024


class GcReport:
    def __init__(self, removed_blobs: list[str], freed_bytes: int, removed_partials: int) -> None:
        self.removed_blobs = removed_blobs
        self.freed_bytes = freed_bytes
        self.removed_partials = removed_partials

    def to_dict(self) -> dict[str, object]:
        return {
            "removed_blobs": len(self.removed_blobs),
            "freed_bytes": self.freed_bytes,
            "removed_partials": self.removed_partials,
        }


class LocalStore(BundleStore):
    """A registry in a folder. Safe to share between threads of one process."""

    def __init__(self, root: Path, *, create: bool = True) -> None:
        """Open the store at ``root``; ``create`` makes it when it is not there (writers:
        push, pull's target), else a missing store is BundleNotFoundError and nothing is
        made (readers: list, show, verify; see :meth:`missing`)."""
        self.root = Path(root)
        self.location = str(self.root)
        if not create and (reason := self.missing(self.root)) is not None:
            raise BundleNotFoundError(reason)
        self.blobs = self.root / "blobs" / "sha256"
        self.tmp = self.root / "tmp"
        self._lock = threading.Lock()
        try:
            if create:
                self.blobs.mkdir(parents=True, exist_ok=True)
            self._process_lock = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RegistryError(f"cannot open the store at {self.root}: {exc}") from exc
        # Partial files are removed only by a process that has the store to itself: one
        # that finds others using it leaves their downloads alone.
        self.removed_partials = 0
        if self._try_exclusive():
            self.removed_partials = self._clean_tmp()
        fcntl.flock(self._process_lock, fcntl.LOCK_SH)
        try:
            self._db = open_database(self.root / "index.db", _SCHEMA)
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot open the store index at {self.root}: {exc}") from exc

    @staticmethod
    def missing(root: Path) -> str | None:
        """Why there is no store at ``root`` (None when there is one), and how to make one."""
        make = f"create one with `tierwise registry push BUNDLE --store {root} --key KEY`"
        if not root.exists():
            return f"no store at {root} ({make})"
        if not root.is_dir():
            return f"no store at {root}: it is a file, not a store folder ({make})"
        if not (root / "index.db").is_file():
            return f"no store at {root}: the folder has no index.db, so it is not a store ({make})"
        return None

    def _try_exclusive(self) -> bool:
        try:
            fcntl.flock(self._process_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _clean_tmp(self) -> int:
        if not self.tmp.exists():
            return 0
        count = sum(1 for _ in self.tmp.iterdir())
        shutil.rmtree(self.tmp, ignore_errors=True)
        return count

    @contextmanager
    def _index(self) -> Iterator[sqlite3.Connection]:
        """The index, one thread at a time; its errors become RegistryError, and an open
        transaction is rolled back."""
        with self._lock:
            try:
                yield self._db
            except BaseException as exc:
                if self._db.in_transaction:
                    with suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise RegistryError(f"store index at {self.root} failed: {exc}") from exc
                raise

    def blob_path(self, digest: str) -> Path:
        return self.blobs / check_digest(digest)[7:]

    def writer(self, digest: str, size_bytes: int, *, bundle: str | None = None) -> BlobWriter:
        """A writer whose commit puts the blob in place."""
        return BlobWriter(self.tmp, digest, size_bytes, bundle=bundle)

    # -- reads -------------------------------------------------------------------------

    def resolve(self, name: str, reference: str) -> str:
        with self._index():
            if self.is_digest(reference):
                row = self._db.execute(
                    "SELECT digest FROM manifests WHERE digest = ? AND name = ?", (reference, name)
                ).fetchone()
            else:  # a version's name means that version, before any tag
                row = (
                    self._db.execute(
                        "SELECT digest FROM versions WHERE name = ? AND version = ?",
                        (name, reference),
                    ).fetchone()
                    or self._db.execute(
                        "SELECT v.digest FROM versions v JOIN tags t ON t.name = v.name AND "
                        "t.version = v.version WHERE t.name = ? AND t.tag = ?",
                        (name, reference),
                    ).fetchone()
                )
        if row is None:
            with self._index():
                names = [r[0] for r in self._db.execute("SELECT DISTINCT name FROM versions")]
            if name not in names:
                known = ", ".join(sorted(names)) or "none yet"
                raise BundleNotFoundError(
                    f"no bundle {name!r} in {self.location} (bundles: {known})", bundle=name
                )
            raise BundleNotFoundError(
                f"no version, tag or digest {reference!r} in {self.location}"
                + latest_hint(reference),
                bundle=name,
            )
        return str(row[0])

    def get_manifest(self, name: str, digest: str, *, limit_bytes: int) -> StoredBundle:
        with self._index():
            row = self._db.execute(
                "SELECT name, version, body, signature FROM manifests WHERE digest = ?", (digest,)
            ).fetchone()
        if row is None or row[0] != name:
            raise BundleNotFoundError(f"no manifest {digest} in {self.location}", bundle=name)
        body = bytes(row[2])
        if len(body) > limit_bytes:
            raise IntegrityError(
                "manifest-size", f"{len(body)} bytes, the limit is {limit_bytes}", bundle=name
            )
        if digest_bytes(body) != digest:
            raise IntegrityError(
                "manifest-digest",
                f"stored manifest hashes to {digest_bytes(body)}, not {digest}",
                bundle=name,
            )
        return StoredBundle(name, str(row[1]), digest, body, bytes(row[3]) if row[3] else None)

    def has_blob(self, name: str, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, name: str, digest: str, size_bytes: int, sink: BlobSink) -> None:
        path = self.blob_path(digest)
        try:
            with path.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    sink.write(chunk)
        except FileNotFoundError as exc:
            raise BundleNotFoundError(f"no blob {digest} in {self.location}", bundle=name) from exc
        except OSError as exc:
            raise RegistryError(f"cannot read blob {digest}: {exc}", bundle=name) from exc

    def list_bundles(self, name: str | None = None) -> list[BundleRow]:
        query = (
            "SELECT v.name, v.version, v.digest, m.body FROM versions v "
            "JOIN manifests m ON m.digest = v.digest"
        )
        args: tuple[str, ...] = ()
        if name is not None:
            query += " WHERE v.name = ?"
            args = (name,)
        with self._index():
            rows = self._db.execute(query + " ORDER BY v.name, v.pushed_s", args).fetchall()
            tags = self._db.execute("SELECT name, tag, version FROM tags ORDER BY tag").fetchall()
        out: list[BundleRow] = []
        for row_name, version, digest, body in rows:
            manifest = orjson.loads(body)
            out.append(
                BundleRow(
                    name=row_name,
                    version=version,
                    digest=digest,
                    tags=[t for n, t, v in tags if n == row_name and v == version],
                    size_bytes=sum(v["size_bytes"] for v in manifest["variants"]),
                    created_at=manifest.get("created_at", ""),
                    variants=[v["name"] for v in manifest["variants"]],
                )
            )
        return out

    # -- writes ------------------------------------------------------------------------

    def put_blob(self, name: str, digest: str, size_bytes: int, path: Path) -> bool:
        if self.has_blob(name, digest):
            return False
        try:
            with path.open("rb") as f, self.writer(digest, size_bytes, bundle=name) as writer:
                while chunk := f.read(_CHUNK):
                    writer.write(chunk)
                writer.commit(self.blob_path(digest))
        except OSError as exc:
            raise RegistryError(f"cannot read {path}: {exc}", bundle=name) from exc
        return True

    def put_manifest(
        self, bundle: StoredBundle, *, tags: list[str], required: list[str] | None = None
    ) -> None:
        """Record a version; ``required`` lists the blobs that must be here (all of the
        manifest's by default; a node keeps only the variants it serves)."""
        manifest = parse_manifest(bundle.manifest_bytes)
        if digest_bytes(bundle.manifest_bytes) != bundle.digest:
            raise IntegrityError("manifest-digest", "bytes and digest differ", bundle=bundle.name)
        wanted = manifest.blob_digests() if required is None else required
        missing = [d for d in wanted if not self.has_blob(bundle.name, d)]
        if missing:
            raise IntegrityError(
                "blobs", f"blob(s) {', '.join(missing)} are not in the store", bundle=bundle.name
            )
        now = time.time()
        with self._index():
            existing = self._db.execute(
                "SELECT digest FROM versions WHERE name = ? AND version = ?",
                (bundle.name, bundle.version),
            ).fetchone()
            if existing is not None and existing[0] != bundle.digest:
                raise BundleExistsError(
                    f"version {bundle.version} already exists with manifest {existing[0]}; "
                    "versions are immutable, push a new version",
                    bundle=bundle.name,
                )
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO manifests (digest, name, version, body, signature) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (digest) DO UPDATE SET "
                "signature = coalesce(excluded.signature, manifests.signature)",
                (bundle.digest, bundle.name, bundle.version, bundle.manifest_bytes,
                 bundle.signature),
            )  # fmt: skip
            if existing is None:
                self._db.execute(
                    "INSERT INTO versions (name, version, digest, pushed_s) VALUES (?, ?, ?, ?)",
                    (bundle.name, bundle.version, bundle.digest, now),
                )
                # a tag that had this name now means the version (as in an OCI registry,
                # where the version's push replaces it)
                self._db.execute(
                    "DELETE FROM tags WHERE name = ? AND tag = ?", (bundle.name, bundle.version)
                )
            for tag in tags:
                self._set_tag(bundle.name, tag, bundle.version, now)
            self._db.execute("COMMIT")

    def _set_tag(self, name: str, tag: str, version: str, now: float) -> None:
        check_version(tag, "tag")
        if tag == version:
            return
        self._db.execute(
            "INSERT INTO tags (name, tag, version, updated_s) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name, tag) DO UPDATE SET version = excluded.version, "
            "updated_s = excluded.updated_s",
            (name, tag, version, now),
        )

    def set_tag(self, name: str, tag: str, version: str) -> None:
        with self._index():
            known = self._db.execute(
                "SELECT 1 FROM versions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
            if known is None:
                raise BundleNotFoundError(f"no version {version!r} to tag", bundle=name)
            taken = self._db.execute(
                "SELECT 1 FROM versions WHERE name = ? AND version = ?", (name, tag)
            ).fetchone()
            if taken is not None:
                raise BundleExistsError(
                    f"{tag!r} is a version; a tag cannot take a version's name", bundle=name
                )
            self._set_tag(name, tag, version, time.time())

    def delete_version(self, name: str, version: str) -> None:
        """Forget a version and its tags (its blobs go at the next :meth:`gc`)."""
        with self._index():
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM versions WHERE name = ? AND version = ?", (name, version))
            self._db.execute("DELETE FROM tags WHERE name = ? AND version = ?", (name, version))
            self._db.execute(
                "DELETE FROM manifests WHERE name = ? AND version = ? AND digest NOT IN "
                "(SELECT digest FROM versions)",
                (name, version),
            )
            self._db.execute("COMMIT")

    def gc(self) -> GcReport:
        """Delete blobs no version refers to, and partial files. Needs the store to itself:
        RegistryError when another process has it open (a blob it is adding is not
        referenced yet)."""
        if not self._try_exclusive():
            raise RegistryError(
                f"{self.root} is in use by another process; garbage collection needs it alone"
            )
        try:
            return self._gc()
        finally:
            fcntl.flock(self._process_lock, fcntl.LOCK_SH)

    def _gc(self) -> GcReport:
        with self._index():
            bodies = [
                bytes(r[0])
                for r in self._db.execute(
                    "SELECT m.body FROM manifests m JOIN versions v ON v.digest = m.digest"
                )
            ]
        referenced: set[str] = set()
        for body in bodies:
            for variant in orjson.loads(body)["variants"]:
                referenced.add(variant["digest"][7:])
                if variant.get("reference"):  # a drift reference travels as a blob too
                    referenced.add(variant["reference"]["digest"][7:])
        # a blob being written now is in tmp/ and is not touched; gc runs between pulls
        removed: list[str] = []
        freed = 0
        try:
            for path in self.blobs.iterdir():
                if path.name not in referenced:
                    freed += path.stat().st_size
                    path.unlink()
                    removed.append("sha256:" + path.name)
        except OSError as exc:
            raise RegistryError(f"garbage collection in {self.root} failed: {exc}") from exc
        partials, self.removed_partials = self._clean_tmp() + self.removed_partials, 0
        return GcReport(removed, freed, partials)

    def close(self) -> None:
        with self._lock:
            self._db.close()
        os.close(self._process_lock)  # releases the process lock
