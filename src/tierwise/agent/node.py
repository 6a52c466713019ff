"""The edge agent: one node's tier server kept on the version it should run.

Each sync reads the desired state (a reference: version, tag or digest), resolves it to
a manifest digest, pulls by digest into the node's own store (signature, sizes and
digests checked; blobs it has are not fetched again), verifies the served variants once
more, lays them out as a new generation of the model repository and swaps through the
server's hot swap, which loads and warms the new version before the old one stops. Any
failure leaves the serving version serving and is reported in the status. The last
``keep_versions`` versions stay in the store for a rollback that needs no network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from tierwise.agent.install import Installer
from tierwise.agent.settings import AgentSettings
from tierwise.agent.state import Activation, AgentState
from tierwise.agent.thermal import ThermalGuard, read_celsius
from tierwise.errors import AgentError, ConfigError, IntegrityError, TierwiseError
from tierwise.registry import (
    BundleManifest,
    BundleStore,
    LocalStore,
    TrustStore,
    open_store,
    parse_manifest,
    pull,
    verify,
)
from tierwise.registry.digest import atomic_write_bytes
from tierwise.registry.manifest import MAX_MANIFEST_BYTES
from tierwise.server.app import TierServer, create_app
from tierwise.server.settings import ServerSettings

__all__ = ["EdgeAgent", "SyncResult"]

log = logging.getLogger("tierwise.agent")


@dataclass
class SyncResult:
    """What one sync did: ``result`` is ``activated``, ``up-to-date``, ``held``, ``idle``
    (no desired state) or ``error`` (``error`` says which check failed)."""

    result: str
    at_s: float = field(default_factory=time.time)
    seconds: float = 0.0
    reference: str | None = None
    version: str | None = None
    digest: str | None = None
    error: str | None = None
    fetched_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class EdgeAgent:
    """Owns the tier server, the node's store and state, and the thermal guard. Call
    :meth:`start` inside the running loop and :meth:`stop` at shutdown."""

    def __init__(self, settings: AgentSettings, *, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.env = dict(env or {})
        state_dir = settings.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.store = LocalStore(state_dir / "store")
        self.state = AgentState.load(state_dir / "agent-state.json")
        self.trust = TrustStore.from_paths(settings.registry.trusted_keys)
        self.installer = Installer(state_dir / "repo", self.store, settings.serve)
        self.server: TierServer = create_app(
            ServerSettings(
                model_repo=state_dir / "repo",
                host=settings.host,
                port=settings.port,
                server_name=f"tierwise-agent-{settings.node}",
                max_body_bytes=settings.max_body_bytes,
                drain_timeout_s=settings.drain_timeout_s,
                default_model=settings.defaults,
            )
        )
        self.thermal = ThermalGuard(high_c=settings.thermal.high_c, low_c=settings.thermal.low_c)
        self.thermal_source = settings.thermal.resolved_source()
        self.last_sync: SyncResult | None = None
        self.sync_counts: dict[str, int] = {}
        self.rollbacks = 0
        self.on_thermal: list[Any] = []
        self._lock = asyncio.Lock()
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._source: BundleStore | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Clean what a crash left, serve the active version, start syncing and the
        thermal guard."""
        active = self.state.active
        removed = self.installer.keep_only(active.generation if active else None)
        if removed or self.store.removed_partials:
            log.warning(
                "cleaned up after an interrupted run: generations %s, %d partial download(s)",
                removed, self.store.removed_partials,
            )  # fmt: skip
        await self.server.startup()
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._sync_loop(), name="agent-sync")]
        if self.thermal_source is not None:
            self._tasks.append(loop.create_task(self._thermal_loop(), name="agent-thermal"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.server.shutdown()
        if self._source is not None:
            self._source.close()
        self.store.close()

    # -- desired state ---------------------------------------------------------------

    def desired_reference(self) -> str | None:
        path = self.settings.desired_file
        if not path.is_file():
            return None
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(str(path), "YAML or JSON {ref: VERSION | TAG | sha256:...}") from exc
        ref = data.get("ref", data.get("version")) if isinstance(data, dict) else None
        if ref is None or isinstance(ref, bool) or not str(ref).strip():
            raise ConfigError(f"{path}: ref", "a version, tag or sha256 digest", data)
        return str(ref).strip()

    def set_desired(self, reference: str) -> None:
        """Write the desired state (what the control endpoint does) and sync soon."""
        if not reference or len(reference) > 200 or any(c.isspace() for c in reference):
            raise ConfigError("ref", "a version, tag or sha256 digest", reference)
        atomic_write_bytes(self.settings.desired_file, orjson.dumps({"ref": reference}))
        self.kick()

    def kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # -- sync ------------------------------------------------------------------------

    def _open_source(self) -> BundleStore:
        if self._source is None:
            registry = self.settings.registry
            password = self.env.get(registry.password_env) if registry.password_env else None
            self._source = open_store(
                registry.store,
                plain_http=registry.plain_http,
                timeout_s=registry.timeout_s,
                username=registry.username,
                password=password,
            )
        return self._source

    async def _sync_loop(self) -> None:
        assert self._wake is not None  # start() set it; internal invariant
        while True:
            try:
                await self.sync_now()
            except Exception:  # the loop outlives any one failure
                log.exception("sync failed unexpectedly")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.sync_interval_s)
            self._wake.clear()

    async def sync_now(self) -> SyncResult:
        """One sync; never raises for a failed check (the result says what failed)."""
        async with self._lock:
            started = time.monotonic()
            result = await self._sync()
            result.seconds = round(time.monotonic() - started, 3)
            self.last_sync = result
            self.sync_counts[result.result] = self.sync_counts.get(result.result, 0) + 1
            if result.result == "error":
                log.error("sync of %s failed: %s (still serving %s)", result.reference,
                          result.error, self.active_version or "nothing")  # fmt: skip
            elif result.result == "activated":
                log.info("activated %s:%s", self.settings.bundle, result.version)
            return result

    async def _sync(self) -> SyncResult:
        try:
            reference = self.desired_reference()
        except ConfigError as exc:
            return SyncResult("error", error=str(exc))
        if reference is None:
            return SyncResult("idle", error=f"no desired state in {self.settings.desired_file}")
        bundle = self.settings.bundle
        try:
            source = self._open_source()
            variants = [part.variant for part in self.settings.serve]
            report = await asyncio.to_thread(
                pull, source, bundle, reference, self.store, self.trust, variants=variants
            )
        except TierwiseError as exc:
            return SyncResult("error", reference=reference, error=str(exc))
        result = SyncResult(
            "up-to-date", reference=reference, version=report.manifest.version,
            digest=report.digest, fetched_bytes=report.fetched_bytes,
        )  # fmt: skip
        active = self.state.active
        if active is not None and active.digest == report.digest and self.serving():
            return result
        if report.digest == self.state.held_digest:
            result.result = "held"
            result.error = (
                "rolled back from (or failed to activate) this version; waiting for another"
            )
            return result
        try:
            await self._activate(report.manifest, report.digest)
        except TierwiseError as exc:
            self.state.held_digest = report.digest
            self.state.save()
            result.result, result.error = "error", str(exc)
            return result
        self.state.held_digest = None
        self.state.save()
        result.result = "activated"
        return result

    async def _activate(self, manifest: BundleManifest, digest: str) -> None:
        """Verify, lay out and hot-swap one version; on any failure the models already
        swapped go back to the previous generation and the new one is removed."""
        variants = [part.variant for part in self.settings.serve]
        checked = await asyncio.to_thread(
            verify, self.store, manifest.name, digest, self.trust, variants=variants
        )
        if checked.digest != digest:
            raise IntegrityError("digest", f"store gave {checked.digest} for {digest}")
        generation = self.state.take_generation()
        self.state.save()
        await asyncio.to_thread(self.installer.install, manifest, generation)
        manager = self.server.manager
        swapped: list[str] = []
        try:
            for model in self.installer.models:
                await manager.load(model)
                swapped.append(model)
                serving = manager.resolve(model).version
                if serving != str(generation):
                    raise AgentError(f"model {model} serves version {serving}, not {generation}")
        except TierwiseError:
            self.installer.remove(generation)
            for model in swapped:
                with contextlib.suppress(TierwiseError):
                    await manager.load(model)
            raise
        previous = self.state.active
        self.installer.keep_only(generation)
        activation = Activation(manifest.version, digest, generation, time.time())
        dropped = self.state.promote(activation, keep=self.settings.keep_versions)
        self.state.save()
        for old in dropped:
            if old.digest not in self.state.kept_digests():
                await asyncio.to_thread(self.store.delete_version, manifest.name, old.version)
        if dropped:
            await asyncio.to_thread(self.store.gc)
        log.info(
            "%s:%s serving as generation %d (was %s)", manifest.name, manifest.version,
            generation, previous.version if previous else "nothing",
        )  # fmt: skip

    async def rollback(self, version: str | None = None) -> Activation:
        """Go back to the previous kept version (or ``version``), from the node's own store.
        The version rolled back from is held: syncs leave it alone until the desired state
        names another."""
        async with self._lock:
            active = self.state.active
            candidates = self.state.previous
            if version is not None:
                candidates = [a for a in candidates if a.version == version]
            if active is None or not candidates:
                kept = ", ".join(a.version for a in self.state.previous) or "none"
                wanted = f"version {version}" if version else "a previous version"
                raise AgentError(f"cannot roll back to {wanted}: kept versions are {kept}")
            target = candidates[0]
            stored = self.store.get_manifest(
                self.settings.bundle, target.digest, limit_bytes=MAX_MANIFEST_BYTES
            )
            await self._activate(parse_manifest(stored.manifest_bytes), target.digest)
            self.state.held_digest = active.digest
            self.state.save()
            self.rollbacks += 1
            assert self.state.active is not None  # _activate set it
            return self.state.active

    # -- thermal ---------------------------------------------------------------------

    def apply_temperature(self, celsius: float | None) -> bool:
        """Feed one reading; on a change, cap or restore local concurrency and tell the
        listeners (the router's offload flag). Returns whether the node is throttled."""
        reading = self.thermal.observe(celsius)
        if reading.changed:
            thermal = self.settings.thermal
            if reading.throttled:
                self.server.manager.throttle(
                    instances=thermal.throttled_instances, max_queue_size=thermal.throttled_queue
                )
                log.warning("%.1f C >= %.1f C: throttling and offloading", celsius, thermal.high_c)
            else:
                self.server.manager.throttle(instances=None, max_queue_size=None)
                log.info("%.1f C <= %.1f C: recovered", celsius, thermal.low_c)
            for listener in self.on_thermal:
                listener(reading.throttled)
        return reading.throttled

    async def _thermal_loop(self) -> None:
        source = self.thermal_source
        assert source is not None  # only started with a source; internal invariant
        while True:
            try:
                celsius: float | None = await asyncio.to_thread(read_celsius, source)
            except ConfigError:
                celsius = None
            self.apply_temperature(celsius)
            await asyncio.sleep(self.settings.thermal.poll_s)

    # -- status ----------------------------------------------------------------------

    def serving(self) -> bool:
        """Every served model has a ready version."""
        manager = self.server.manager
        models = self.installer.models
        return bool(models) and all(manager.is_ready(m) for m in models)

    @property
    def active_version(self) -> str | None:
        return self.state.active.version if self.state.active else None

    def queue_depth(self) -> int:
        manager = self.server.manager
        depth = 0
        for model in self.installer.models:
            with contextlib.suppress(TierwiseError):
                depth += manager.resolve(model).batcher.depth
        return depth

    def status(self) -> dict[str, Any]:
        manager = self.server.manager
        active = self.state.active
        desired: str | None
        try:
            desired = self.desired_reference()
        except ConfigError as exc:
            desired = f"unreadable: {exc}"
        return {
            "node": self.settings.node,
            "bundle": self.settings.bundle,
            "version": active.version if active else None,
            "digest": active.digest if active else None,
            "generation": active.generation if active else None,
            "previous": [a.version for a in self.state.previous],
            "held_digest": self.state.held_digest,
            "desired": desired,
            "health": {"live": True, "ready": self.serving()},
            "models": {m: manager.is_ready(m) for m in self.installer.models},
            "temperature_c": self.thermal.last_celsius,
            "thermal_throttled": self.thermal.throttled,
            "queue_depth": self.queue_depth(),
            "in_flight": self.server.dataplane.in_flight,
            "last_sync": self.last_sync.to_dict() if self.last_sync else None,
            "state_dir": str(Path(self.settings.state_dir)),
        }
