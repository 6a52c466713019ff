"""Resolve what a rollout names in the registry before any node moves: the reference
must name a pushed version of the bundle whose manifest is signed by a trusted key.
Nodes are then told the manifest's digest, so a tag moved later cannot change what the
rollout ships."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from tierwise.control.settings import RegistrySettings
from tierwise.errors import BundleError
from tierwise.registry import (
    MAX_MANIFEST_BYTES,
    BundleStore,
    TrustStore,
    open_store,
    parse_manifest,
)

__all__ = ["Resolved", "Resolver"]


@dataclass(frozen=True, slots=True)
class Resolved:
    bundle: str
    version: str
    digest: str
    key_id: str


class Resolver:
    """Resolves and checks bundle references in one registry (thread-safe)."""

    def __init__(self, settings: RegistrySettings, env: Mapping[str, str]) -> None:
        self.settings = settings
        self.trust = TrustStore.from_paths(settings.trusted_keys)
        self.password = env.get(settings.password_env) if settings.password_env else None
        self._store: BundleStore | None = None
        self._lock = threading.Lock()

    def _open(self) -> BundleStore:
        if self._store is None:
            s = self.settings
            self._store = open_store(
                s.store,
                plain_http=s.plain_http,
                timeout_s=s.timeout_s,
                username=s.username,
                password=self.password,
            )
        return self._store

    def check(self) -> None:
        """Open a store on this machine now, so a folder that is not a bundle store fails
        the start (an OCI registry is reached at the first rollout: it may be down a
        while, and the control plane serves its nodes meanwhile)."""
        if not str(self.settings.store).startswith("oci://"):
            with self._lock:
                self._open()

    def resolve(self, bundle: str, reference: str) -> Resolved:
        """The signed version ``reference`` names; BundleNotFoundError, SignatureError or
        BundleError say what is wrong with it."""
        with self._lock:
            store = self._open()
            digest = store.resolve(bundle, reference)
            stored = store.get_manifest(bundle, digest, limit_bytes=MAX_MANIFEST_BYTES)
        where = f"{bundle}@{stored.digest}"
        key_id = self.trust.verify(stored.manifest_bytes, stored.signature, bundle=where)
        manifest = parse_manifest(stored.manifest_bytes, limit_bytes=MAX_MANIFEST_BYTES)
        if manifest.name != bundle:
            raise BundleError(f"the manifest names the bundle {manifest.name!r}", bundle=where)
        return Resolved(bundle, manifest.version, stored.digest, key_id)

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
