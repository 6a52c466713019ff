"""Push, pull and verify: the checks that make a store safe to pull from.

``pull`` resolves a reference to a manifest digest once and then works by digest only,
so a tag that moves mid-pull cannot mix two versions. In order, it checks: the manifest's
size (before reading it whole), its digest, the signature against the trusted keys
(before the manifest is parsed), the manifest's structure and paths, that it is the
bundle asked for, and each blob's size and digest while it streams into a temporary
file. Blobs the destination already holds are not fetched again.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from tierwise.errors import BundleError, IntegrityError
from tierwise.registry.bundle import BundleDir
from tierwise.registry.local import LocalStore
from tierwise.registry.manifest import MAX_MANIFEST_BYTES, BundleManifest, parse_manifest
from tierwise.registry.signing import Signer, TrustStore
from tierwise.registry.store import BundleStore, StoredBundle

__all__ = ["PullReport", "PushReport", "VerifyReport", "pull", "push", "verify"]


@dataclass
class PushReport:
    name: str
    version: str
    digest: str
    key_id: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    uploaded_bytes: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "key_id": self.key_id,
            "uploaded_blobs": len(self.uploaded),
            "skipped_blobs": len(self.skipped),
            "uploaded_bytes": self.uploaded_bytes,
        }


@dataclass
class PullReport:
    manifest: BundleManifest
    digest: str
    key_id: str
    fetched: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    fetched_bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.manifest.name,
            "version": self.manifest.version,
            "digest": self.digest,
            "key_id": self.key_id,
            "fetched_blobs": len(self.fetched),
            "reused_blobs": len(self.reused),
            "fetched_bytes": self.fetched_bytes,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class VerifyReport:
    manifest: BundleManifest
    digest: str
    key_id: str
    blobs: int
    checked_bytes: int

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.manifest.name,
            "version": self.manifest.version,
            "digest": self.digest,
            "key_id": self.key_id,
            "blobs": self.blobs,
            "checked_bytes": self.checked_bytes,
            "ok": True,
        }


def _blobs(manifest: BundleManifest, variants: list[str] | None) -> list[tuple[str, int]]:
    """``(digest, size)`` of each distinct blob (models and drift references) of the
    variants called ``variants`` (all for None), in manifest order."""
    sizes: dict[str, int] = {}
    for variant in manifest.chosen(variants):
        for blob_digest, size in variant.blobs():
            sizes.setdefault(blob_digest, size)
    return list(sizes.items())


def push(
    bundle: BundleDir, store: BundleStore, signer: Signer, *, tags: list[str] | None = None
) -> PushReport:
    """Sign a bundle directory and put it in ``store``; blobs the store has are skipped."""
    manifest = bundle.manifest
    signature = signer.sign(bundle.manifest_bytes)
    report = PushReport(manifest.name, manifest.version, manifest.digest, signer.key_id)
    for blob_digest, size in _blobs(manifest, None):
        sent = store.put_blob(manifest.name, blob_digest, size, bundle.blob(blob_digest))
        (report.uploaded if sent else report.skipped).append(blob_digest)
        report.uploaded_bytes += size if sent else 0
    store.put_manifest(
        StoredBundle(
            manifest.name, manifest.version, manifest.digest, bundle.manifest_bytes, signature
        ),
        tags=list(tags or []),
    )
    return report


def _checked_manifest(
    stored: StoredBundle, trust: TrustStore, *, name: str, limit_bytes: int
) -> tuple[BundleManifest, str]:
    where = f"{name}@{stored.digest}"
    key_id = trust.verify(stored.manifest_bytes, stored.signature, bundle=where)
    manifest = parse_manifest(stored.manifest_bytes, limit_bytes=limit_bytes)
    if manifest.name != name:
        raise BundleError(
            f"manifest check failed: it names the bundle {manifest.name!r}, not {name!r}",
            bundle=where,
        )
    return manifest, key_id


def pull(
    source: BundleStore,
    name: str,
    reference: str,
    into: LocalStore,
    trust: TrustStore,
    *,
    limit_bytes: int = MAX_MANIFEST_BYTES,
    tags: list[str] | None = None,
    variants: list[str] | None = None,
) -> PullReport:
    """Fetch and check one bundle version from ``source`` into the local store ``into``;
    with ``variants``, only their blobs (an edge node skips the cloud's models).
    Nothing becomes visible in ``into`` unless every check passed."""
    started = time.monotonic()
    locator = source.resolve(name, reference)
    stored = source.get_manifest(name, locator, limit_bytes=limit_bytes)
    manifest, key_id = _checked_manifest(stored, trust, name=name, limit_bytes=limit_bytes)
    report = PullReport(manifest, stored.digest, key_id)
    seen: set[str] = set()
    for blob_digest, size in _blobs(manifest, variants):
        seen.add(blob_digest)
        if into.has_blob(name, blob_digest):
            report.reused.append(blob_digest)
            continue
        with into.writer(blob_digest, size, bundle=manifest.ref) as writer:
            source.read_blob(name, blob_digest, size, writer)
            writer.commit(into.blob_path(blob_digest))
        report.fetched.append(blob_digest)
        report.fetched_bytes += size
    into.put_manifest(
        StoredBundle(
            name, manifest.version, stored.digest, stored.manifest_bytes, stored.signature
        ),
        tags=list(tags or []),
        required=sorted(seen),
    )
    report.seconds = time.monotonic() - started
    return report


class _HashSink:
    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.hash.update(chunk)
        self.size += len(chunk)


def verify(
    store: BundleStore,
    name: str,
    reference: str,
    trust: TrustStore,
    *,
    limit_bytes: int = MAX_MANIFEST_BYTES,
    variants: list[str] | None = None,
) -> VerifyReport:
    """Check a stored version end to end: signature, manifest, and every blob (or those of
    ``variants``) re-read and re-hashed. Raises the error of the first check that fails."""
    stored = store.get_manifest(name, store.resolve(name, reference), limit_bytes=limit_bytes)
    manifest, key_id = _checked_manifest(stored, trust, name=name, limit_bytes=limit_bytes)
    checked = 0
    blobs = 0
    sizes = dict(_blobs(manifest, variants))
    for blob_digest, size in sorted(sizes.items()):
        sink = _HashSink()
        store.read_blob(name, blob_digest, size, sink)
        got = "sha256:" + sink.hash.hexdigest()
        if sink.size != size:
            raise IntegrityError(
                "size",
                f"blob {blob_digest} has {sink.size} bytes, the manifest gives {size}",
                bundle=manifest.ref,
            )
        if got != blob_digest:
            raise IntegrityError(
                "digest", f"blob {blob_digest} hashes to {got}", bundle=manifest.ref
            )
        checked += size
        blobs += 1
    return VerifyReport(manifest, stored.digest, key_id, blobs, checked)
