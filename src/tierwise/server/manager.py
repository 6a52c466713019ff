"""The model manager: which versions of which models are serving, and hot swap.

A reload loads and warms every wanted version before anything is swapped; if any of them
fails, the versions already serving keep serving and the failure is reported. The swap
itself is a dict assignment, so a request sees either the old set or the new one; retired
versions drain their queues before they are unloaded.

At start, a model that fails to load or to warm up is UNAVAILABLE with its reason (in the
repository index, and in the 503 its requests get) and every other model serves, unless
``strict`` asks for the start to fail instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierwise.errors import (
    ModelError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    TierwiseError,
)
from tierwise.runtime import Backend, make_backend
from tierwise.server.batching import Batcher
from tierwise.server.drift import DriftHook, load_monitor
from tierwise.server.metrics import ServerMetrics, VersionMetrics
from tierwise.server.repository import ModelEntry, read_model, scan_repository
from tierwise.server.settings import ModelConfig, ServerSettings

__all__ = [
    "BackendFactory",
    "ModelManager",
    "ModelState",
    "ServedVersion",
    "registry_backend",
]

log = logging.getLogger("tierwise.server")

BackendFactory = Callable[[str, Path, ModelConfig], Backend]


def registry_backend(name: str, path: Path, config: ModelConfig) -> Backend:
    """The default factory: a backend of the runtime the model's ``runtime:`` names (see
    :mod:`tierwise.runtime.registry`), with its ``onnx`` settings and declared warm-up."""
    return make_backend(config.runtime, name, path, onnx=config.onnx, warmup=config.warmup)


@dataclass(slots=True)
class ServedVersion:
    """One loaded, serving version and its batcher."""

    model: str
    version: str
    path: Path
    fingerprint: tuple[object, ...]
    backend: Backend
    batcher: Batcher
    metrics: VersionMetrics
    loaded_at_s: float
    #: the model metadata's ``parameters``: batching and warm-up as this version runs
    parameters: dict[str, Any] = field(default_factory=dict)
    #: feeds the version's drift monitor (a ``reference.json`` beside its model)
    drift: DriftHook | None = None


@dataclass(slots=True)
class ModelState:
    """What the manager knows about one model folder."""

    name: str
    versions: dict[str, ServedVersion] = field(default_factory=dict)
    default_version: str | None = None
    fingerprint: tuple[object, ...] = ()
    last_error: str | None = None
    #: versions whose last load failed (and that are not serving), with the reason
    failed: dict[str, str] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def ready(self) -> bool:
        return self.default_version is not None


def _file_print(path: Path) -> tuple[object, ...]:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class ModelManager:
    """Loads, serves, swaps and unloads the models of one repository."""

    def __init__(
        self,
        settings: ServerSettings,
        metrics: ServerMetrics,
        backend_factory: BackendFactory = registry_backend,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._factory = backend_factory
        self._models: dict[str, ModelState] = {}
        self._poll_task: asyncio.Task[None] | None = None
        self._throttle: tuple[int | None, int | None, float | None] = (None, None, None)

    # -- queries ---------------------------------------------------------------------

    def resolve(self, name: str, version: str | None = None) -> ServedVersion:
        """The serving version asked for (the default one when ``version`` is None)."""
        state = self._models.get(name)
        if state is None:
            raise ModelNotFoundError(model=name, version=version)
        key = state.default_version if version is None else version
        if key is None:
            raise ModelNotReadyError(model=name, reason=state.last_error or "not ready")
        served = state.versions.get(key)
        if served is None:
            raise ModelNotFoundError(model=name, version=version)
        return served

    def knows(self, name: str) -> bool:
        """True when the model is in the repository (ready or not)."""
        return name in self._models

    def is_ready(self, name: str, version: str | None = None) -> bool:
        try:
            self.resolve(name, version)
        except TierwiseError:
            return False
        return True

    @property
    def all_ready(self) -> bool:
        """Every known model has a serving version (the server's readiness)."""
        return all(state.ready for state in self._models.values())

    def index(self) -> list[dict[str, Any]]:
        """Triton's repository index: every model and version with its state."""
        rows: list[dict[str, Any]] = []
        for name in sorted(self._models):
            state = self._models[name]
            found = {v: ("READY", "") for v in state.versions}
            for version, reason in state.failed.items():
                found.setdefault(version, ("UNAVAILABLE", reason))
            if found:
                rows.extend(
                    {"name": name, "version": v, "state": found[v][0], "reason": found[v][1]}
                    for v in sorted(found, key=int, reverse=True)
                )
            else:
                rows.append(
                    {"name": name, "state": "UNAVAILABLE", "reason": state.last_error or ""}
                )
        return rows

    def versions_of(self, name: str) -> list[str]:
        state = self._models.get(name)
        if state is None:
            raise ModelNotFoundError(model=name)
        return sorted(state.versions, key=int, reverse=True)

    def throttle(
        self,
        *,
        instances: int | None,
        max_queue_size: int | None,
        duty_cycle: float | None = None,
    ) -> None:
        """Cap every model's concurrent batches, queue and duty cycle (None lifts a cap),
        now and for versions loaded later: how an overheating node lowers its local
        concurrency and the power it draws."""
        self._throttle = (instances, max_queue_size, duty_cycle)
        for state in self._models.values():
            for served in state.versions.values():
                served.batcher.limit(
                    instances=instances, max_queue_size=max_queue_size, duty_cycle=duty_cycle
                )

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Load every model of the repository. A model that fails to load or warm up is
        logged and left UNAVAILABLE with its reason while the others serve; with
        ``strict``, the first failure unloads everything and is raised."""
        for name in scan_repository(self.settings.model_repo):
            try:
                await self.load(name)
            except (ModelLoadError, ModelNotFoundError):
                if self.settings.strict:
                    await self.close()
                    raise
        if self.settings.repository_poll_s > 0:
            self._poll_task = asyncio.get_running_loop().create_task(self._poll())

    async def load(self, name: str) -> ModelState:
        """(Re)load a model from disk: load and warm the wanted versions, then swap."""
        state = self._models.get(name) or ModelState(name)
        async with state.lock:
            try:
                entry = read_model(self.settings.model_repo, name, self.settings.default_model)
            except ModelNotFoundError:
                if name not in self._models:
                    raise
                await self._retire(name, list(state.versions.values()))
                del self._models[name]
                raise
            except ModelLoadError as exc:
                self._record_failure(state, exc)
                raise
            self._models.setdefault(name, state)
            await self._swap(state, entry)
        return state

    async def _swap(self, state: ModelState, entry: ModelEntry) -> None:
        wanted = [str(v) for v in entry.selected_versions()]
        kept: dict[str, ServedVersion] = {}
        fresh: list[ServedVersion] = []
        try:
            for version in wanted:
                path = entry.versions[int(version)]
                current = state.versions.get(version)
                if current is not None and current.fingerprint == _file_print(path):
                    kept[version] = current
                    continue
                fresh.append(await self._load_version(entry, version, path))
        except ModelLoadError as exc:
            await self._retire(state.name, fresh)
            state.failed = {exc.version: exc.reason} if exc.version is not None else {}
            self._record_failure(state, exc)
            raise
        new = kept | {s.version: s for s in fresh}
        old = [s for v, s in state.versions.items() if new.get(v) is not s]
        state.versions = new
        state.default_version = max(new, key=int) if new else None
        state.fingerprint = entry.fingerprint
        state.last_error = None
        state.failed = {}
        await self._retire(state.name, old)
        for served in fresh:
            if served.drift is not None:  # replaces the monitor of a swapped-out version
                self.metrics.drift[state.name, served.version] = served.drift.monitor
            self.metrics.model_ready.labels(state.name, served.version).set(1)
            log.info("model %s version %s is serving", state.name, served.version)

    async def _load_version(self, entry: ModelEntry, version: str, path: Path) -> ServedVersion:
        """Load and warm one version; any failure is a ModelLoadError naming the version."""
        name = entry.name
        try:
            settings = entry.config.batching
            backend = self._factory(name, path, entry.config)
            await backend.load()
        except ModelError as exc:
            raise ModelLoadError(exc.reason, model=name, version=version) from exc
        except TierwiseError as exc:
            raise ModelLoadError(str(exc), model=name, version=version) from exc
        except Exception as exc:  # a plug-in backend's own errors, converted here
            reason = f"{type(exc).__name__}: {exc}"
            raise ModelLoadError(reason, model=name, version=version) from exc
        metrics = self.metrics.for_version(name, version)

        async def run(inputs: dict[str, Any], outputs: Any) -> dict[str, Any]:
            return await backend.predict(inputs, outputs)

        problem = backend.signature.batch_problem
        observe = metrics.observe_batch if self.settings.metrics else None
        drift = self._drift_hook(name, version, path)
        batcher = Batcher(
            name, run, settings, batchable=problem is None, observe=observe, inspect=drift
        )
        parameters: dict[str, Any] = {"max_batch_size": settings.max_batch_size}
        if problem is not None and settings.max_batch_size > 1:
            parameters["max_batch_size"] = 1
            parameters["batching"] = f"one request at a time: {problem}"
            log.info("model %s version %s runs one request at a time: %s", name, version, problem)
        if backend.warmup_note is not None:
            parameters["warmup"] = f"none: {backend.warmup_note}"
            log.info(
                "model %s version %s loaded without warm-up: %s; declare its inputs under "
                "warmup: in %s/config.yaml to warm it up", name, version, backend.warmup_note,
                name,
            )  # fmt: skip
        batcher.start()
        if self._throttle != (None, None, None):
            instances, queue, duty = self._throttle
            batcher.limit(instances=instances, max_queue_size=queue, duty_cycle=duty)
        self.metrics.queue_depth.labels(entry.name, version).set_function(lambda: batcher.depth)
        return ServedVersion(
            model=entry.name,
            version=version,
            path=path,
            fingerprint=_file_print(path),
            backend=backend,
            batcher=batcher,
            metrics=metrics,
            loaded_at_s=time.time(),
            parameters=parameters,
            drift=drift,
        )

    def _drift_hook(self, name: str, version: str, path: Path) -> DriftHook | None:
        """The drift hook of a version whose folder holds a reference (metrics on)."""
        if not self.settings.metrics:
            return None
        monitor = load_monitor(name, version, path.parent, self.settings.drift)
        if monitor is None:
            return None
        log.info("model %s version %s: drift monitored against its reference", name, version)
        settings = self.settings
        return DriftHook(
            name, version, monitor, settings.drift_sample_rate,
            max_rows_per_s=settings.drift_max_rows_per_s,
        )  # fmt: skip

    def _record_failure(self, state: ModelState, exc: TierwiseError) -> None:
        state.last_error = exc.reason if isinstance(exc, ModelError) else str(exc)
        self._models.setdefault(state.name, state)
        self.metrics.load_failures.labels(state.name).inc()
        serving = ", ".join(sorted(state.versions)) or "nothing"
        log.error("%s (still serving: %s)", exc, serving)

    async def _retire(self, name: str, versions: list[ServedVersion]) -> None:
        for served in versions:
            await served.batcher.drain(self.settings.drain_timeout_s)
            await served.batcher.stop()
            await served.backend.unload()
            key = (name, served.version)
            if served.drift is not None and self.metrics.drift.get(key) is served.drift.monitor:
                del self.metrics.drift[key]
            self.metrics.model_ready.labels(name, served.version).set(0)
            log.info("model %s version %s unloaded", name, served.version)

    async def unload(self, name: str) -> None:
        """Stop serving a model (Triton's unload); it stays known, as UNAVAILABLE."""
        state = self._models.get(name)
        if state is None:
            raise ModelNotFoundError(model=name)
        async with state.lock:
            old = list(state.versions.values())
            state.versions = {}
            state.default_version = None
            state.last_error = "unloaded"
            state.failed = {}
            await self._retire(name, old)

    async def refresh(self) -> None:
        """Load new models, reload changed ones, drop removed ones (the directory poll)."""
        names = set(scan_repository(self.settings.model_repo))
        for name in sorted(names | set(self._models)):
            state = self._models.get(name)
            if state is not None and state.last_error == "unloaded":
                continue  # explicitly unloaded: only an explicit load brings it back
            try:
                entry_print = read_model(
                    self.settings.model_repo, name, self.settings.default_model
                ).fingerprint
            except ModelNotFoundError:
                entry_print = None
            except ModelLoadError:
                entry_print = ("invalid",)
            if state is not None and entry_print == state.fingerprint:
                continue
            with contextlib.suppress(ModelLoadError, ModelNotFoundError):
                await self.load(name)
            if state is not None and entry_print is not None:
                state.fingerprint = entry_print  # a failed version is not retried every poll

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.repository_poll_s)
            try:
                await self.refresh()
            except Exception:  # the poll must outlive any one bad scan
                log.exception("repository poll failed")

    async def close(self) -> None:
        """Drain every queue, then unload everything."""
        if self._poll_task is not None:
            self._poll_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll_task
        for name, state in list(self._models.items()):
            await self._retire(name, list(state.versions.values()))
            state.versions = {}
            state.default_version = None
