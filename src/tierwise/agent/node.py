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

from tierwise.agent.activate import Activator
from tierwise.agent.control import REFERENCE, ControlPlane, parse_desired
from tierwise.agent.install import Installer
from tierwise.agent.settings import AgentSettings
from tierwise.agent.state import Activation, AgentState
from tierwise.agent.thermal import ThermalGuard, read_celsius
from tierwise.errors import AgentError, ConfigError, IntegrityError, RegistryError, TierwiseError
from tierwise.registry import (
    BundleStore,
    LocalStore,
    TrustStore,
    open_store,
    pull,
)
from tierwise.registry.digest import atomic_write_bytes
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
        self.activator = Activator(
            settings, store=self.store, state=self.state, trust=self.trust,
            installer=self.installer, manager=self.server.manager,
        )  # fmt: skip
        self.thermal = ThermalGuard(high_c=settings.thermal.high_c, low_c=settings.thermal.low_c)
        self.thermal_source = settings.thermal.resolved_source()
        self.last_sync: SyncResult | None = None
        self.sync_counts: dict[str, int] = {}
        self.on_thermal: list[Any] = []
        self._sync_lock = asyncio.Lock()
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._source: BundleStore | None = None
        self.control = (
            ControlPlane(settings.control, settings.node, self.env)
            if settings.control is not None
            else None
        )

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
        await self.activator.repair()
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
        if self.control is not None:
            self.control.close()
        self.store.close()

    # -- desired state ---------------------------------------------------------------

    def desired_reference(self) -> str | None:
        path = self.settings.desired_file
        if not path.is_file():
            return None
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(str(path), "YAML or JSON {ref: VERSION | TAG | sha256:...}") from exc
        return parse_desired(text, str(path))

    async def _poll_control(self, control: ControlPlane) -> None:
        """Take the control plane's reference into the desired-state file; when it cannot
        be read, keep the one the node has and say why in the status."""
        try:
            reference = await asyncio.to_thread(control.fetch)
        except (AgentError, ConfigError) as exc:
            control.last_error = str(exc)
            log.warning("%s; keeping the desired state this node has", exc)
            return
        control.last_error = None
        if reference is None:
            return
        try:
            current = self.desired_reference()
        except ConfigError:
            current = None
        if reference != current:
            log.info("control plane %s names %s", control.url, reference)
            atomic_write_bytes(self.settings.desired_file, orjson.dumps({"ref": reference}))

    def set_desired(self, reference: str) -> None:
        """Write the desired state (what the control endpoint does) and sync soon."""
        if not REFERENCE.match(reference):
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
        """One sync; never raises (the result says what failed, and the serving version
        keeps serving)."""
        async with self._sync_lock:
            started = time.monotonic()
            logged = False
            try:
                result = await self._sync()
            except Exception as exc:  # a failed sync is a result, never a dead loop
                log.exception("sync failed (still serving %s)", self.active_version or "nothing")
                result = SyncResult("error", error=f"{type(exc).__name__}: {exc}")
                logged = True
            result.seconds = round(time.monotonic() - started, 3)
            self.last_sync = result
            self.sync_counts[result.result] = self.sync_counts.get(result.result, 0) + 1
            if result.result == "error" and not logged:
                log.error("sync of %s failed: %s (still serving %s)", result.reference,
                          result.error, self.active_version or "nothing")  # fmt: skip
            elif result.result == "activated":
                log.info("activated %s:%s", self.settings.bundle, result.version)
            return result

    async def _sync(self) -> SyncResult:
        await self.activator.repair()  # from the node's own disk, before any network
        if self.control is not None:
            await self._poll_control(self.control)
        try:
            reference = self.desired_reference()
        except ConfigError as exc:
            return SyncResult("error", error=str(exc))
        if reference is None:
            return SyncResult("idle", error=f"no desired state in {self.settings.desired_file}")
        holds = dict(self.state.held)
        self.state.release_holds(reference)
        try:
            source = self._open_source()
            report = await asyncio.to_thread(
                pull, source, self.settings.bundle, reference, self.store, self.trust,
                variants=self.activator.variants,
            )  # fmt: skip
        except TierwiseError as exc:
            return SyncResult("error", reference=reference, error=str(exc))
        result = SyncResult(
            "up-to-date", reference=reference, version=report.manifest.version,
            digest=report.digest, fetched_bytes=report.fetched_bytes,
        )  # fmt: skip
        async with self.activator.lock:  # a rollback may have run during the pull
            active = self.state.active
            if active is not None and active.digest == report.digest:
                pass
            elif report.digest in self.state.held:
                result.result = "held"
                result.error = (
                    "rolled back from (or failed to load) this version; waiting for the "
                    "desired state to name another"
                )
            else:
                try:
                    await self.activator.activate(
                        report.manifest, report.digest, fresh=report.fetched
                    )
                    result.result = "activated"
                except IntegrityError as exc:  # a bad local copy: fetched again next time
                    result.result, result.error = "error", str(exc)
                except TierwiseError as exc:
                    self.state.held[report.digest] = reference
                    result.result, result.error = "error", str(exc)
            if self.state.held != holds:  # an activation saved the rest already
                self.state.save()
            with contextlib.suppress(RegistryError):
                await asyncio.to_thread(self.activator.prune)
        return result

    async def rollback(self, version: str | None = None) -> Activation:
        """Go back to the previous kept version (or ``version``) from the node's own store;
        the version rolled back from is held until the desired state names another."""
        try:
            reference = self.desired_reference()
        except ConfigError:
            reference = None
        return await self.activator.rollback(version, reference=reference)

    # -- thermal ---------------------------------------------------------------------

    def apply_temperature(self, celsius: float | None) -> bool:
        """Feed one reading; on a change, cap or restore local concurrency and tell the
        listeners (the router's offload flag). Returns whether the node is throttled."""
        reading = self.thermal.observe(celsius)
        if reading.changed:
            thermal = self.settings.thermal
            if reading.throttled:
                self.server.manager.throttle(
                    instances=thermal.throttled_instances,
                    max_queue_size=thermal.throttled_queue,
                    duty_cycle=thermal.throttled_duty_cycle,
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
        return self.activator.serving()

    @property
    def rollbacks(self) -> int:
        return self.activator.rollbacks

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
            "held": sorted(self.state.held),
            "desired": desired,
            "health": {"live": True, "ready": self.serving()},
            "models": {m: manager.is_ready(m) for m in self.installer.models},
            "temperature_c": self.thermal.last_celsius,
            "thermal_throttled": self.thermal.throttled,
            "queue_depth": self.queue_depth(),
            "in_flight": self.server.dataplane.in_flight,
            "last_sync": self.last_sync.to_dict() if self.last_sync else None,
            "control": None
            if self.control is None
            else {
                "url": self.control.url,
                "last_fetch_s": self.control.last_fetch_s,
                "error": self.control.last_error,
            },
            "state_dir": str(Path(self.settings.state_dir)),
        }
