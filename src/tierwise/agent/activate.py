"""Turning a verified bundle version into what the tier server serves, and back.

One :class:`Activator` per bundle the node syncs: it swaps that bundle's models only, so
the other bundles' models serve on, untouched, through its activations, failures and
rollbacks. The activators of a node share one lock (one activation at a time) and one
state file. An activation verifies the served variants in the node's own store (signature, sizes,
digests), lays them out as a new generation, hot-swaps every served model and only then
records the new state; the generations it replaced are deleted after the state is saved,
so a crash at any point leaves the state naming a generation that is on disk. Rollback
and repair work from the node's own store and need no network, and so does a sync whose
desired reference names a version the node keeps for rollback (by version or by
``sha256:`` digest): a control plane's rollback is then as fast as a local one, and works
while the registry is down. It is verified all the same. A reference naming the active
version is still resolved against the registry, so a registry the node can no longer
reach, or that refuses its credentials, shows in the status while the node serves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection

from tierwise.agent.install import Installer
from tierwise.agent.result import SyncResult
from tierwise.agent.settings import BundlePart
from tierwise.agent.state import Activation, AgentState, BundleState
from tierwise.errors import AgentError, IntegrityError, RegistryError, TierwiseError
from tierwise.registry import (
    BundleManifest,
    BundleStore,
    LocalStore,
    TrustStore,
    parse_manifest,
    pull,
    verify,
)
from tierwise.registry.manifest import MAX_MANIFEST_BYTES
from tierwise.server.manager import ModelManager

__all__ = ["Activator"]

log = logging.getLogger("tierwise.agent")


class Activator:
    """Activations, rollbacks and repairs of one bundle on a node, one at a time across
    the node (``lock``, shared by its activators)."""

    def __init__(
        self,
        part: BundlePart,
        *,
        keep_versions: int,
        store: LocalStore,
        state: AgentState,
        trust: TrustStore,
        installer: Installer,
        manager: ModelManager,
        lock: asyncio.Lock,
    ) -> None:
        self.part = part
        self.bundle = part.name
        self.keep_versions = keep_versions
        self.store = store
        self.node_state = state
        self.state: BundleState = state.of(part.name)
        self.trust = trust
        self.installer = installer
        self.manager = manager
        self.lock = lock
        self.rollbacks = 0

    @property
    def variants(self) -> list[str]:
        return self.part.variants

    def serving(self) -> bool:
        """Every served model has a ready version."""
        models = self.installer.models
        return bool(models) and all(self.manager.is_ready(m) for m in models)

    def _manifest(self, digest: str) -> BundleManifest:
        stored = self.store.get_manifest(self.bundle, digest, limit_bytes=MAX_MANIFEST_BYTES)
        return parse_manifest(stored.manifest_bytes)

    async def activate(
        self, manifest: BundleManifest, digest: str, *, fresh: Collection[str] = ()
    ) -> Activation:
        """Verify, lay out and hot-swap one version (call with ``lock`` held). The signature
        is checked again, and every served blob is re-hashed except those in ``fresh``
        (fetched and checked by the pull just before). On a failure the models already
        swapped go back to the previous generation and the new one is removed; a blob that
        fails its check is dropped from the store so the next sync fetches it again."""
        again = [v for v in self.variants if manifest.variant(v).digest not in fresh]
        try:
            checked = await asyncio.to_thread(
                verify, self.store, manifest.name, digest, self.trust, variants=again
            )
        except IntegrityError:
            await asyncio.to_thread(self._forget, manifest)
            raise
        if checked.digest != digest:
            raise IntegrityError("digest", f"the store gave {checked.digest} for {digest}")
        generation = self.node_state.take_generation()
        self.node_state.save()
        await asyncio.to_thread(self.installer.install, manifest, generation)
        swapped: list[str] = []
        try:
            for model in self.installer.models:
                await self.manager.load(model)
                swapped.append(model)
                serving = self.manager.resolve(model).version
                if serving != str(generation):
                    raise AgentError(f"model {model} serves version {serving}, not {generation}")
        except TierwiseError:
            self.installer.remove(generation)
            for model in swapped:
                with contextlib.suppress(TierwiseError):
                    await self.manager.load(model)
            raise
        previous = self.state.active
        activation = Activation(manifest.version, digest, generation, time.time())
        self.state.promote(activation, keep=self.keep_versions)
        self.node_state.save()  # before the old generations go: a crash keeps a valid state
        self.installer.keep_only(generation)
        log.info(
            "%s version %s is serving (model repository generation %d); it was %s",
            manifest.name, manifest.version, generation,
            f"version {previous.version}" if previous else "serving nothing",
        )  # fmt: skip
        return activation

    def _forget(self, manifest: BundleManifest) -> None:
        """Drop a version whose local copy failed its check, and its corrupt blobs."""
        for variant in manifest.variants:
            if variant.name in self.variants:
                with contextlib.suppress(OSError):
                    self.store.blob_path(variant.digest).unlink(missing_ok=True)
        with contextlib.suppress(RegistryError):
            self.store.delete_version(manifest.name, manifest.version)

    async def repair(self) -> bool:
        """Serve the active version again from the node's own store when its models are
        not being served (a lost or damaged model repository). True when it did."""
        active = self.state.active
        if active is None or self.serving():
            return False
        async with self.lock:
            if self.serving():
                return False
            try:
                await self.activate(self._manifest(active.digest), active.digest)
            except TierwiseError as exc:
                log.error(
                    "could not serve %s again from this node (bundle %s): %s",
                    active.version, self.bundle, exc,
                )  # fmt: skip
                return False
        log.warning("served %s:%s again from this node's store", self.bundle, active.version)
        return True

    async def rollback(self, version: str | None, *, reference: str | None) -> Activation:
        """Go back to the newest kept version that is not held (or ``version``). The version
        rolled back from is held under the desired reference ``reference``."""
        async with self.lock:
            active = self.state.active
            candidates = self.state.rollback_targets()
            if version is not None:
                candidates = [a for a in candidates if a.version == version]
            if active is None or not candidates:
                kept = ", ".join(a.version for a in self.state.rollback_targets()) or "none"
                wanted = f"version {version}" if version else "a previous version"
                raise AgentError(
                    f"cannot roll back to {wanted} of {self.bundle}: versions to go back to: {kept}"
                )
            target = candidates[0]
            self.state.held[active.digest] = reference or ""
            self.node_state.save()
            try:
                activation = await self.activate(self._manifest(target.digest), target.digest)
            except TierwiseError:
                del self.state.held[active.digest]
                self.node_state.save()
                raise
            self.rollbacks += 1
            return activation

    def kept(self, reference: str) -> Activation | None:
        """The version ``reference`` names among those the node keeps for rollback
        (``previous``): by digest for a ``sha256:`` reference, else by version."""
        by_digest = reference.startswith("sha256:")
        for activation in self.state.previous:
            if (activation.digest if by_digest else activation.version) == reference:
                return activation
        return None

    def _local(self, reference: str) -> tuple[BundleManifest, str] | None:
        """The manifest and digest of the kept version ``reference`` names, read from the
        node's own store; None when it keeps none (or no longer has its manifest)."""
        found = self.kept(reference)
        if found is None:
            return None
        try:
            return self._manifest(found.digest), found.digest
        except RegistryError as exc:
            log.warning("kept version %s:%s is not in this node's store (%s); pulling it",
                        self.bundle, found.version, exc)  # fmt: skip
            return None

    async def sync(self, source: Callable[[], BundleStore], reference: str) -> SyncResult:
        """Make ``reference`` serve: from the node's own store when it names a version the
        node keeps for rollback, else pulled from the registry ``source()`` opens into the
        node's store (checked on the way); then activate it unless it serves already or is
        held. Never raises: the result says what failed, and the serving version keeps
        serving."""
        state = self.state
        holds = dict(state.held)
        state.release_holds(reference)
        local = await asyncio.to_thread(self._local, reference)
        fresh: Collection[str] = ()
        fetched_bytes = 0
        if local is not None:
            manifest, digest = local
        else:
            try:
                report = await asyncio.to_thread(
                    pull, source(), self.bundle, reference, self.store, self.trust,
                    variants=self.variants,
                )  # fmt: skip
            except TierwiseError as exc:
                if state.held != holds:
                    self.node_state.save()
                return SyncResult("error", bundle=self.bundle, reference=reference,
                                  error=str(exc))  # fmt: skip
            manifest, digest = report.manifest, report.digest
            fresh, fetched_bytes = report.fetched, report.fetched_bytes
        result = SyncResult(
            "up-to-date", bundle=self.bundle, reference=reference, version=manifest.version,
            digest=digest, fetched_bytes=fetched_bytes,
        )  # fmt: skip
        async with self.lock:  # a rollback may have run during the pull
            active = state.active
            if active is not None and active.digest == digest:
                pass
            elif digest in state.held:
                result.result = "held"
                result.error = (
                    "rolled back from (or failed to load) this version; waiting for the "
                    "desired state to name another"
                )
            else:
                if local is not None:
                    log.info("%s:%s is kept on this node: activating it from its own store",
                             self.bundle, manifest.version)  # fmt: skip
                try:
                    await self.activate(manifest, digest, fresh=fresh)
                    result.result = "activated"
                except IntegrityError as exc:  # a bad local copy: fetched again next time
                    result.result, result.error = "error", str(exc)
                except TierwiseError as exc:
                    state.held[digest] = reference
                    result.result, result.error = "error", str(exc)
            if state.held != holds:  # an activation saved the rest already
                self.node_state.save()
            with contextlib.suppress(RegistryError):
                await asyncio.to_thread(self.prune)
        return result

    def prune(self) -> int:
        """Delete the versions in the node's store that are neither kept nor held, and the
        blobs only they used. Returns how many versions went."""
        keep = self.state.kept_digests() | set(self.state.held)
        gone = 0
        for row in self.store.list_bundles(self.bundle):
            if row.digest not in keep:
                self.store.delete_version(row.name, row.version)
                gone += 1
        if gone:
            self.store.gc()
        return gone
