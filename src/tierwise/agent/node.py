"""The edge agent: one node's tier server kept on the versions it should run.

A node syncs one or more bundles, one per model it runs (a detector, a classifier); they
share the tier server, the node's store and its state file, and each has its own
desired reference, versions kept for rollback, holds and last sync result. Each sync
reads the desired state (:mod:`tierwise.agent.desired`) and, bundle by bundle, resolves
the bundle's reference (version, tag or digest) to a manifest digest, pulls by digest
into the node's own store (signature, sizes and digests checked; blobs it has are not
fetched again), verifies the served variants once more, lays them out as a new
generation of the model repository and swaps that bundle's models through the server's
hot swap, which loads and warms the new version before the old one stops. Any failure
leaves the serving version serving and is reported in the status; a bundle that fails
to verify, load or warm up never touches the other bundles' models. The last
``keep_versions`` versions of each bundle stay in the store for a rollback that needs
no network; a desired reference naming one of them is activated from there without
asking the registry. With ``control.heartbeat_url`` the node also reports to a control
plane and takes its decisions from the answers (:mod:`tierwise.agent.heartbeat`); with
``control.telemetry`` its heartbeats go through NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from tierwise.agent.activate import Activator
from tierwise.agent.control import ControlPlane
from tierwise.agent.counters import advertised_address
from tierwise.agent.desired import DesiredState, check_reference, parse_desired
from tierwise.agent.heartbeat import heartbeat_for, heartbeat_loop, poll_desired
from tierwise.agent.install import Installer
from tierwise.agent.result import SyncResult, combine
from tierwise.agent.settings import AgentSettings
from tierwise.agent.state import Activation, AgentState
from tierwise.agent.status import node_status, queue_depth, serving_text
from tierwise.agent.thermal import ThermalGuard, read_celsius
from tierwise.errors import ConfigError
from tierwise.registry import BundleStore, LocalStore, TrustStore, open_store
from tierwise.registry.digest import atomic_write_bytes
from tierwise.security import Guard, TokenStore
from tierwise.server.app import TierServer, create_app
from tierwise.server.settings import ServerSettings

if TYPE_CHECKING:
    from tierwise.router.router import Router

__all__ = ["EdgeAgent", "SyncResult"]


log = logging.getLogger("tierwise.agent")


class EdgeAgent:
    """Owns the tier server (its routes checked by ``guard``, the node's tokens; without
    one it is open), the node's store and state, one :class:`Activator` per bundle, and
    the thermal guard. Call :meth:`start` inside the running loop and
    :meth:`stop` at shutdown."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        env: Mapping[str, str] | None = None,
        guard: Guard | None = None,
    ) -> None:
        self.settings = settings
        self.env = dict(env or {})
        self.parts = settings.bundle_parts
        state_dir = settings.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.store = LocalStore(state_dir / "store")
        self.state = AgentState.load(state_dir / "agent-state.json", owner=self._owner)
        self.trust = TrustStore.from_paths(settings.registry.trusted_keys)
        self.server: TierServer = create_app(
            ServerSettings(
                model_repo=state_dir / "repo",
                host=settings.host,
                port=settings.port,
                server_name=f"tierwise-agent-{settings.node}",
                max_body_bytes=settings.max_body_bytes,
                drain_timeout_s=settings.drain_timeout_s,
                default_model=settings.defaults,
                tls=settings.tls,
                insecure=settings.insecure,
                tier=settings.server_tier,
                energy=settings.energy,
            ),
            guard=guard if guard is not None else Guard(TokenStore()),
        )
        lock = asyncio.Lock()  # one activation at a time on the node
        #: bundle name -> its activator, in the order of the settings
        self.activators: dict[str, Activator] = {}
        for part in self.parts:
            self.activators[part.name] = Activator(
                part, keep_versions=settings.keep_versions, store=self.store,
                state=self.state, trust=self.trust,
                installer=Installer(state_dir / "repo", self.store, part.serve),
                manager=self.server.manager, lock=lock,
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
        control = settings.control
        self.control = ControlPlane(control, settings.node, self.env) if control else None
        self.heartbeat = heartbeat_for(control, settings.node, self.env)
        #: when this agent process started (its counters count from then)
        self.started_s = time.time()
        #: where the node serves, as heartbeats tell it (build_agent_app sets the bound ports)
        self.address = advertised_address(settings.host, settings.port, tls=bool(settings.tls))
        self.gateway_address: str | None = None
        #: the node's router front, when it has one (its counters go in the heartbeats)
        self.router: Router | None = None

    def _owner(self, digest: str) -> str | None:
        """The synced bundle a version in the node's store belongs to (for a state file
        written by a one-bundle node)."""
        names = [part.name for part in self.parts]
        for row in self.store.list_bundles():
            if row.digest == digest:
                return row.name if row.name in names else None
        return names[0] if len(names) == 1 else None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Clean what a crash left, serve the active versions, start syncing and the
        thermal guard."""
        removed: list[int] = []
        for activator in self.activators.values():
            active = activator.state.active
            removed += activator.installer.keep_only(active.generation if active else None)
        if removed or self.store.removed_partials:
            log.warning(
                "cleaned up after an interrupted run: generations %s, %d partial download(s)",
                sorted(set(removed)), self.store.removed_partials,
            )  # fmt: skip
        await self.server.startup()
        for activator in self.activators.values():
            await activator.repair()
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._sync_loop(), name="agent-sync")]
        if self.thermal_source is not None:
            self._tasks.append(loop.create_task(self._thermal_loop(), name="agent-thermal"))
        if self.heartbeat is not None:
            beats = heartbeat_loop(self, self.heartbeat)
            self._tasks.append(loop.create_task(beats, name="agent-heartbeat"))

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
        if self.heartbeat is not None:
            await self.heartbeat.aclose()
        self.store.close()

    # -- desired state ---------------------------------------------------------------

    @property
    def bundle_names(self) -> list[str]:
        return list(self.activators)

    def desired_state(self) -> DesiredState | None:
        """What the desired-state file names (None: there is none yet); ConfigError when
        it cannot be read or names a bundle this node does not sync."""
        path = self.settings.desired_file
        if not path.is_file():
            return None
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(str(path), "a readable desired-state file") from exc
        return parse_desired(text, str(path)).check(self.bundle_names, str(path))

    def desired_reference(self, bundle: str | None = None) -> str | None:
        """The reference ``bundle`` (default: the node's only one) should run."""
        desired = self.desired_state()
        return None if desired is None else desired.reference(self.activator(bundle).bundle)

    def _write_desired(self, desired: DesiredState) -> None:
        atomic_write_bytes(self.settings.desired_file, orjson.dumps(desired.to_doc()))

    def adopt_desired(self, desired: DesiredState, where: str) -> bool:
        """Write what a control plane (``where``) names to the desired-state file when the
        file names something else (the file keeps it through restarts and outages);
        whether it did. The next sync acts on it."""
        try:
            current = self.desired_state()
        except ConfigError:
            current = None
        if desired == current:
            return False
        log.info("%s names %s", where, desired.to_doc())
        self._write_desired(desired)
        return True

    def set_desired(self, reference: str | None = None, *, bundle: str | None = None,
                    refs: Mapping[str, str] | None = None) -> DesiredState:  # fmt: skip
        """Set what ``bundle`` (default: the node's only one) should run, or, with
        ``refs``, several bundles; the other bundles keep theirs. Written to the
        desired-state file (what the control endpoint does); a sync follows soon."""
        wanted = dict(refs or {})
        if reference is not None:
            wanted[self.activator(bundle).bundle] = check_reference(reference, "ref")
        if not wanted:
            raise ConfigError("ref", "a version, tag or sha256 digest")
        for name, value in wanted.items():
            self.activator(name)
            wanted[name] = check_reference(value, f"refs.{name}")
        if len(self.activators) == 1:
            (only,) = wanted.values()
            desired = DesiredState(ref=only)
        else:
            try:
                current = self.desired_state() or DesiredState()
            except ConfigError:
                current = DesiredState()
            desired = current.with_refs(wanted)
        self._write_desired(desired)
        self.kick()
        return desired

    def activator(self, bundle: str | None = None) -> Activator:
        """The activator of ``bundle``; without one, of the node's only bundle."""
        if bundle is None and len(self.activators) == 1:
            return next(iter(self.activators.values()))
        found = self.activators.get(bundle) if bundle is not None else None
        if found is None:
            raise ConfigError(
                "bundle", f"one of the bundles this node syncs ({', '.join(self.activators)})",
                bundle,
            )  # fmt: skip
        return found

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
        """One sync of every bundle; never raises (the result says what failed, and the
        serving versions keep serving)."""
        async with self._sync_lock:
            started = time.monotonic()
            logged = False
            try:
                result = await self._sync()
            except Exception as exc:  # a failed sync is a result, never a dead loop
                log.exception("sync failed (still serving %s)", serving_text(self))
                result = SyncResult("error", error=f"{type(exc).__name__}: {exc}")
                logged = True
            result.seconds = round(time.monotonic() - started, 3)
            self.last_sync = result
            self.sync_counts[result.result] = self.sync_counts.get(result.result, 0) + 1
            for name, part in result.bundles.items():
                if part.result == "error" and not logged:
                    log.error("sync of %s:%s failed: %s (still serving %s)", name,
                              part.reference, part.error, serving_text(self))  # fmt: skip
                elif part.result == "activated":
                    log.info("activated %s:%s", name, part.version)
            if result.result == "error" and not result.bundles and not logged:
                log.error("sync failed: %s (still serving %s)", result.error,
                          serving_text(self))  # fmt: skip
            return result

    async def _sync(self) -> SyncResult:
        for activator in self.activators.values():  # from the node's own disk first
            await activator.repair()
        if self.control is not None:
            await poll_desired(self, self.control)
        try:
            desired = self.desired_state()
        except ConfigError as exc:
            return SyncResult("error", error=str(exc))
        if desired is None:
            return SyncResult("idle", error=f"no desired state in {self.settings.desired_file}")
        results: dict[str, SyncResult] = {}
        for name, activator in self.activators.items():
            reference = desired.reference(name)
            if reference is None:
                results[name] = SyncResult(
                    "idle", bundle=name, error=f"the desired state names no reference for {name}"
                )
                continue
            results[name] = await activator.sync(self._open_source, reference)
        return combine(results)

    async def rollback(
        self, version: str | None = None, *, bundle: str | None = None
    ) -> Activation:
        """Take ``bundle`` (default: the node's only one) back to its previous kept version
        (or ``version``) from the node's own store; the others are not touched. The
        version rolled back from is held until the desired state names another."""
        activator = self.activator(bundle)
        try:
            reference = self.desired_reference(activator.bundle)
        except ConfigError:
            reference = None
        return await activator.rollback(version, reference=reference)

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
        """Every served model of every bundle has a ready version."""
        return all(activator.serving() for activator in self.activators.values())

    @property
    def rollbacks(self) -> int:
        return sum(activator.rollbacks for activator in self.activators.values())

    def queue_depth(self) -> int:
        return queue_depth(self)

    def status(self) -> dict[str, Any]:
        """The node's status (:func:`tierwise.agent.status.node_status`)."""
        return node_status(self)
