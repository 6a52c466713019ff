"""The store contract every backend implements (a local folder, an OCI registry).

A store keeps manifests (with their signature document) by digest, content-addressed
blobs, immutable versions and movable tags. Stores move bytes; checking them is the job
of :mod:`tierwise.registry.sync`, which never trusts a store: digests, sizes and
signatures are checked on the node that uses a bundle.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tierwise.errors import BundleError
from tierwise.registry.digest import DIGEST_PATTERN

__all__ = ["BlobSink", "BundleRow", "BundleStore", "StoredBundle", "parse_ref"]

_REF = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9._-]{0,62})(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127})|@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


def latest_hint(reference: str) -> str:
    """What to add to a "not found" for ``reference``: the default tag was not asked for."""
    if reference != "latest":
        return ""
    return " (a bare NAME means NAME:latest; give NAME:VERSION or NAME:TAG)"


def parse_ref(ref: str, *, default_tag: str = "latest") -> tuple[str, str]:
    """``name``, ``name:tag-or-version`` or ``name@sha256:...`` -> (name, reference)."""
    match = _REF.match(ref)
    if match is None:
        raise BundleError(
            f"reference {ref!r}: expected NAME, NAME:VERSION, NAME:TAG or NAME@sha256:<hex>"
        )
    return match["name"], match["digest"] or match["tag"] or default_tag


class BlobSink(Protocol):
    def write(self, chunk: bytes) -> None: ...


@dataclass(frozen=True)
class StoredBundle:
    """A manifest as a store keeps it: exact bytes, digest, signature document."""

    name: str
    version: str
    digest: str
    manifest_bytes: bytes
    signature: bytes | None


@dataclass
class BundleRow:
    """One version in a listing."""

    name: str
    version: str
    digest: str
    tags: list[str] = field(default_factory=list)
    size_bytes: int = 0
    created_at: str = ""
    variants: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "tags": self.tags,
            "size_bytes": self.size_bytes,
            "created_at": self.created_at,
            "variants": self.variants,
        }


class BundleStore(abc.ABC):
    """Where bundles live. Override every abstract method; all are blocking (call them
    from a worker thread inside async code)."""

    #: where the store is, for messages (a folder or ``oci://host/prefix``)
    location: str = ""

    @abc.abstractmethod
    def resolve(self, name: str, reference: str) -> str:
        """The manifest digest a version, tag or digest reference points at."""

    @abc.abstractmethod
    def get_manifest(self, name: str, digest: str, *, limit_bytes: int) -> StoredBundle:
        """The manifest with this digest; refuses one larger than ``limit_bytes`` before
        reading it all, and one whose bytes do not hash to ``digest``."""

    @abc.abstractmethod
    def has_blob(self, name: str, digest: str) -> bool: ...

    @abc.abstractmethod
    def read_blob(self, name: str, digest: str, size_bytes: int, sink: BlobSink) -> None:
        """Stream a blob into ``sink`` (which checks size and digest)."""

    @abc.abstractmethod
    def put_blob(self, name: str, digest: str, size_bytes: int, path: Path) -> bool:
        """Store a blob from a file unless it is there already; True when it was sent."""

    @abc.abstractmethod
    def put_manifest(
        self, bundle: StoredBundle, *, tags: list[str], required: list[str] | None = None
    ) -> None:
        """Record a version (its blobs, or the ``required`` ones, must be in the store) and
        point ``tags`` at it. BundleExistsError when the version exists with different
        content."""

    @abc.abstractmethod
    def set_tag(self, name: str, tag: str, version: str) -> None: ...

    @abc.abstractmethod
    def list_bundles(self, name: str | None = None) -> list[BundleRow]: ...

    def close(self) -> None:
        """Release connections (nothing by default)."""
        return None

    @staticmethod
    def is_digest(reference: str) -> bool:
        return bool(DIGEST_PATTERN.match(reference))
